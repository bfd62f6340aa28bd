"""Server-sent events as OpenAI streams them: ``data: <json>`` events, ``data: [DONE]`` last."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["DONE", "DONE_EVENT", "encode_event", "iter_data"]

DONE = "[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"


def encode_event(data: bytes) -> bytes:
    """One ``data:`` event carrying a JSON document (which never holds a raw newline)."""
    return b"data: " + data + b"\n\n"


async def iter_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """The data of each event in an SSE line stream, multi-line data joined by newlines."""
    buffer: list[str] = []
    async for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer.clear()
            continue
        if line.startswith(":"):
            continue  # a comment / keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            buffer.append(value.removeprefix(" "))
    if buffer:
        yield "\n".join(buffer)
