"""A light HTTP/1.1 load generator for benchmarks: keep-alive connections, one request at a time.

An ``httpx`` client spends about as much CPU per request as the server does, which on a small
machine takes CPU from the server under test. This client writes prebuilt request bytes on raw
asyncio streams and reads only the status line, headers and ``Content-Length`` bytes, so nearly
all of the machine is left to the server. Bodies are kept and checked after the clock stops, so
a figure never comes from answers that were errors or empty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from bench.checks import fail, require_status

__all__ = ["Connection", "post_json_requests", "run_load"]

#: Checks one response body; raises :class:`bench.checks.BenchCheckError` when it is wrong.
BodyCheck = Callable[[bytes], None]


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


class Connection:
    """One keep-alive connection; :meth:`send` writes a request and reads its response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of the response to ``request``."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            fail(f"a response without Content-Length (status {status}); this client reads no other")
        body = await self._reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self._writer.close()


async def run_load(
    url: str, requests: Sequence[bytes], concurrency: int, check: BodyCheck | None = None
) -> tuple[float, list[float]]:
    """Send every request over ``concurrency`` connections; return (requests/s, latencies in ms).

    Every response must be a 200, and ``check`` (when given) must accept every body; both are
    verified after the timing, and a failure raises :class:`bench.checks.BenchCheckError`.
    """
    queue = list(reversed(requests))
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []

    async def worker() -> None:
        connection = await Connection.open(url)
        try:
            while queue:
                request = queue.pop()
                start = time.perf_counter()
                answers.append(await connection.send(request))
                latencies.append((time.perf_counter() - start) * 1000)
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = len(requests) / (time.perf_counter() - start)
    check_answers(url, answers, check)
    return rate, latencies


def check_answers(url: str, answers: Sequence[tuple[int, bytes]], check: BodyCheck | None) -> None:
    for status, body in answers:
        require_status(f"a request to {url}", status, body)
        if check is not None:
            check(body)
