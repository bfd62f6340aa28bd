"""The remote adapter maps every upstream failure to the platform's errors, never hanging."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx
import pytest

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage
from aiplatform.api.openai import EmbeddingRequest
from aiplatform.engines.embeddings import EMBED, EMBEDDINGS
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.llm import CHAT, LLM
from aiplatform.engines.llm.settings import LLMSettings
from aiplatform.errors import (
    AIPlatformError,
    ConflictError,
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire
from aiplatform.tenant import acting_as
from tests.support import free_port

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]


def remote(handler: Handler | None = None, **settings: object) -> RemoteEngine:
    """The adapter over a wire answered by ``handler``, or over the network without one."""
    options: dict[str, object] = {"url": "http://upstream:8000", "timeout_s": 2.0} | settings
    wire = HttpxWire(httpx.MockTransport(handler)) if handler is not None else None
    return RemoteEngine(EMBEDDINGS, EmbeddingsSettings(**options), wire=wire)  # type: ignore[arg-type]


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


async def test_an_upstream_refusal_passes_its_retry_after_on() -> None:
    body = {"error": {"message": "busy", "type": "rate_limit_error", "code": "engine_overloaded"}}
    refused = lambda request: httpx.Response(  # noqa: E731
        429, json=body, headers={"retry-after": "7"}
    )
    error = await call(remote(refused))
    assert isinstance(error, RateLimitError)
    assert (error.code, error.headers) == ("engine_overloaded", {"Retry-After": "7"})
    for odd in (None, "nan", "inf", "-1", "1.5", "Wed, 21 Oct 2026 07:28:00 GMT"):
        headers = {"retry-after": odd} if odd is not None else {}
        error = await call(
            remote(lambda request, h=headers: httpx.Response(429, json=body, headers=h))
        )
        assert (error.status_code, error.headers) == (429, {}), odd
    huge = await call(
        remote(lambda request: httpx.Response(429, json=body, headers={"retry-after": "9" * 40}))
    )
    assert huge.headers == {"Retry-After": "3600"}


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
    # the key's own tenant holds upstream: naming one would only be refused there
    assert "x-aiplatform-tenant" not in seen[0].headers


async def test_the_tenant_is_named_to_a_pod_with_the_service_credential_or_no_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, json={"error": {"message": "x", "type": "x"}})

    def engine(**settings: object) -> RemoteEngine:
        wire = HttpxWire(httpx.MockTransport(handler))
        section = EmbeddingsSettings(url="http://pod:8000", **settings)  # type: ignore[arg-type]
        return RemoteEngine(EMBEDDINGS, section, wire=wire, service_token="t" * 32)

    with acting_as("acme"):
        await call(engine())  # a gateway's pod
        await call(remote(handler))  # a development pod: no key, no credential
        await call(engine(api_key="k"))  # a third party: its key only
    assert [request.headers.get("x-aiplatform-tenant") for request in seen] == [
        "acme",
        "acme",
        None,
    ]
    assert seen[0].headers["x-aiplatform-service-token"] == "t" * 32
    assert "x-aiplatform-service-token" not in seen[2].headers
    assert seen[2].headers["authorization"] == "Bearer k"


async def test_refused_connection_is_503() -> None:
    engine = remote(url=f"http://127.0.0.1:{free_port()}")
    with anyio.fail_after(10):
        error = await call(engine)
    assert isinstance(error, EngineUnavailableError)
    assert error.status_code == 503
    assert "unreachable" in error.message


async def test_silent_upstream_is_504_within_the_timeout(silent_port: int) -> None:
    engine = remote(url=f"http://127.0.0.1:{silent_port}", timeout_s=0.5)
    with anyio.fail_after(5):  # a guard against a hang, not a speed check
        error = await call(engine)
    assert isinstance(error, EngineUnavailableError)
    assert (error.status_code, error.code) == (504, "upstream_timeout")


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


CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
}


def sse(*events: object) -> Handler:
    body = b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)
    return lambda request: httpx.Response(
        200, content=body + b"data: [DONE]\n\n", headers={"content-type": "text/event-stream"}
    )


async def streamed_error(handler: Handler) -> tuple[list[object], AIPlatformError]:
    """The chunks before the error, and the error, of a chat stream answered by ``handler``."""
    settings = LLMSettings(url="http://upstream:8000", timeout_s=2.0)
    seen: list[object] = []
    request = ChatCompletionRequest(messages=[ChatMessage(role="user", content="hi")], stream=True)

    async def consume(llm: RemoteEngine) -> None:
        async for chunk in llm.stream(CHAT, request):
            seen.append(chunk)

    async with RemoteEngine(LLM, settings, wire=HttpxWire(httpx.MockTransport(handler))) as llm:
        with pytest.raises(AIPlatformError) as caught:
            await consume(llm)
    return seen, caught.value


@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        # ours: OpenAI's fields and the status the error had
        (
            {"message": "gone", "type": "invalid_request_error", "code": "x", "http_status": 404},
            NotFoundError,
            404,
        ),
        (
            {"message": "taken", "type": "invalid_request_error", "http_status": 409},
            ConflictError,
            409,
        ),
        # vLLM's: the status as an integer code
        ({"message": "slow down", "type": "RateLimitError", "code": 429}, RateLimitError, 429),
        # OpenAI's own: the type alone
        ({"message": "slow down", "type": "rate_limit_error"}, RateLimitError, 429),
        ({"message": "bad", "type": "invalid_request_error"}, InvalidRequestError, 400),
        ({"message": "broke", "type": "server_error"}, InternalError, 500),
    ],
    ids=[
        "http-status-404",
        "http-status-409",
        "vllm-code",
        "openai-type",
        "openai-400",
        "openai-500",
    ],
)
async def test_errors_inside_a_stream_keep_their_status(
    error: dict[str, object], cls: type[AIPlatformError], status: int
) -> None:
    seen, caught = await streamed_error(sse(CHUNK, {"error": error}))
    assert len(seen) == 1
    assert type(caught) is cls
    assert caught.status_code == status
    assert caught.message == error["message"]
    assert caught.code == (error["code"] if isinstance(error.get("code"), str) else None)


async def test_a_non_sse_answer_to_a_stream_is_bad_gateway() -> None:
    _, caught = await streamed_error(answer(200, CHUNK))
    assert caught.status_code == 502
    assert caught.code == "bad_upstream_response"
