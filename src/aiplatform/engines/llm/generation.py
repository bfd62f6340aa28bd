"""What the LLM engine asks of a model, independent of the backend that runs it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from aiplatform.engines.llm.settings import LLMModelSettings
    from aiplatform.engines.llm.templates import ChatTemplate

__all__ = [
    "ConfiguredModel",
    "FinishReason",
    "LLMModel",
    "Piece",
    "PreparedPrompt",
    "SamplingParams",
    "TokenChoice",
    "token_choice",
]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    #: None: until the context is full or the model stops.
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: Constrain the output to JSON (any object), or to this JSON schema.
    json_mode: bool = False
    json_schema: dict[str, Any] | None = None
    #: Report each generated token's log-probability, and this many alternatives (None: off).
    logprobs: int | None = None


@dataclass(frozen=True, slots=True)
class PreparedPrompt:
    text: str
    tokens: Sequence[int]
    #: Text that ends the answer besides end-of-generation tokens (the template's turn end).
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenChoice:
    """A token the model produced (or could have), with its log-probability."""

    text: str
    logprob: float
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass(slots=True)
class Piece:
    """A stretch of generated text; the last piece of a generation carries its finish reason."""

    text: str
    tokens: int
    finish_reason: FinishReason | None = None
    #: One entry a token, when the request asked for log-probabilities.
    logprobs: list[TokenChoice] | None = None


def token_choice(
    logits: Any, token: int, text: str, alternatives: int, token_text: Callable[[int], str]
) -> TokenChoice:
    """``token``'s log-probability under ``logits`` (a 1-D float array over the vocabulary) and
    the ``alternatives`` likeliest tokens, best first."""
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    top: tuple[tuple[str, float], ...] = ()
    if alternatives:
        best = np.argpartition(-logprobs, alternatives)[:alternatives]
        best = best[np.argsort(-logprobs[best])]
        top = tuple((token_text(int(i)), float(logprobs[i])) for i in best)
    return TokenChoice(text, float(logprobs[token]), top)


class ConfiguredModel:
    """Base of the real backends: name, context and slots come from the model's settings; a
    prompt is the chat template chosen at load (``_template``) and the backend's tokenizer."""

    def __init__(self, settings: LLMModelSettings) -> None:
        self._settings = settings
        self._template: ChatTemplate | None = None

    def prepare_chat(self, messages: Sequence[dict[str, str]]) -> PreparedPrompt:
        assert self._template is not None, "the model is not loaded"
        rendered = self._template.render(messages)
        return PreparedPrompt(rendered.prompt, self._tokenize(rendered.prompt), rendered.stop)

    def prepare_text(self, prompt: str) -> PreparedPrompt:
        return PreparedPrompt(prompt, self._tokenize(prompt), ())

    def _tokenize(self, text: str) -> Sequence[int]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self._settings.name

    @property
    def context_length(self) -> int:
        return self._settings.context_length

    @property
    def slots(self) -> int:
        return self._settings.slots


class LLMModel(Protocol):
    """One served model. Blocking methods; the engine runs them on the model's own threads."""

    @property
    def name(self) -> str: ...

    @property
    def context_length(self) -> int: ...

    @property
    def slots(self) -> int: ...

    def load(self) -> None: ...

    def unload(self) -> None: ...

    def prepare_chat(self, messages: Sequence[dict[str, str]]) -> PreparedPrompt:
        """The prompt for these messages in the model's chat template (InvalidRequestError when
        the model has none)."""
        ...

    def prepare_text(self, prompt: str) -> PreparedPrompt: ...

    def generate(
        self, prompt: PreparedPrompt, params: SamplingParams, cancelled: threading.Event
    ) -> Iterator[Piece]:
        """Generate until a stop, the token limit, or ``cancelled``; the last piece carries the
        finish reason. Raises InvalidRequestError for parameters the model cannot honour."""
        ...
