"""The bare baseline of an HTTP hop: a trivial ASGI app on uvicorn, in a process of its own.

Served exactly as ``aiplatform serve`` serves its app (uvicorn's defaults: uvloop and httptools
where installed, no access log), so that a client's round trip to it is the cost of one
loopback HTTP hop with no application work:

- ``POST /echo`` answers 200 with the request's JSON body (``?delay_ms=D``: after sleeping D
  ms, as a model computing for D ms would; ``x-slept-ms`` tells how long it really slept);
- ``GET /sse?events=N`` streams N server-sent events ``data: {"index": i}``, one ASGI message
  each (as a streaming route sends them), then ``data: [DONE]``.

Run alone: ``python -m bench.loopback --port 8123``; benches use :class:`LoopbackServer`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx

from aiplatform.testing import free_port

__all__ = ["LoopbackServer", "app", "run_like_server"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

T = TypeVar("T")

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/echo" and scope["method"] == "POST":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        delay_ms = float(parse_qs(scope["query_string"].decode()).get("delay_ms", ["0"])[0])
        slept_ms = 0.0
        if delay_ms > 0:
            start = time.perf_counter()
            await asyncio.sleep(delay_ms / 1000)
            slept_ms = (time.perf_counter() - start) * 1000
        headers = [
            *_JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-slept-ms", f"{slept_ms:.4f}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif scope["path"] == "/sse" and scope["method"] == "GET":
        query = parse_qs(scope["query_string"].decode())
        events = int(query.get("events", ["1000"])[0])
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        for index in range(events):
            event = b'data: {"index": %d}\n\n' % index
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"error": "not found"}'})


class LoopbackServer:
    """``python -m bench.loopback`` as a child process on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LoopbackServer:
        command = [sys.executable, "-m", "bench.loopback", "--port", str(self.port)]
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("the loopback server did not start")
            try:
                if httpx.post(self.url + "/echo", content=b"{}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=15)
            self._proc = None


def run_like_server(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the event loop uvicorn serves with (uvloop where installed), the
    loop a gateway's own HTTP client runs on."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
