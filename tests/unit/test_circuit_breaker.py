"""A remote engine fails fast while its upstream cannot be reached, and only then."""

from __future__ import annotations

import anyio
import httpx
import msgspec
import pytest

from aiplatform.api.openai import EmbeddingRequest, EmbeddingResponse
from aiplatform.engines.embeddings import EMBED, EMBEDDINGS
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.errors import (
    AIPlatformError,
    BadGatewayError,
    EngineUnavailableError,
    UpstreamTimeoutError,
)
from aiplatform.remote.breaker import CircuitBreaker, ProbeResult
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
    """A mock upstream in one of several states; it records the paths that reached it.

    up: answers everything; down: refuses connections; hung: never answers; slow: answers
    calls after a second but probes at once; unready: /ready is 503; bare: no /ready or
    /health (404, like many OpenAI-compatible servers); garbage / huge / overloaded: answers
    calls with a body that does not decode / is too large / its own 503.
    """

    def __init__(self) -> None:
        self.state = "up"
        self.calls: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(path)
        probe = path in ("/ready", "/health")
        if self.state == "down":
            raise httpx.ConnectError("refused", request=request)
        if self.state == "hung" or (self.state == "slow" and not probe):
            await anyio.sleep(1)
        if probe:
            if self.state == "bare":
                return httpx.Response(404, json={"detail": "Not Found"})
            status = 503 if self.state == "unready" else 200
            return httpx.Response(status, json={"status": "x", "engines": {}})
        if self.state == "garbage":
            return httpx.Response(200, content=b"not json")
        if self.state == "huge":
            return httpx.Response(200, content=b"x" * 10_000)
        if self.state == "overloaded":
            return httpx.Response(503, json={"error": {"message": "busy", "type": "x"}})
        return httpx.Response(200, json=EMBEDDING)


def engine(upstream: Upstream, **settings: object) -> RemoteEngine:
    options: dict[str, object] = {
        "url": "http://upstream:8000",
        "probe_interval_s": 0.05,
        "timeout_s": 0.3,
        "connect_timeout_s": 0.2,
        "max_response_bytes": 5_000,
    }
    wire = HttpxWire(httpx.MockTransport(upstream))
    return RemoteEngine(EMBEDDINGS, EmbeddingsSettings(**(options | settings)), wire=wire)  # type: ignore[arg-type]


async def embed(remote: RemoteEngine) -> EmbeddingResponse | AIPlatformError:
    try:
        return await remote.invoke(EMBED, EmbeddingRequest(input="hello"))
    except AIPlatformError as exc:
        return exc


async def circuit(remote: RemoteEngine, state: str) -> None:
    """Wait (briefly) for the background probe to bring the circuit to ``state``."""
    with anyio.fail_after(5):
        while True:
            status = await remote.status()
            if status.circuit == state:
                return
            await anyio.sleep(0.02)


async def test_a_refused_connection_opens_the_circuit_and_an_answer_closes_it() -> None:
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
        assert "embeddings" in fast.message
        assert all(path == "/ready" for path in upstream.calls[reached:])  # probes only
        status = await remote.status()
        assert (status.ready, status.circuit) == (False, "open")
        assert "calls fail at once" in status.detail

        upstream.state = "up"
        await circuit(remote, "closed")
        assert isinstance(await embed(remote), EmbeddingResponse)
        assert (await remote.status()).ready


async def test_an_upstream_that_answers_unready_closes_the_circuit_but_is_not_ready() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        upstream.state = "unready"
        status = await remote.status()
        assert (status.ready, status.circuit) == (False, "closed")
        assert "answered 503" in status.detail
        upstream.state = "down"
        assert isinstance(await embed(remote), EngineUnavailableError)
        upstream.state = "unready"  # reachable again, still loading: calls go to it
        await circuit(remote, "closed")
        assert not (await remote.status()).ready


async def test_an_upstream_without_readiness_paths_is_not_locked_out() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        upstream.state = "down"
        assert isinstance(await embed(remote), EngineUnavailableError)
        upstream.state = "bare"
        await circuit(remote, "closed")
        upstream.state = "up"
        assert isinstance(await embed(remote), EmbeddingResponse)


async def test_a_slow_call_to_a_live_upstream_leaves_the_circuit_closed() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        upstream.state = "slow"
        assert isinstance(await embed(remote), UpstreamTimeoutError)
        await anyio.sleep(0.3)  # the probe it started has been answered
        upstream.state = "up"
        assert isinstance(await embed(remote), EmbeddingResponse)
        assert (await remote.status()).circuit == "closed"


async def test_a_hung_upstream_costs_one_timeout_then_fails_fast() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        upstream.state = "hung"
        assert isinstance(await embed(remote), UpstreamTimeoutError)
        await circuit(remote, "open")  # the probe the timeout started got no answer either
        error = await embed(remote)
        assert isinstance(error, EngineUnavailableError)
        assert error.code == "upstream_circuit_open"
        status = await remote.status()
        assert (status.ready, status.circuit) == (False, "open")
        upstream.state = "up"
        await circuit(remote, "closed")
        assert isinstance(await embed(remote), EmbeddingResponse)


async def test_answers_of_the_upstream_itself_leave_the_circuit_closed() -> None:
    upstream = Upstream()
    async with engine(upstream) as remote:
        cases = (
            ("garbage", BadGatewayError),  # decodes wrong
            ("huge", BadGatewayError),  # past max_response_bytes: the wire's "invalid"
            ("overloaded", EngineUnavailableError),  # its own 503
        )
        for state, error_type in cases:
            upstream.state = state
            error = await embed(remote)
            assert isinstance(error, error_type), state
            assert error.code != "upstream_circuit_open"
            upstream.state = "up"
            assert isinstance(await embed(remote), EmbeddingResponse), state
        assert "/ready" not in upstream.calls  # nothing made it probe


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


async def test_a_probe_that_raises_does_not_end_the_task_group_it_runs_in() -> None:
    attempts = 0

    async def probe() -> ProbeResult:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("misconfigured")
        return ProbeResult(answered=True, ready=True, detail="ok")

    breaker = CircuitBreaker("x", "http://x", probe, interval_s=0.01)
    async with anyio.create_task_group() as task_group:
        breaker.start(task_group)
        breaker.unreachable("refused")
        with anyio.fail_after(5):
            while breaker.state == "open":  # noqa: ASYNC110 (polls the probe task)
                await anyio.sleep(0.01)
    assert attempts == 3


def test_a_ready_path_must_be_a_path() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"url": "http://x", "ready_path": "ready"}, EmbeddingsSettings)
