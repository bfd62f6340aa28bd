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
    """One generation's pieces. Feed :meth:`add` until :attr:`done`, then call :meth:`finish`."""

    def __init__(self, stops: Sequence[str], limit: int | None, *, logprobs: bool) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._limit = limit
        self._logprobs = logprobs
        self._held = ""
        self._unreported = 0
        self._count = 0
        self._choices: list[TokenChoice] = []
        #: why the generation ended, once a stop sequence or the token limit ended it
        self._ended: FinishReason | None = None
        self._finished = False

    @property
    def done(self) -> bool:
        """A stop sequence or the token limit ended the generation: feed no more tokens."""
        return self._ended is not None

    def add(self, text: str, choice: TokenChoice | None = None) -> Piece | None:
        """Take one token's text; return the piece that can be sent now, if any."""
        self._count += 1
        self._unreported += 1
        self._held += text
        if choice is not None and self._logprobs:
            self._choices.append(choice)
        cut = _cut_at_stop(self._held, self._stops)
        if cut is not None:
            self._ended = "stop"
            self._finished = True
            return self._take(cut, "stop")
        if self._limit is not None and self._count >= self._limit:
            self._ended = "length"
            return None
        safe = len(self._held) - _stop_prefix_length(self._held, self._stops)
        return self._take(self._held[:safe], None) if safe > 0 else None

    def finish(self, reason: FinishReason, tail: str = "") -> Piece | None:
        """The last piece: what is held back plus ``tail`` (text the backend still had), with
        the finish reason — the limit's or the stop sequence's if one ended it, else
        ``reason``. None when the stop sequence's piece was already the last."""
        if self._finished:
            return None
        self._finished = True
        return self._take(self._held + tail, self._ended or reason)

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
