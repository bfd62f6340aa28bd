"""A deterministic fake LLM: words derived from the prompt, no weights.

The same prompt and seed always give the same words on every machine; it honours max_tokens,
stop sequences and JSON mode (a minimal instance of the schema), so every mechanic of the API
can be tested without a model. One token is one word.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aiplatform.engines.llm.generation import Piece, PreparedPrompt, SamplingParams, TokenChoice
from aiplatform.engines.llm.pieces import PieceAssembler

__all__ = ["FakeLLM"]

_TEXT = (
    "the quick brown fox jumps over a lazy dog while seven curious cats watch from an old "
    "wooden fence near the quiet river under bright morning light"
)
_WORDS = tuple(_TEXT.split())


class FakeLLM:
    def __init__(
        self,
        name: str,
        *,
        context_length: int = 4096,
        slots: int = 4,
        token_delay_s: float = 0.0,
        answer_tokens: int = 24,
    ) -> None:
        self._name = name
        self._context_length = context_length
        self._slots = slots
        self._delay = token_delay_s
        self._answer_tokens = answer_tokens
        #: tokens produced so far, over all generations (tests watch cancellation with it)
        self.produced = 0
        self.loaded = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def slots(self) -> int:
        return self._slots

    def load(self) -> None:
        self.loaded = True

    def unload(self) -> None:
        self.loaded = False

    def prepare_chat(self, messages: Sequence[dict[str, str]]) -> PreparedPrompt:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"
        return self.prepare_text(text)

    def prepare_text(self, prompt: str) -> PreparedPrompt:
        return PreparedPrompt(prompt, tuple(range(len(prompt.split()))), ())

    def generate(
        self, prompt: PreparedPrompt, params: SamplingParams, cancelled: threading.Event
    ) -> Iterator[Piece]:
        if not self.loaded:
            raise RuntimeError(f"fake model {self._name} generated while unloaded")
        if params.json_mode or params.json_schema is not None:
            words = [json.dumps(_instance(params.json_schema or {"type": "object"}))]
        else:
            words = self._words(prompt.text, params.seed)
        pieces = PieceAssembler(
            params.stop + prompt.stop, params.max_tokens, logprobs=params.logprobs is not None
        )
        for count, word in enumerate(words):
            if cancelled.is_set():
                return
            if self._delay:
                time.sleep(self._delay)
            self.produced += 1
            text = word if count == 0 else " " + word
            piece = pieces.add(text, _choice(text, params.logprobs))
            if piece is not None:
                yield piece
            if pieces.done:
                break
        last = pieces.finish("stop")  # out of words: the fake's end of generation
        if last is not None:
            yield last

    def _words(self, text: str, seed: int | None) -> list[str]:
        digest = hashlib.sha256(f"{seed}|{text}".encode()).digest()
        return [_WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(self._answer_tokens)]


def _choice(text: str, alternatives: int | None) -> TokenChoice | None:
    """Made-up but stable log-probabilities: the chosen word is always the likeliest."""
    if alternatives is None:
        return None
    others = tuple((word, -1.0 - rank) for rank, word in enumerate(_WORDS[:alternatives]))
    return TokenChoice(text, -0.5, ((text, -0.5), *others)[:alternatives])


def _instance(schema: dict[str, Any] | bool) -> Any:
    """A small value that satisfies a JSON schema's common keywords."""
    if not isinstance(schema, dict):  # a boolean schema: true takes anything, {} among them
        schema = {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _instance(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        names = schema.get("required", properties)
        return {name: _instance(properties.get(name, {})) for name in names}
    if kind == "array":
        return [_instance(schema.get("items", {}))] * int(schema.get("minItems", 0))
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(
        kind, "text"
    )
