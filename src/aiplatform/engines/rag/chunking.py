"""Cutting a document into chunks for embedding: pieces of at most ``size`` characters, cut
at the strongest boundary that fits (paragraph, line, sentence, word, else anywhere), packed
greedily, each starting up to ``overlap`` characters before the previous one ended so that a
sentence split across two chunks is whole in at least one of them.

Linear in the document's length: pieces are produced lazily, and the overlap search looks only
at the pieces that start within ``overlap`` characters of the chunk's end (a window that only
moves forward). It is still CPU work on the scale of a second for the largest documents, so
callers in the server run it on a worker thread, never on the event loop.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aiplatform.errors import InvalidRequestError

__all__ = [
    "Chunk",
    "check_chunk_count",
    "chunk_documents",
    "count_chunks",
    "iter_chunks",
    "split_text",
]

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
    return list(iter_chunks(text, size, overlap))


def chunk_documents(
    texts: Sequence[str], size: int, overlap: int, *, limit: int, param: str, setting: str
) -> list[list[Chunk]]:
    """The chunks of each of ``texts``; a 400 ``too_many_chunks`` naming ``param`` as soon as
    they make more than ``limit`` in all (before anything is embedded or stored)."""
    found: list[list[Chunk]] = []
    total = 0
    for text in texts:
        chunks: list[Chunk] = []
        for chunk in iter_chunks(text, size, overlap):
            chunks.append(chunk)
            total += 1
            if total > limit:
                raise too_many_chunks(param, size, limit, setting)
        found.append(chunks)
    return found


def check_chunk_count(
    texts: Sequence[str], size: int, overlap: int, *, limit: int, param: str, setting: str
) -> int:
    """How many chunks ``texts`` make in all, counted without keeping them; the same 400 as
    :func:`chunk_documents` past ``limit``."""
    total = 0
    for text in texts:
        total += count_chunks(text, size, overlap, limit=limit - total)
        if total > limit:
            raise too_many_chunks(param, size, limit, setting)
    return total


def too_many_chunks(param: str, size: int, limit: int, setting: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{param} would make more than {limit} chunks at chunk_size {size}, the most "
        f"{setting} allows; use a larger chunk_size or send fewer documents at once.",
        param=param,
        code="too_many_chunks",
    )


def count_chunks(text: str, size: int, overlap: int, *, limit: int | None = None) -> int:
    """How many chunks :func:`split_text` makes of ``text``; counting stops past ``limit``
    (the result is then ``limit + 1``)."""
    count = 0
    for _ in iter_chunks(text, size, overlap):
        count += 1
        if limit is not None and count > limit:
            break
    return count


def iter_chunks(text: str, size: int, overlap: int) -> Iterator[Chunk]:
    """The chunks of ``text``, one at a time."""
    if size < 1:
        raise ValueError("size must be positive")
    overlap = max(0, min(overlap, size // 2))
    # starts of the pieces seen so far that lie within ``overlap`` of the current chunk's end
    recent: deque[int] = deque()
    start = end = -1
    for piece_start, piece_end in _pieces(text, 0, len(text), size, 0):
        if start < 0:
            start, end = piece_start, piece_end
        elif piece_end - start <= size:
            end = piece_end
        else:
            chunk = _chunk(text, start, end)
            if chunk.text:
                yield chunk
            # the earliest piece boundary within ``overlap`` before ``end``, else this piece
            while recent and end - recent[0] > overlap:
                recent.popleft()
            start = recent[0] if overlap and recent else piece_start
            end = piece_end
            if end - start > size:
                start = piece_start
        recent.append(piece_start)
    if start >= 0:
        chunk = _chunk(text, start, end)
        if chunk.text:
            yield chunk


def _pieces(text: str, start: int, end: int, size: int, level: int) -> Iterator[tuple[int, int]]:
    """``text[start:end]`` cut into spans of at most ``size`` at the strongest boundaries."""
    if end - start <= size:
        yield start, end
        return
    if level == len(_BOUNDARIES):
        for at in range(start, end, size):
            yield at, min(at + size, end)
        return
    cursor = start
    for match in _BOUNDARIES[level].finditer(text, start, end):
        if match.end() > cursor:
            yield from _pieces(text, cursor, match.end(), size, level + 1)
            cursor = match.end()
    if end > cursor:
        yield from _pieces(text, cursor, end, size, level + 1)


def _chunk(text: str, start: int, end: int) -> Chunk:
    raw = text[start:end]
    stripped = raw.strip()
    if not stripped:
        return Chunk(start=start, end=start, text="")
    lead = len(raw) - len(raw.lstrip())
    return Chunk(start=start + lead, end=start + lead + len(stripped), text=stripped)
