"""A remote engine whose upstream failed fails fast until a probe finds the upstream ready."""

from __future__ import annotations

import anyio
import httpx
import pytest

from aiplatform.api.openai import EmbeddingRequest, EmbeddingResponse
from aiplatform.engines.embeddings import EMBED, EMBEDDINGS
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.errors import AIPlatformError, BadGatewayError, EngineUnavailableError
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire

pytestmark = pytest.mark.anyio

EMBEDDING = {
    "object": "list",
    "model": "m",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}


class Upstream:
    """A mock upstream that can be down, answering, or unusable; it counts what reached it."""

    def __init__(self) -> None:
        self.state = "up"
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if self.state == "down":
            raise httpx.ConnectError("refused", request=request)
        if self.state == "garbage":
            return httpx.Response(200, content=b"not json")
        if self.state == "overloaded":
            return httpx.Response(503, json={"error": {"message": "busy", "type": "x"}})
        if request.url.path == "/ready":
            return httpx.Response(200, json={"status": "ready", "engines": {}})
        return httpx.Response(200, json=EMBEDDING)


def engine(upstream: Upstream, **settings: object) -> RemoteEngine:
    options: dict[str, object] = {"url": "http://upstream:8000", "probe_interval_s": 0.05}
    wire = HttpxWire(httpx.MockTransport(upstream))
    return RemoteEngine(EMBEDDINGS, EmbeddingsSettings(**(options | settings)), wire=wire)  # type: ignore[arg-type]


async def embed(remote: RemoteEngine) -> EmbeddingResponse | AIPlatformError:
    try:
        return await remote.invoke(EMBED, EmbeddingRequest(input="hello"))
    except AIPlatformError as exc:
        return exc


async def test_a_failure_opens_the_circuit_and_a_ready_probe_closes_it() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        assert isinstance(await embed(remote), EmbeddingResponse)
        upstream.state = "down"
        first = await embed(remote)
        assert isinstance(first, EngineUnavailableError)
        assert first.code == "upstream_unavailable"

        reached = len(upstream.calls)
        fast = await embed(remote)
        assert isinstance(fast, EngineUnavailableError)
        assert fast.code == "upstream_circuit_open"
        assert fast.status_code == 503
        assert fast.headers == {"Retry-After": "1"}
        assert all(path == "/ready" for path in upstream.calls[reached:])  # probes only
        status = await remote.status()
        assert (status.ready, status.circuit) == (False, "open")
        assert "calls fail at once" in status.detail

        upstream.state = "up"
        with anyio.fail_after(5):
            while (await remote.status()).circuit != "closed":  # noqa: ASYNC110 (polls a probe)
                await anyio.sleep(0.02)
        assert isinstance(await embed(remote), EmbeddingResponse)
        assert (await remote.status()).ready


async def test_answers_of_the_upstream_itself_leave_the_circuit_closed() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        for state, error_type in (
            ("garbage", BadGatewayError),
            ("overloaded", EngineUnavailableError),
        ):
            upstream.state = state
            error = await embed(remote)
            assert isinstance(error, error_type)
            assert error.code != "upstream_circuit_open"
            upstream.state = "up"
            assert isinstance(await embed(remote), EmbeddingResponse)


async def test_a_failed_readiness_probe_opens_the_circuit() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        upstream.state = "down"
        status = await remote.status()
        assert (status.ready, status.circuit) == (False, "open")
        error = await embed(remote)
        assert isinstance(error, EngineUnavailableError)
        assert error.code == "upstream_circuit_open"


async def test_without_a_breaker_every_call_tries_the_upstream() -> None:
    upstream = Upstream()
    async with engine(upstream, circuit_breaker=False) as remote:
        upstream.state = "down"
        for _ in range(3):
            error = await embed(remote)
            assert isinstance(error, EngineUnavailableError)
            assert error.code == "upstream_unavailable"
        assert upstream.calls == ["/v1/embeddings"] * 3
        status = await remote.status()
        assert not status.ready
        assert status.circuit is None
