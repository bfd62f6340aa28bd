"""Streaming operations: SSE on the server, decoded back to chunks by the remote adapter.

No shipped engine streams yet, so a small echo engine declared here exercises the machinery
exactly as a streaming engine kind would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from aiplatform.engines.base import Engine, EngineKind, NoChunk, Operation
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import (
    AIPlatformError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    error_for_status,
)
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire
from aiplatform.server.app import create_app
from aiplatform.settings import Settings

pytestmark = pytest.mark.anyio


class EchoRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str
    stream: bool = False
    fail_at: int | None = None
    fail_status: int = 400


class EchoResponse(msgspec.Struct, kw_only=True):
    words: list[str]


class EchoChunk(msgspec.Struct, kw_only=True):
    index: int
    word: str


class CountRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str
    distinct: bool = False


class CountResponse(msgspec.Struct, kw_only=True):
    count: int


COUNT: Operation[CountRequest, CountResponse, NoChunk] = Operation(
    name="count",
    method="GET",
    path="/v1/echo/count",
    request=CountRequest,
    response=CountResponse,
)

ECHO: Operation[EchoRequest, EchoResponse, EchoChunk] = Operation(
    name="echo",
    method="POST",
    path="/v1/echo",
    request=EchoRequest,
    response=EchoResponse,
    chunk=EchoChunk,
)


class EchoEngine(LocalEngine):
    def __init__(self) -> None:
        super().__init__(ECHO_KIND)
        self.bind(ECHO, self.echo)
        self.bind_stream(ECHO, self.echo_stream)
        self.bind(COUNT, self.count)

    def load(self) -> None:
        pass

    async def list_models(self) -> list:  # type: ignore[type-arg]
        return []

    async def echo(self, request: EchoRequest) -> EchoResponse:
        return EchoResponse(words=request.text.split())

    async def count(self, request: CountRequest) -> CountResponse:
        words = request.text.split()
        return CountResponse(count=len(set(words)) if request.distinct else len(words))

    async def echo_stream(self, request: EchoRequest) -> AsyncIterator[EchoChunk]:
        if not request.text:
            raise InvalidRequestError("text is empty", param="text")
        for index, word in enumerate(request.text.split()):
            if index == request.fail_at:
                raise error_for_status(
                    request.fail_status, f"failed at word {index}", code="echo_failed"
                )
            yield EchoChunk(index=index, word=word)


ECHO_KIND: EngineKind[EngineSettings] = EngineKind(
    name="echo",
    summary="echo",
    operations=(ECHO, COUNT),
    settings_type=EngineSettings,
    build_local=lambda settings, needs: EchoEngine(),
)


def client_for(engine: Engine) -> httpx.AsyncClient:
    app = create_app(Settings(), engines={"echo": engine})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def test_sse_wire_format() -> None:
    async with EchoEngine() as engine, client_for(engine) as client:
        response = await client.post("/v1/echo", json={"text": "a b c", "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert [msgspec.json.decode(e.removeprefix("data: ")) for e in events[:-1]] == [
        {"index": 0, "word": "a"},
        {"index": 1, "word": "b"},
        {"index": 2, "word": "c"},
    ]


async def test_error_before_first_chunk_is_an_http_error() -> None:
    async with EchoEngine() as engine, client_for(engine) as client:
        response = await client.post("/v1/echo", json={"text": "", "stream": True})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "text"


async def test_remote_stream_equals_local_stream() -> None:
    async with EchoEngine() as local:
        pod = create_app(Settings(), engines={"echo": local})
        remote = RemoteEngine(
            ECHO_KIND,
            EngineSettings(url="http://localhost"),
            wire=HttpxWire(httpx.ASGITransport(pod)),
        )
        async with remote:
            request = EchoRequest(text="one two three", stream=True)
            got = [chunk async for chunk in remote.stream(ECHO, request)]
            want = [chunk async for chunk in local.stream(ECHO, request)]
            assert got == want
            assert await remote.invoke(ECHO, EchoRequest(text="x y")) == EchoResponse(
                words=["x", "y"]
            )
            with pytest.raises(InvalidRequestError, match="text is empty"):
                [chunk async for chunk in remote.stream(ECHO, EchoRequest(text="", stream=True))]
            seen: list[EchoChunk] = []

            async def consume() -> None:
                request = EchoRequest(text="a b c d", stream=True, fail_at=2)
                async for chunk in remote.stream(ECHO, request):
                    seen.append(chunk)

            with pytest.raises(InvalidRequestError, match="failed at word 2"):
                await consume()
            assert [chunk.word for chunk in seen] == ["a", "b"]


async def test_query_operations_in_both_modes() -> None:
    async with EchoEngine() as local:
        pod = create_app(Settings(), engines={"echo": local})
        remote = RemoteEngine(
            ECHO_KIND,
            EngineSettings(url="http://localhost"),
            wire=HttpxWire(httpx.ASGITransport(pod)),
        )
        async with remote, client_for(local) as http:
            for request in (CountRequest(text="a b a"), CountRequest(text="a b a", distinct=True)):
                assert await remote.invoke(COUNT, request) == await local.invoke(COUNT, request)
            assert (
                await remote.invoke(COUNT, CountRequest(text="a b a", distinct=True))
            ).count == 2
            bad = await http.get("/v1/echo/count", params={"distinct": "maybe"})
    assert bad.status_code == 400
    assert "query" in bad.json()["error"]["message"]


async def test_error_after_the_first_chunk_is_an_openai_error_event_with_its_status() -> None:
    async with EchoEngine() as engine, client_for(engine) as client:
        body = {"text": "a b c", "stream": True, "fail_at": 1, "fail_status": 429}
        response = await client.post("/v1/echo", json=body)
    assert response.status_code == 200
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    assert msgspec.json.decode(events[-2]) == {
        "error": {
            "message": "failed at word 1",
            "type": "rate_limit_error",
            "param": None,
            "code": "echo_failed",
            "http_status": 429,
        }
    }


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, NotFoundError),
        (409, ConflictError),
        (413, RequestTooLargeError),
        (429, RateLimitError),
    ],
)
async def test_errors_in_the_middle_of_a_remote_stream_keep_their_status(
    status: int, cls: type[AIPlatformError]
) -> None:
    async with EchoEngine() as local:
        pod = create_app(Settings(), engines={"echo": local})
        wire = HttpxWire(httpx.ASGITransport(pod))
        async with RemoteEngine(
            ECHO_KIND, EngineSettings(url="http://localhost"), wire=wire
        ) as remote:
            request = EchoRequest(text="a b c", stream=True, fail_at=2, fail_status=status)
            seen: list[str] = []

            async def consume(engine: Engine) -> None:
                async for chunk in engine.stream(ECHO, request):
                    seen.append(chunk.word)

            for engine in (local, remote):
                with pytest.raises(AIPlatformError) as caught:
                    await consume(engine)
                assert type(caught.value) is cls
                assert caught.value.status_code == status
                assert (caught.value.message, caught.value.code) == (
                    "failed at word 2",
                    "echo_failed",
                )
    assert seen == ["a", "b", "a", "b"]
