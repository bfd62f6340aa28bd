"""An upstream that answers badly: too much, compressed too well, elsewhere, late, or wrong.

Each misbehaviour is served twice: by an ASGI app reached through ``HttpxWire`` and by a raw
socket server reached through ``AiohttpWire`` (the network wire), so both wires keep the
same limits.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage
from aiplatform.api.openai import EmbeddingRequest
from aiplatform.api.rerank import RerankRequest
from aiplatform.engines.base import EngineKind
from aiplatform.engines.embeddings import EMBED, EMBEDDINGS
from aiplatform.engines.llm import CHAT, LLM
from aiplatform.engines.rerank import RERANK, RERANKING
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import AIPlatformError, BadGatewayError, UpstreamTimeoutError
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire
from aiplatform.tenant import acting_as

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024
WIRES = ["httpx-asgi", "aiohttp-socket"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass
class Answer:
    """One canned upstream response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds before answering at all
    delay_s: float = 0.0


def embeddings(count: int, padding: int = 0) -> bytes:
    """A valid embeddings response with ``count`` vectors, and ``padding`` spaces after it
    (still valid JSON)."""
    data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25]} for i in range(count)]
    body = {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 1,
            "total_tokens": 1}}  # fmt: skip
    return json.dumps(body).encode() + b" " * padding


JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}

# -- the two upstreams --------------------------------------------------------------------------


def asgi_upstream(answer: Answer) -> ASGIApp:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await anyio.sleep(answer.delay_s)
        headers = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    return app


@dataclass
class SocketUpstream:
    """A raw HTTP/1.1 server on a loopback port: reads a request's head and body, answers with
    the canned response, closes. Records the requests it saw."""

    answer: Answer
    seen: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
            top, _, rest = head.partition(b"\r\n\r\n")
            self.seen.append(top)
            length = 0
            for line in top.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                rest += await stream.receive()
            await anyio.sleep(self.answer.delay_s)
            headers = {"connection": "close", **self.answer.headers}
            if "transfer-encoding" not in headers:
                headers["content-length"] = str(len(self.answer.body))
            lines = [f"HTTP/1.1 {self.answer.status} X"] + [f"{k}: {v}" for k, v in headers.items()]
            await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode() + self.answer.body)


@asynccontextmanager
async def socket_upstream(answer: Answer) -> AsyncIterator[SocketUpstream]:
    upstream = SocketUpstream(answer)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    upstream.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, upstream.handle)
        yield upstream
        group.cancel_scope.cancel()


@asynccontextmanager
async def engine_for(
    wire: str, answer: Answer, kind: EngineKind[Any] = EMBEDDINGS, **options: Any
) -> AsyncIterator[RemoteEngine]:
    """A remote engine of ``kind`` whose upstream gives ``answer`` over ``wire``."""
    settings_type: type[EngineSettings] = kind.settings_type
    limits = {"max_response_bytes": LIMIT, "max_event_bytes": LIMIT, "timeout_s": 5.0}
    if wire == "httpx-asgi":
        settings = settings_type(url="http://upstream", **(limits | options))
        transport = httpx.ASGITransport(app=asgi_upstream(answer))  # type: ignore[arg-type]
        async with RemoteEngine(kind, settings, wire=HttpxWire(transport)) as engine:
            yield engine
        return
    async with socket_upstream(answer) as upstream:
        url = f"http://127.0.0.1:{upstream.port}"
        async with RemoteEngine(kind, settings_type(url=url, **(limits | options))) as engine:
            yield engine


async def embed_error(engine: RemoteEngine, inputs: list[str] | None = None) -> AIPlatformError:
    with anyio.fail_after(10), pytest.raises(AIPlatformError) as caught:  # a guard, not a timing
        await engine.invoke(EMBED, EmbeddingRequest(input=inputs or ["a", "b"]))
    return caught.value


def is_bad_gateway(error: AIPlatformError, needle: str) -> None:
    assert isinstance(error, BadGatewayError), error
    assert (error.status_code, error.code) == (502, "bad_upstream_response")
    assert needle in error.message


# -- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_a_body_past_the_limit_is_502(wire: str) -> None:
    async with engine_for(wire, Answer(body=embeddings(2, padding=2 * LIMIT), headers=JSON)) as e:
        is_bad_gateway(await embed_error(e), "max_response_bytes")


@pytest.mark.parametrize("wire", WIRES)
async def test_a_body_that_inflates_past_the_limit_is_502(wire: str) -> None:
    bomb = gzip.compress(embeddings(2, padding=20 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < LIMIT  # small on the wire, 20 MB once inflated (valid JSON throughout)
    answer = Answer(body=bomb, headers={**JSON, "content-encoding": "gzip"})
    async with engine_for(wire, answer) as engine:
        is_bad_gateway(await embed_error(engine), "max_response_bytes")


@pytest.mark.parametrize("wire", WIRES)
async def test_a_compressed_body_within_the_limit_is_read(wire: str) -> None:
    body = gzip.compress(embeddings(2, padding=LIMIT // 2))
    answer = Answer(body=body, headers={**JSON, "content-encoding": "gzip"})
    async with engine_for(wire, answer) as engine:
        reply = await engine.invoke(EMBED, EmbeddingRequest(input=["a", "b"]))
    assert [item.index for item in reply.data] == [0, 1]


@pytest.mark.parametrize("wire", WIRES)
async def test_an_unknown_encoding_is_502(wire: str) -> None:
    answer = Answer(body=b"\x00\x01", headers={**JSON, "content-encoding": "compress"})
    async with engine_for(wire, answer) as engine:
        is_bad_gateway(await embed_error(engine), "encoding")


# -- redirects ----------------------------------------------------------------------------------


async def test_a_redirect_is_not_followed_and_is_502() -> None:
    async with socket_upstream(Answer(body=embeddings(2), headers=JSON)) as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/v1/embeddings"
        answer = Answer(status=307, headers={"location": target})
        async with engine_for("aiohttp-socket", answer) as engine:
            with acting_as("acme"):
                error = await embed_error(engine)
    is_bad_gateway(error, target)
    assert "307" in error.message
    assert elsewhere.seen == []  # the tenant's request never went to the other host


async def test_a_redirect_through_the_asgi_wire_is_502() -> None:
    answer = Answer(status=302, headers={"location": "http://elsewhere/v1/embeddings"})
    async with engine_for("httpx-asgi", answer) as engine:
        is_bad_gateway(await embed_error(engine), "http://elsewhere/v1/embeddings")


# -- upstream failures --------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_an_upstream_500_is_502(wire: str) -> None:
    body = json.dumps({"error": {"message": "it broke", "type": "server_error"}}).encode()
    async with engine_for(wire, Answer(status=500, body=body, headers=JSON)) as engine:
        error = await embed_error(engine)
    assert isinstance(error, BadGatewayError)
    assert error.status_code == 502
    assert "it broke" in error.message


@pytest.mark.parametrize("wire", WIRES)
async def test_garbage_is_502(wire: str) -> None:
    answer = Answer(body=b"<html>not json</html>", headers={"content-type": "text/html"})
    async with engine_for(wire, answer) as engine:
        is_bad_gateway(await embed_error(engine), "unexpected response")


@pytest.mark.parametrize("wire", WIRES)
async def test_an_upstream_past_the_deadline_is_504(wire: str) -> None:
    answer = Answer(body=embeddings(2), headers=JSON, delay_s=3)
    async with engine_for(wire, answer, timeout_s=0.3) as engine:
        error = await embed_error(engine)
    assert isinstance(error, UpstreamTimeoutError)
    assert (error.status_code, error.code) == (504, "upstream_timeout")


@pytest.mark.parametrize("wire", WIRES)
async def test_fewer_embeddings_than_inputs_is_502(wire: str) -> None:
    async with engine_for(wire, Answer(body=embeddings(1), headers=JSON)) as engine:
        is_bad_gateway(await embed_error(engine, ["a", "b", "c"]), "1 embeddings")


async def test_rerank_results_for_documents_not_sent_is_502() -> None:
    results = [{"index": i, "relevance_score": 0.5} for i in range(5)]
    body = json.dumps({"model": "m", "results": results, "usage": {"total_tokens": 1}}).encode()
    async with engine_for("httpx-asgi", Answer(body=body, headers=JSON), RERANKING) as engine:
        with pytest.raises(AIPlatformError) as caught:
            await engine.invoke(RERANK, RerankRequest(query="q", documents=["a", "b"]))
    is_bad_gateway(caught.value, "5 results for 2 documents")


# -- streams ------------------------------------------------------------------------------------


def chunk(content: str) -> bytes:
    event = {
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}}],
    }  # fmt: skip
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def stream_outcome(engine: RemoteEngine) -> tuple[list[str], AIPlatformError | None]:
    request = ChatCompletionRequest(messages=[ChatMessage(role="user", content="hi")], stream=True)
    seen: list[str] = []
    try:
        with anyio.fail_after(10):
            async for item in engine.stream(CHAT, request):
                seen.append(item.choices[0].delta.content or "")
    except AIPlatformError as exc:
        return seen, exc
    return seen, None


@pytest.mark.parametrize("wire", WIRES)
async def test_a_stream_event_past_the_limit_is_502(wire: str) -> None:
    body = chunk("ok") + chunk("x" * 2 * LIMIT) + b"data: [DONE]\n\n"
    async with engine_for(wire, Answer(body=body, headers=SSE), LLM) as engine:
        seen, error = await stream_outcome(engine)
    assert seen == ["ok"]
    assert error is not None
    is_bad_gateway(error, "max_event_bytes")


@pytest.mark.parametrize("wire", WIRES)
async def test_a_compressed_stream_is_read_within_the_event_limit(wire: str) -> None:
    body = gzip.compress(chunk("a") + chunk("b" * (LIMIT // 2)) + b"data: [DONE]\n\n")
    answer = Answer(body=body, headers={**SSE, "content-encoding": "gzip"})
    async with engine_for(wire, answer, LLM) as engine:
        seen, error = await stream_outcome(engine)
    assert error is None
    assert seen == ["a", "b" * (LIMIT // 2)]


@pytest.mark.parametrize("wire", WIRES)
async def test_a_stream_that_inflates_past_the_event_limit_is_502(wire: str) -> None:
    body = gzip.compress(chunk("a") + b"data: " + b" " * 10 * 1024 * 1024)  # one endless line
    answer = Answer(body=body, headers={**SSE, "content-encoding": "gzip"})
    async with engine_for(wire, answer, LLM) as engine:
        seen, error = await stream_outcome(engine)
    assert seen == ["a"]
    assert error is not None
    is_bad_gateway(error, "max_event_bytes")
