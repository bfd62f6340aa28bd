"""Wire benchmark: HTTP client libraries against one loopback server, the choice behind
``docs/adr/0002-remote-wire.md``.

The server is a trivial ASGI app on uvicorn in a process of its own (:mod:`bench.loopback`),
served as ``aiplatform serve`` serves. Each client -- aiohttp ``ClientSession``, httpcore
``AsyncConnectionPool``, ``httpx.AsyncClient``, and a raw keep-alive socket as the lower bound
-- runs, on the loop the gateway's client runs on (uvloop where installed):

(a) sequential ``POST /echo`` of a small JSON, one at a time, interleaved between clients in
    blocks: p50 and p99 latency;
(b) 32 concurrent requests (32 pooled connections): requests/s;
(c) one 1,000-event SSE stream (``GET /sse``), read line by line as each library is used for
    server-sent events (the raw client parses the chunked body itself): events/s.

Each figure is also given as a ratio to the raw socket's in the same run. Every echo is checked
to be the body sent and every stream to hold the 1,000 events in order and ``[DONE]``; a failed
check exits 1. Run: ``python -m bench.wire [--requests 2000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import aiohttp
import httpcore
import httpx

from bench.checks import fail, require, require_count, require_status, run_bench
from bench.loadgen import Connection, post_json_requests
from bench.loopback import LoopbackServer, run_like_server

CONCURRENCY = 32
EVENTS = 1000
BODY = json.dumps({"model": "m", "input": "The cat watched the old bridge on day 7."}).encode()
HEADERS = {"content-type": "application/json"}


class Client:
    """One client library's POST and SSE, over a pool of up to :data:`CONCURRENCY` connections."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def post(self, body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    def events(self, count: int) -> AsyncIterator[str]:
        raise NotImplementedError


class AiohttpClient(Client):
    name = "aiohttp"

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        await self._session.close()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        async with self._session.post(self.url + "/echo", data=body, headers=HEADERS) as response:
            return response.status, await response.read()

    async def events(self, count: int) -> AsyncIterator[str]:
        async with self._session.get(f"{self.url}/sse?events={count}") as response:
            require_status("aiohttp SSE", response.status)
            async for line in response.content:
                yield line.decode().rstrip("\r\n")


class HttpcoreClient(Client):
    name = "httpcore"

    async def open(self) -> None:
        self._pool = httpcore.AsyncConnectionPool(max_connections=CONCURRENCY)

    async def close(self) -> None:
        await self._pool.aclose()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self._pool.request(
            "POST", self.url + "/echo", content=body, headers=list(HEADERS.items())
        )
        return response.status, response.content

    async def events(self, count: int) -> AsyncIterator[str]:
        async with self._pool.stream("GET", f"{self.url}/sse?events={count}") as response:
            require_status("httpcore SSE", response.status)
            pending = b""
            async for chunk in response.aiter_stream():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode().rstrip("\r")


class HttpxClient(Client):
    name = "httpx"

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        self._client = httpx.AsyncClient(limits=limits)

    async def close(self) -> None:
        await self._client.aclose()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self._client.post(self.url + "/echo", content=body, headers=HEADERS)
        return response.status_code, response.content

    async def events(self, count: int) -> AsyncIterator[str]:
        async with self._client.stream("GET", f"{self.url}/sse?events={count}") as response:
            require_status("httpx SSE", response.status_code)
            async for line in response.aiter_lines():
                yield line


class RawClient(Client):
    """Prebuilt request bytes on plain asyncio streams: what any client must at least spend."""

    name = "raw socket"

    async def open(self) -> None:
        self._request = post_json_requests(self.url, "/echo", [BODY])[0]
        self._idle: list[Connection] = []

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        require(body == BODY, "the raw client sends only its prebuilt request")
        connection = self._idle.pop() if self._idle else await Connection.open(self.url)
        answer = await connection.send(self._request)
        self._idle.append(connection)
        return answer

    async def events(self, count: int) -> AsyncIterator[str]:
        parts = urlsplit(self.url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(
                f"GET /sse?events={count} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            require(b" 200 " in head.split(b"\r\n", 1)[0], "raw SSE: not a 200")
            require(b"chunked" in head.lower(), "raw SSE: expected a chunked body")
            pending = b""
            while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                pending += (await reader.readexactly(size + 2))[:-2]
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode().rstrip("\r")
            await reader.readexactly(2)
        finally:
            writer.close()


CLIENTS: list[type[Client]] = [RawClient, AiohttpClient, HttpcoreClient, HttpxClient]


def check_echo(name: str, answers: list[tuple[int, bytes]], expected: int) -> None:
    require_count(f"{name}: answers", len(answers), expected)
    for status, body in answers:
        require_status(name, status, body)
        require(body == BODY, f"{name}: the echo is not the body sent")


async def sequential(clients: list[Client], count: int, block: int = 50) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {client.name: [] for client in clients}
    answers: dict[str, list[tuple[int, bytes]]] = {client.name: [] for client in clients}
    for client in clients:  # warm up: open the connection
        for _ in range(block):
            await client.post(BODY)
    for _ in range(0, count, block):
        for client in clients:
            for _ in range(block):
                start = time.perf_counter()
                answer = await client.post(BODY)
                latencies[client.name].append((time.perf_counter() - start) * 1000)
                answers[client.name].append(answer)
    for client in clients:
        check_echo(client.name, answers[client.name], len(latencies[client.name]))
    return latencies


async def concurrent(client: Client, count: int) -> float:
    answers: list[tuple[int, bytes]] = []

    async def worker(share: int) -> None:
        for _ in range(share):
            answers.append(await client.post(BODY))

    await asyncio.gather(*(worker(4) for _ in range(CONCURRENCY)))  # warm up: fill the pool
    answers.clear()
    start = time.perf_counter()
    await asyncio.gather(*(worker(count // CONCURRENCY) for _ in range(CONCURRENCY)))
    rate = len(answers) / (time.perf_counter() - start)
    check_echo(f"{client.name}, concurrent", answers, count // CONCURRENCY * CONCURRENCY)
    return rate


async def sse_seconds(client: Client) -> float:
    """Seconds to read one :data:`EVENTS`-event stream, checked event by event."""
    start = time.perf_counter()
    data = [line[6:] async for line in client.events(EVENTS) if line.startswith("data: ")]
    elapsed = time.perf_counter() - start
    require_count(f"{client.name}: SSE data lines", len(data), EVENTS + 1)
    if data[-1] != "[DONE]":
        fail(f"{client.name}: the stream did not end with [DONE]")
    for index, line in enumerate(data[:-1]):
        if json.loads(line) != {"index": index}:
            fail(f"{client.name}: SSE event {index} is {line!r}")
    return elapsed


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def measure(url: str, requests: int, rounds: int) -> None:
    clients = [kind(url) for kind in CLIENTS]
    for client in clients:
        await client.open()
    try:
        print(f"(a) sequential POST /echo, {requests} requests a client, interleaved")
        latencies = await sequential(clients, requests)
        raw = percentile(latencies[RawClient.name], 50)
        for client in clients:
            values = latencies[client.name]
            p50, p99 = percentile(values, 50), percentile(values, 99)
            print(
                f"  {client.name:<11} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms   "
                f"p50 / raw socket {p50 / raw:5.2f}"
            )
        total = requests // CONCURRENCY * CONCURRENCY
        print(f"(b) {CONCURRENCY} requests at a time, {total} in all a client")
        rates = {client.name: await concurrent(client, requests) for client in clients}
        for client in clients:
            rate = rates[client.name]
            print(
                f"  {client.name:<11} {rate:8.0f} req/s   "
                f"raw socket / this {rates[RawClient.name] / rate:5.2f}"
            )
        print(f"(c) one {EVENTS}-event SSE stream, best of {rounds}")
        best = {client.name: float("inf") for client in clients}
        for _ in range(rounds):
            for client in clients:
                best[client.name] = min(best[client.name], await sse_seconds(client))
        for client in clients:
            seconds = best[client.name]
            print(
                f"  {client.name:<11} {seconds * 1000:7.2f} ms  {EVENTS / seconds:9.0f} events/s   "
                f"this / raw socket {seconds / best[RawClient.name]:5.2f}"
            )
    finally:
        for client in clients:
            await client.close()


def versions() -> str:
    names = ["aiohttp", "httpcore", "httpx", "uvicorn", "uvloop", "httptools"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    require(args.requests >= CONCURRENCY, f"--requests must be at least {CONCURRENCY}")
    print(versions())
    with LoopbackServer() as server:
        run_like_server(measure(server.url, args.requests, args.rounds))


if __name__ == "__main__":
    run_bench(main)
