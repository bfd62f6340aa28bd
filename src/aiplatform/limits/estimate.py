"""What a request is charged against the token limits before its answer says what it used.

The estimate is deliberately simple and cheap: about four characters a token for text, one
token per token id, plus the most the request may generate. The difference to the response's
``usage`` is settled afterwards, so the estimate only decides whether a request may start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "TOKEN_PATHS", "estimate_tokens"]

CHARS_PER_TOKEN = 4
CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
#: The routes whose requests are charged tokens.
TOKEN_PATHS = frozenset({CHAT_PATH, COMPLETIONS_PATH, EMBEDDINGS_PATH})
#: ``/v1/completions`` generates this many tokens when ``max_tokens`` is not given (the
#: server's default, as OpenAI's).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16


def estimate_tokens(body: Mapping[str, Any], path: str) -> int:
    """Tokens ``body`` (a decoded JSON request) is charged up front on ``path``.

    Chat: the messages' characters / 4 (rounded up) plus ``max_completion_tokens`` (or
    ``max_tokens``) for each of the ``n`` choices. Completions: the same over the prompt.
    Embeddings: the input's characters / 4, and one token per token id. Values of the wrong
    type count as nothing (the route refuses the request anyway).
    """
    if path == CHAT_PATH:
        prompt = _ceil_tokens(_message_chars(body.get("messages")))
        generated = _count(body.get("max_completion_tokens"))
        if generated is None:
            generated = _count(body.get("max_tokens"))
        return prompt + _choices(body) * (generated or 0)
    if path == COMPLETIONS_PATH:
        prompt = _ceil_tokens(_text_chars(body.get("prompt")))
        generated = _count(body.get("max_tokens"))
        if generated is None:
            generated = COMPLETIONS_DEFAULT_MAX_TOKENS
        return prompt + _choices(body) * generated
    if path == EMBEDDINGS_PATH:
        return _embedding_input_tokens(body.get("input"))
    return 0


def _ceil_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _count(value: Any) -> int | None:
    """A non-negative integer field, or None when it is absent or not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _choices(body: Mapping[str, Any]) -> int:
    n = _count(body.get("n"))
    return n if n else 1


def _text_chars(value: Any) -> int:
    """Characters of a string, or of the strings in a list."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(item) for item in value if isinstance(item, str))
    return 0


def _message_chars(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(_one_message_chars(message) for message in messages if isinstance(message, dict))


def _one_message_chars(message: Mapping[str, Any]) -> int:
    """The content's text (a string, or the text parts of a list) and the arguments of the tool
    calls an assistant message carries: what the model reads back."""
    content = message.get("content")
    chars = len(content) if isinstance(content, str) else 0
    if isinstance(content, list):
        chars += sum(len(text) for text in _strings(part.get("text") for part in _dicts(content)))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        functions = (call.get("function") for call in _dicts(calls))
        chars += sum(
            len(arguments) for arguments in _strings(f.get("arguments") for f in _dicts(functions))
        )
    return chars


def _embedding_input_tokens(value: Any) -> int:
    if isinstance(value, str):
        return _ceil_tokens(len(value))
    if not isinstance(value, list):
        return 0
    chars = 0
    token_ids = 0
    for item in value:
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            token_ids += 1
        elif isinstance(item, list):
            token_ids += len(item)
    return _ceil_tokens(chars) + token_ids


def _dicts(items: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    return (item for item in items if isinstance(item, dict))


def _strings(items: Iterable[Any]) -> Iterable[str]:
    return (item for item in items if isinstance(item, str))
