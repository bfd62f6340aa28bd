"""The remote adapter maps every upstream failure to the platform's errors, never hanging."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx
import pytest

from aiplatform.api.openai import EmbeddingRequest
from aiplatform.engines.embeddings import EMBED, EMBEDDINGS
from aiplatform.errors import (
    AIPlatformError,
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from aiplatform.remote.client import RemoteEngine
from aiplatform.settings import EmbeddingsSettings
from tests.support import free_port

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]


def remote(handler: Handler | None = None, **settings: object) -> RemoteEngine:
    options: dict[str, object] = {"url": "http://upstream:8000", "timeout_s": 2.0} | settings
    transport = httpx.MockTransport(handler) if handler is not None else None
    return RemoteEngine(EMBEDDINGS, EmbeddingsSettings(**options), transport=transport)  # type: ignore[arg-type]


def answer(status: int, body: object) -> Handler:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content)


async def call(engine: RemoteEngine) -> AIPlatformError:
    async with engine:
        with pytest.raises(AIPlatformError) as caught:
            await engine.invoke(EMBED, EmbeddingRequest(input="hello"))
    return caught.value


async def test_openai_shaped_errors_keep_class_and_fields() -> None:
    body = {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    error = await call(remote(answer(404, body)))
    assert isinstance(error, NotFoundError)
    assert (error.message, error.param, error.code) == ("no such model", "model", "model_not_found")


@pytest.mark.parametrize(
    ("status", "body", "cls", "needle"),
    [
        (400, {"error": "Input validation error"}, InvalidRequestError, "Input validation"),
        (
            413,
            {"error": "batch too large", "error_type": "Validation"},
            RequestTooLargeError,
            "batch too large",
        ),
        (422, {"detail": "field required"}, UnprocessableEntityError, "field required"),
        (502, b"<html>Bad Gateway</html>", InternalError, "Bad Gateway"),
        (503, b"", EngineUnavailableError, "503"),
    ],
)
async def test_other_error_shapes(status: int, body: object, cls: type, needle: str) -> None:
    error = await call(remote(answer(status, body)))
    assert isinstance(error, cls)
    assert error.status_code == status
    assert needle in error.message


async def test_garbage_success_body_is_bad_gateway() -> None:
    error = await call(remote(answer(200, {"unexpected": True})))
    assert error.status_code == 502
    assert error.code == "bad_upstream_response"


async def test_path_api_key_and_v1_suffix() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            400, json={"error": {"message": "x", "type": "invalid_request_error"}}
        )

    await call(remote(handler, url="http://upstream:8000/prefix/v1/", api_key="sekret"))
    assert str(seen[0].url) == "http://upstream:8000/prefix/v1/embeddings"
    assert seen[0].headers["authorization"] == "Bearer sekret"
    assert json.loads(seen[0].content) == {"input": "hello"}


async def test_refused_connection_is_503() -> None:
    engine = remote(url=f"http://127.0.0.1:{free_port()}")
    with anyio.fail_after(10):
        error = await call(engine)
    assert isinstance(error, EngineUnavailableError)
    assert error.status_code == 503
    assert "unreachable" in error.message


async def test_silent_upstream_is_503_within_the_timeout(silent_port: int) -> None:
    engine = remote(url=f"http://127.0.0.1:{silent_port}", timeout_s=0.5)
    with anyio.fail_after(5):  # a guard against a hang, not a speed check
        error = await call(engine)
    assert isinstance(error, EngineUnavailableError)
    assert error.code == "upstream_timeout"


async def test_status_of_an_unreachable_remote() -> None:
    engine = remote(url=f"http://127.0.0.1:{free_port()}")
    async with engine:
        status = await engine.status()
    assert not status.ready
    assert status.mode == "remote"
    assert "unreachable" in status.detail


async def test_status_falls_back_to_health() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.url.path == "/ready" else 200, json={})

    async with remote(handler) as engine:
        assert (await engine.status()).ready


def test_needs_a_url() -> None:
    with pytest.raises(ValueError, match="no url"):
        RemoteEngine(EMBEDDINGS, EmbeddingsSettings())
