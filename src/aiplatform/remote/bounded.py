"""Reading an upstream's response within byte limits, whatever the upstream sends.

The wires read bodies raw and decode ``gzip``/``deflate`` here, a bounded slice at a time, so
a small compressed body that inflates to gigabytes costs no more memory than the limit: the
bytes on the wire and the bytes decoded are both capped. A body past its limit, or in an
encoding not understood, raises :class:`UnusableResponseError` (which the wires report as
``WireError("invalid")``, a 502); so does a redirect, which is never followed (the request's
headers, the tenant's among them, would go to wherever it points).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

__all__ = [
    "ACCEPT_ENCODING",
    "UnusableResponseError",
    "check_length",
    "check_not_redirect",
    "read_body",
    "read_lines",
]

#: The encodings the wires ask for and decode themselves.
ACCEPT_ENCODING = "gzip, deflate"

#: Decoded bytes produced per step: what one step may hold beyond the limit, at most.
_STEP = 64 * 1024
#: zlib reads a gzip or zlib header itself (32 + the largest window).
_AUTO_HEADER = 32 + zlib.MAX_WBITS


class UnusableResponseError(Exception):
    """The upstream answered, but not with a response that may be used."""


def _invalid(reason: str) -> UnusableResponseError:
    return UnusableResponseError(reason)


def check_not_redirect(status: int, location: str | None) -> None:
    """Refuse a redirect: the wire never follows one."""
    if 300 <= status < 400:
        where = f" to {location}" if location else ""
        raise _invalid(f"answered {status}, a redirect{where}; redirects are not followed")


def check_length(content_length: str | None, limit: int) -> None:
    """Refuse a body whose declared length is already past ``limit``."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise _too_large(limit)


class _Decoder:
    """Raw body bytes in, decoded bytes out, ``_STEP`` at a time."""

    def __init__(self, content_encoding: str | None) -> None:
        encoding = (content_encoding or "").strip().lower()
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(_AUTO_HEADER)
        else:
            raise _invalid(f"sent a body in an encoding not understood here: {encoding!r}")

    def feed(self, data: bytes) -> list[bytes]:
        if self._zlib is None:
            return [data]
        out: list[bytes] = []
        try:
            while data:
                out.append(self._zlib.decompress(data, _STEP))
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise _invalid(f"sent a body that does not decompress: {exc}") from exc
        return out


async def read_body(
    chunks: AsyncIterator[bytes], content_encoding: str | None, limit: int
) -> bytes:
    """The whole body, decoded; past ``limit`` bytes (raw or decoded), ``invalid``."""
    decoder = _Decoder(content_encoding)
    raw = decoded = 0
    parts: list[bytes] = []
    async for chunk in chunks:
        raw += len(chunk)
        if raw > limit:
            raise _too_large(limit)
        for part in decoder.feed(chunk):
            decoded += len(part)
            if decoded > limit:
                raise _too_large(limit)
            parts.append(part)
    return b"".join(parts)


async def read_lines(
    chunks: AsyncIterator[bytes], content_encoding: str | None, limit: int
) -> AsyncIterator[str]:
    """The body's lines (server-sent events), decoded, without their ends; a line longer than
    ``limit`` bytes is ``invalid``. The stream as a whole has no limit."""
    decoder = _Decoder(content_encoding)
    pending = bytearray()
    async for chunk in chunks:
        for part in decoder.feed(chunk):
            # only the new part is searched for line ends: a long line arriving in small
            # pieces costs its length, not its length squared
            searched = len(pending)
            pending += part
            start = 0
            end = pending.find(b"\n", searched)
            while end != -1:
                if end - start > limit:
                    raise _line_too_long(limit)
                yield _text(bytes(pending[start:end]))
                start = end + 1
                end = pending.find(b"\n", start)
            del pending[:start]
            if len(pending) > limit:
                raise _line_too_long(limit)
    if pending:
        yield _text(bytes(pending))


def _text(line: bytes) -> str:
    try:
        return line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise _invalid(f"sent a stream line that is not UTF-8: {exc}") from exc


def _too_large(limit: int) -> UnusableResponseError:
    return _invalid(f"sent a response larger than max_response_bytes ({limit} bytes)")


def _line_too_long(limit: int) -> UnusableResponseError:
    return _invalid(f"sent a stream event larger than max_event_bytes ({limit} bytes)")
