"""Named chat templates, for GGUF files that carry none (or when a user overrides theirs).

Each template turns plain ``{"role", "content"}`` messages into a prompt that ends where the
assistant's answer begins, and names the text that ends the assistant's turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiplatform.errors import InvalidRequestError

__all__ = [
    "NAMED_TEMPLATES",
    "ChatTemplate",
    "Message",
    "RenderedPrompt",
    "family_template",
    "render_named",
]

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    prompt: str
    #: Text that ends the assistant's turn (besides the model's end-of-generation tokens).
    stop: tuple[str, ...]


def _gemma(messages: Sequence[Message]) -> RenderedPrompt:
    # Gemma has no system role: the system text opens the first user turn.
    parts = ["<bos>"]
    pending_system = ""
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            pending_system += content + "\n\n"
            continue
        turn = "model" if role == "assistant" else "user"
        if turn == "user" and pending_system:
            content, pending_system = pending_system + content, ""
        parts.append(f"<start_of_turn>{turn}\n{content}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return RenderedPrompt("".join(parts), ("<end_of_turn>",))


def _chatml(messages: Sequence[Message]) -> RenderedPrompt:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    parts.append("<|im_start|>assistant\n")
    return RenderedPrompt("".join(parts), ("<|im_end|>",))


def _llama3(messages: Sequence[Message]) -> RenderedPrompt:
    parts = ["<|begin_of_text|>"]
    for message in messages:
        parts.append(
            f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n"
            f"{message['content']}<|eot_id|>"
        )
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return RenderedPrompt("".join(parts), ("<|eot_id|>",))


def _mistral(messages: Sequence[Message]) -> RenderedPrompt:
    parts = ["<s>"]
    pending_system = ""
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            pending_system += content + "\n\n"
        elif role == "assistant":
            parts.append(f"{content}</s>")
        else:
            parts.append(f"[INST] {pending_system}{content} [/INST]")
            pending_system = ""
    return RenderedPrompt("".join(parts), ("</s>",))


NAMED_TEMPLATES: dict[str, Callable[[Sequence[Message]], RenderedPrompt]] = {
    "gemma": _gemma,
    "chatml": _chatml,
    "llama-3": _llama3,
    "mistral": _mistral,
}

#: GGUF ``general.architecture`` values whose chat format is certain.
_FAMILIES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "qwen2": "chatml"}


def family_template(architecture: str | None) -> str | None:
    """The named template a model family always uses, if there is one."""
    return _FAMILIES.get(architecture or "")


def render_named(name: str, messages: Sequence[Message]) -> RenderedPrompt:
    try:
        template = NAMED_TEMPLATES[name]
    except KeyError:
        known = ", ".join(NAMED_TEMPLATES)
        raise ValueError(f"unknown chat template {name!r}; known: {known}") from None
    return template(messages)


class ChatTemplate:
    """How one model's chat messages become its prompt, chosen once when the model loads.

    A configured named template wins; then the model's own template (from its GGUF or its
    tokenizer); then the named template its family always uses. With none of them chat is
    refused with a 400 rather than rendered in a guessed format.
    """

    def __init__(
        self,
        model: str,
        *,
        configured: str | None,
        own: Callable[[Sequence[Message]], RenderedPrompt] | None,
        family: str | None,
    ) -> None:
        if configured is not None and configured not in NAMED_TEMPLATES:
            known = ", ".join(NAMED_TEMPLATES)
            raise ValueError(f"unknown chat template {configured!r}; known: {known}")
        self._model = model
        self._own = own
        self._named = configured or (None if own is not None else family_template(family))

    def render(self, messages: Sequence[Message]) -> RenderedPrompt:
        if self._named is not None:
            return render_named(self._named, messages)
        if self._own is not None:
            return self._own(messages)
        raise InvalidRequestError(
            f"Model '{self._model}' has no chat template and its family is not known; set "
            f"chat_template ({', '.join(NAMED_TEMPLATES)}) in its settings, or use "
            "/v1/completions.",
            param="messages",
        )
