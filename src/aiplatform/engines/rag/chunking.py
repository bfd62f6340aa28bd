"""Cutting a document into chunks for embedding: pieces of at most ``size`` characters, cut
at the strongest boundary that fits (paragraph, line, sentence, word, else anywhere), packed
greedily, each starting up to ``overlap`` characters before the previous one ended so that a
sentence split across two chunks is whole in at least one of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Chunk", "split_text"]

#: Boundaries from strongest to weakest; each is a zero-width split point after its match.
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile("(?<=[.!?\u3002\uff01\uff1f])\\s+"),  # also CJK full stops and marks
    re.compile(r"\s+"),
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """``text[start:end]`` of the document, stripped of surrounding white space."""

    start: int
    end: int
    text: str


def split_text(text: str, size: int, overlap: int) -> list[Chunk]:
    """The chunks of ``text`` (none for blank text)."""
    if size < 1:
        raise ValueError("size must be positive")
    overlap = max(0, min(overlap, size // 2))
    pieces = _pieces(text, 0, len(text), size, 0)
    chunks: list[Chunk] = []
    start = end = None
    for piece_start, piece_end in pieces:
        if start is None or end is None:
            start, end = piece_start, piece_end
        elif piece_end - start <= size:
            end = piece_end
        else:
            chunks.append(_chunk(text, start, end))
            start = _overlap_start(text, pieces, end, piece_start, overlap)
            end = piece_end
            if end - start > size:
                start = piece_start
    if start is not None and end is not None:
        chunks.append(_chunk(text, start, end))
    return [chunk for chunk in chunks if chunk.text]


def _pieces(text: str, start: int, end: int, size: int, level: int) -> list[tuple[int, int]]:
    """``text[start:end]`` cut into spans of at most ``size`` at the strongest boundaries."""
    if end - start <= size:
        return [(start, end)]
    if level == len(_BOUNDARIES):
        return [(at, min(at + size, end)) for at in range(start, end, size)]
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _BOUNDARIES[level].finditer(text, start, end):
        if match.end() > cursor:
            spans.append((cursor, match.end()))
            cursor = match.end()
    spans.append((cursor, end))
    result: list[tuple[int, int]] = []
    for span_start, span_end in spans:
        if span_end > span_start:
            result.extend(_pieces(text, span_start, span_end, size, level + 1))
    return result


def _overlap_start(
    text: str, pieces: list[tuple[int, int]], end: int, next_start: int, overlap: int
) -> int:
    """Where the next chunk starts: the earliest piece boundary within ``overlap`` characters
    before ``end``, or ``next_start`` when none is."""
    if overlap == 0:
        return next_start
    best = next_start
    for piece_start, _ in reversed(pieces):
        if piece_start >= next_start:
            continue
        if end - piece_start > overlap:
            break
        best = piece_start
    return best


def _chunk(text: str, start: int, end: int) -> Chunk:
    raw = text[start:end]
    stripped = raw.strip()
    if not stripped:
        return Chunk(start=start, end=start, text="")
    lead = len(raw) - len(raw.lstrip())
    return Chunk(start=start + lead, end=start + lead + len(stripped), text=stripped)
