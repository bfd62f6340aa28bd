"""A light HTTP/1.1 load generator for benchmarks: keep-alive connections, one request at a time.

An ``httpx`` client spends about as much CPU per request as the server does, which on a small
machine takes CPU from the server under test. This client writes prebuilt request bytes on raw
asyncio streams and reads only the status line, headers and ``Content-Length`` bytes, so nearly
all of the machine is left to the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["post_json_requests", "run_load"]


def post_json_requests(url: str, path: str, bodies: Sequence[bytes]) -> list[bytes]:
    """Raw HTTP/1.1 POST requests with JSON bodies, ready to write to a socket."""
    host = urlsplit(url).netloc
    return [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    url: str, requests: Sequence[bytes], concurrency: int
) -> tuple[float, list[float]]:
    """Send every request over ``concurrency`` connections; return (requests/s, latencies in ms).

    Raises if any response is not a 200.
    """
    parts = urlsplit(url)
    queue = list(reversed(requests))
    latencies: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while queue:
                request = queue.pop()
                start = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    raise RuntimeError(f"server answered {status}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(requests) / (time.perf_counter() - start), latencies
