"""What a response says it used: ``usage.total_tokens`` of a JSON body or of an SSE stream's
chunks, read from the bytes as they are sent."""

from __future__ import annotations

import msgspec
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent

__all__ = ["UsageMeter"]

#: The largest JSON body (or SSE line) read for its usage; a larger one keeps the estimate.
MAX_READ_BYTES = 16 * 1024 * 1024


class _Usage(msgspec.Struct):
    total_tokens: int


class _WithUsage(msgspec.Struct):
    usage: _Usage | None = None


_decoder = msgspec.json.Decoder(_WithUsage)


class UsageMeter:
    """Watches one response go out; :meth:`used` is then the tokens it reports."""

    def __init__(self) -> None:
        self.status: int | None = None
        self._stream = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._line = b""
        self._skip_line = False
        self._total: int | None = None

    def start(self, event: HTTPResponseStartEvent) -> None:
        self.status = event["status"]
        content_type = next(
            (value for key, value in event.get("headers", ()) if key.lower() == b"content-type"),
            b"",
        )
        self._stream = content_type.startswith(b"text/event-stream")

    def feed(self, event: HTTPResponseBodyEvent) -> None:
        body = event.get("body", b"")
        if self._stream:
            self._feed_stream(body)
            return
        self._size += len(body)
        if self._size <= MAX_READ_BYTES:
            self._chunks.append(body)
        if not event.get("more_body", False) and self._size <= MAX_READ_BYTES:
            self._total = _total(b"".join(self._chunks))
            self._chunks = []

    def used(self, estimate: int) -> int:
        """The tokens the response reported; without a report, none for an error and the
        estimate otherwise."""
        if self._total is not None:
            return self._total
        if self.status is not None and self.status >= 400:
            return 0
        return estimate

    def _feed_stream(self, body: bytes) -> None:
        if self._skip_line:  # the rest of a line too long to read
            end = body.find(b"\n")
            if end < 0:
                return
            body, self._skip_line = body[end + 1 :], False
        lines = (self._line + body).split(b"\n")
        self._line = lines.pop()
        if len(self._line) > MAX_READ_BYTES:
            self._line, self._skip_line = b"", True
        for line in lines:
            if line.startswith(b"data:") and b'"usage"' in line:
                total = _total(line[5:].strip())
                if total is not None:
                    self._total = total


def _total(data: bytes) -> int | None:
    try:
        usage = _decoder.decode(data).usage
    except (msgspec.DecodeError, RecursionError):
        return None
    return usage.total_tokens if usage is not None else None
