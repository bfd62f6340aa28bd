"""Turning a backend's token-by-token text into pieces: stop sequences, the limit, usage.

Backends feed each generated token's text (and its log-probability, when asked); the assembler
holds back text that could be the start of a stop sequence until it is decided, cuts at the
first stop, counts tokens per piece, and ends at the token limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiplatform.engines.llm.generation import FinishReason, Piece, TokenChoice

__all__ = ["PieceAssembler"]


class PieceAssembler:
    def __init__(self, stops: Sequence[str], limit: int | None, *, logprobs: bool) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._limit = limit
        self._logprobs = logprobs
        self._held = ""
        self._unreported = 0
        self._count = 0
        self._choices: list[TokenChoice] = []

    def add(self, text: str, choice: TokenChoice | None = None) -> tuple[Piece | None, bool]:
        """Take one token's text; return the piece to send now (if any) and whether it ended."""
        self._count += 1
        self._unreported += 1
        self._held += text
        if choice is not None and self._logprobs:
            self._choices.append(choice)
        cut = _cut_at_stop(self._held, self._stops)
        if cut is not None:
            return self._take(cut, "stop"), True
        if self._limit is not None and self._count >= self._limit:
            return None, True
        safe = len(self._held) - _stop_prefix_length(self._held, self._stops)
        if safe <= 0:
            return None, False
        piece = self._take(self._held[:safe], None)
        return piece, False

    def finish(self, reason: FinishReason, tail: str = "") -> Piece:
        """The last piece: whatever is held back, with the finish reason."""
        return self._take(self._held + tail, reason)

    def _take(self, text: str, reason: FinishReason | None) -> Piece:
        piece = Piece(
            text,
            self._unreported,
            reason,
            list(self._choices) if self._logprobs else None,
        )
        self._held = self._held[len(text) :] if reason is None else ""
        self._unreported = 0
        self._choices.clear()
        return piece


def _cut_at_stop(text: str, stops: Sequence[str]) -> str | None:
    hits = [text.index(stop) for stop in stops if stop in text]
    return text[: min(hits)] if hits else None


def _stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could begin a stop sequence (held back)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest
