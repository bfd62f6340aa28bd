"""The middleware around a tiny ASGI app: who is counted, what is charged and settled, what the
client is told."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import msgspec
import pytest
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from aiplatform.auth.identity import Identity, acting_identity
from aiplatform.limits.limiter import Charge, RateLimiterUnavailableError
from aiplatform.limits.memory import MemoryLimiter
from aiplatform.limits.middleware import rate_limit_middleware
from aiplatform.limits.settings import RateLimitSettings
from aiplatform.tenant import acting_as
from aiplatform.testing import free_port

pytestmark = pytest.mark.anyio


class TinyApp:
    """Answers every request with what it received. A JSON body's ``use`` field is the usage
    it reports; ``status`` its status; with ``stream`` it answers as an SSE stream (its last
    chunk carrying the usage unless ``use`` is absent)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        try:
            request = json.loads(body) if body else {}
        except json.JSONDecodeError:
            request = {"status": 400}
        use = request.get("use")
        usage = None if use is None else {"prompt_tokens": use, "total_tokens": use}
        if request.get("stream"):
            await self._stream(send, usage)
            return
        answer = {"received": len(body), "usage": usage}
        await send(
            {
                "type": "http.response.start",
                "status": request.get("status", 200),
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    async def _stream(self, send: Send, usage: dict[str, int] | None) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        chunks = [{"choices": [{"delta": {"content": "hi"}}], "usage": None}]
        if usage is not None:
            chunks.append({"choices": [], "usage": usage})
        events = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
        # split mid-line, as a network would
        for part in (events[:7], events[7:40], events[40:], b"data: [DONE]\n\n"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def identified(app: ASGIApp) -> ASGIApp:
    """Stands in for authentication: ``x-test-identity: KIND:SUBJECT:TENANT``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        header = dict(scope["headers"]).get(b"x-test-identity")
        if header is None:
            await app(scope, receive, send)
            return
        kind, subject, tenant = header.decode().split(":")
        identity = Identity(
            kind=kind,  # type: ignore[arg-type]
            subject=subject,
            tenant=tenant,
            role="member",
            key_id=subject if kind == "key" else None,
        )
        with acting_identity(identity), acting_as(tenant):
            await app(scope, receive, send)

    return middleware


def limited(settings: RateLimitSettings, app: TinyApp, **kwargs: Any) -> ASGIApp:
    return identified(rate_limit_middleware(settings, **kwargs)(app))


@pytest.fixture
def app() -> TinyApp:
    return TinyApp()


def frozen() -> MemoryLimiter:
    return MemoryLimiter(clock=lambda: 0.0)


async def http(asgi: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def keyed(app: TinyApp) -> AsyncIterator[httpx.AsyncClient]:
    """Three requests a minute per key, five per tenant."""
    settings = RateLimitSettings(requests_per_minute=3, tenant_requests_per_minute=5)
    async for client in http(limited(settings, app, limiter=frozen())):
        yield client


def key(subject: str, tenant: str = "acme") -> dict[str, str]:
    return {"x-test-identity": f"key:{subject}:{tenant}"}


async def test_a_key_over_its_limit_is_refused_as_openai_does(
    keyed: httpx.AsyncClient, app: TinyApp
) -> None:
    answers = [await keyed.post("/v1/embeddings", headers=key("k1")) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"3"}
    assert answers[0].headers["x-ratelimit-reset-requests"] == "20s"
    assert answers[2].headers["x-ratelimit-reset-requests"] == "1m0s"
    refused = answers[3]
    assert refused.json() == {
        "error": {
            "message": "Rate limit reached for requests per minute (key): limit 3. "
            "Try again in 20s.",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["content-type"] == "application/json"
    assert len(app.bodies) == 3  # the refused request never reached the app
    assert "x-ratelimit-limit-tokens" not in refused.headers  # no token limit set


async def test_keys_have_their_own_limits_within_the_tenants(keyed: httpx.AsyncClient) -> None:
    statuses = [(await keyed.post("/v1/x", headers=key(k))).status_code for k in "aabbc"]
    assert statuses == [200] * 5
    refused = await keyed.post("/v1/x", headers=key("c"))  # c has 2 left, acme none
    assert refused.status_code == 429
    assert "(tenant): limit 5" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-limit-requests"] == "5"
    other = await keyed.post("/v1/x", headers=key("c", tenant="globex"))
    assert other.status_code == 200


async def test_users_are_counted_like_keys(keyed: httpx.AsyncClient) -> None:
    user = {"x-test-identity": "user:ann:acme"}
    statuses = [(await keyed.post("/v1/x", headers=user)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_anonymous_callers_are_limited_per_tenant_only(app: TinyApp) -> None:
    per_key = RateLimitSettings(requests_per_minute=1)
    async for client in http(limited(per_key, app, limiter=frozen())):
        answers = [await client.post("/v1/x") for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        assert "x-ratelimit-limit-requests" not in answers[0].headers
    per_tenant = RateLimitSettings(requests_per_minute=1, tenant_requests_per_minute=2)
    async for client in http(limited(per_tenant, app, limiter=frozen())):
        statuses = [(await client.post("/v1/x")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_service_calls_are_not_counted_again(keyed: httpx.AsyncClient) -> None:
    service = {"x-test-identity": "service:service:acme"}
    statuses = [(await keyed.post("/v1/x", headers=service)).status_code for _ in range(10)]
    assert statuses == [200] * 10


async def test_only_v1_http_routes_are_limited(keyed: httpx.AsyncClient) -> None:
    for _ in range(10):
        answer = await keyed.get("/health", headers=key("k1"))
        assert answer.status_code == 200
        assert "x-ratelimit-limit-requests" not in answer.headers


async def test_no_limit_set_wraps_nothing(app: TinyApp) -> None:
    assert rate_limit_middleware(RateLimitSettings())(app) is app


TOKENS = RateLimitSettings(tokens_per_minute=1000, tenant_tokens_per_minute=5000)


@pytest.fixture
async def metered(app: TinyApp) -> AsyncIterator[httpx.AsyncClient]:
    async for client in http(limited(TOKENS, app, limiter=frozen())):
        yield client


def embed(chars: int, **fields: Any) -> dict[str, Any]:
    """An embeddings body estimated at ``chars / 4`` tokens."""
    return {"input": "x" * chars, **fields}


async def test_tokens_are_estimated_then_settled_to_the_usage(metered: httpx.AsyncClient) -> None:
    first = await metered.post("/v1/embeddings", json=embed(400, use=10), headers=key("k"))
    assert first.headers["x-ratelimit-remaining-tokens"] == "900"  # 100 estimated
    second = await metered.post("/v1/embeddings", json=embed(400, use=250), headers=key("k"))
    assert second.headers["x-ratelimit-remaining-tokens"] == "890"  # 90 refunded
    third = await metered.post("/v1/embeddings", json=embed(4), headers=key("k"))
    assert third.headers["x-ratelimit-remaining-tokens"] == "739"  # 150 charged after
    assert third.headers["x-ratelimit-limit-tokens"] == "1000"
    assert "x-ratelimit-limit-requests" not in third.headers


async def test_the_body_reaches_the_app_unchanged(metered: httpx.AsyncClient, app: TinyApp) -> None:
    body = json.dumps(embed(3996, use=1)).encode()
    answer = await metered.post("/v1/embeddings", content=body, headers=key("k"))
    assert answer.status_code == 200
    assert app.bodies == [body]


async def call_in_pieces(asgi: ASGIApp, body: bytes, size: int) -> list[Message]:
    """POST ``body`` to ``/v1/embeddings`` in pieces of ``size`` bytes; what was sent back."""
    pieces: list[Message] = [
        {"type": "http.request", "body": body[i : i + size], "more_body": i + size < len(body)}
        for i in range(0, len(body), size)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pieces.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/embeddings", "headers": []}
    await asgi(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def test_a_body_in_many_pieces_is_replayed_whole(app: TinyApp) -> None:
    body = json.dumps(embed(4000, use=3)).encode()
    sent = await call_in_pieces(rate_limit_middleware(TOKENS, limiter=frozen())(app), body, 100)
    assert app.bodies == [body]
    assert dict(sent[0]["headers"])[b"x-ratelimit-remaining-tokens"] == b"4000"  # the tenant


async def test_a_body_over_the_servers_limit_is_handed_on_unread(app: TinyApp) -> None:
    """Left to the route (which refuses it with 413), charged no tokens."""
    body = json.dumps(embed(2000, use=3)).encode()
    limits = rate_limit_middleware(TOKENS, max_body_bytes=1000, limiter=frozen())
    sent = await call_in_pieces(limits(app), body, 300)
    assert app.bodies == [body]
    assert dict(sent[0]["headers"])[b"x-ratelimit-remaining-tokens"] == b"5000"


async def test_an_sse_stream_settles_to_its_last_usage(metered: httpx.AsyncClient) -> None:
    chat = {
        "messages": [{"role": "user", "content": "x" * 40}],
        "max_tokens": 90,
        "stream": True,
        "use": 30,
    }
    first = await metered.post("/v1/chat/completions", json=chat, headers=key("k"))
    assert first.headers["x-ratelimit-remaining-tokens"] == "900"
    assert first.text.endswith("data: [DONE]\n\n")
    after = await metered.post("/v1/chat/completions", json=chat, headers=key("k"))
    assert after.headers["x-ratelimit-remaining-tokens"] == "870"  # 70 of 100 refunded


async def test_an_sse_stream_without_usage_keeps_the_estimate(
    metered: httpx.AsyncClient,
) -> None:
    chat = {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 90, "stream": True}
    await metered.post("/v1/chat/completions", json=chat, headers=key("k"))
    after = await metered.post("/v1/chat/completions", json=chat, headers=key("k"))
    assert after.headers["x-ratelimit-remaining-tokens"] == "800"


async def test_an_error_answer_refunds_the_estimate(metered: httpx.AsyncClient) -> None:
    await metered.post("/v1/embeddings", json=embed(400, status=400), headers=key("k"))
    after = await metered.post("/v1/embeddings", json=embed(400), headers=key("k"))
    assert after.headers["x-ratelimit-remaining-tokens"] == "900"


async def test_an_unreadable_body_is_charged_nothing_and_reaches_the_app(
    metered: httpx.AsyncClient, app: TinyApp
) -> None:
    answer = await metered.post("/v1/embeddings", content=b'{"input": [', headers=key("k"))
    assert answer.status_code == 400  # the app's to refuse
    assert answer.headers["x-ratelimit-remaining-tokens"] == "1000"
    assert app.bodies == [b'{"input": [']


async def test_a_request_over_a_whole_minute_of_tokens_is_refused(
    metered: httpx.AsyncClient, app: TinyApp
) -> None:
    answer = await metered.post("/v1/embeddings", json=embed(4004), headers=key("k"))
    assert answer.status_code == 429
    assert answer.json()["error"]["message"].startswith(
        "Request too large for tokens per minute (key): limit 1000, requested 1001."
    )
    assert "retry-after" not in answer.headers
    assert app.bodies == []
    assert (await metered.post("/v1/embeddings", json=embed(4000), headers=key("k"))).is_success


async def test_token_limits_leave_other_routes_uncharged(
    metered: httpx.AsyncClient, app: TinyApp
) -> None:
    answer = await metered.post("/v1/rerank", json=embed(8000), headers=key("k"))
    assert answer.status_code == 200
    assert "x-ratelimit-limit-tokens" not in answer.headers


async def test_an_unreachable_redis_is_a_fast_503(app: TinyApp) -> None:
    settings = RateLimitSettings(
        tenant_requests_per_minute=5, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    middleware = rate_limit_middleware(settings)
    async for client in http(identified(middleware(app))):
        started = time.monotonic()
        answer = await client.post("/v1/embeddings", json=embed(4))
        assert time.monotonic() - started < 1
    await middleware.aclose()
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "rate_limiter_unavailable"
    assert answer.json()["error"]["type"] == "service_unavailable"
    assert answer.headers["retry-after"] == "1"
    assert app.bodies == []


def test_settings() -> None:
    settings = msgspec.convert(
        {"requests_per_minute": "60", "redis_url": "redis://cache:6379/0"},
        RateLimitSettings,
        strict=False,
    )
    assert (settings.requests_per_minute, settings.tokens_per_minute) == (60, None)
    assert settings.enabled
    assert not RateLimitSettings().enabled
    for bad in ({"requests_per_minute": 0}, {"redis_url": "http://x"}, {"rpm": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, RateLimitSettings)


class SettleFails(MemoryLimiter):
    """Takes as usual; settling finds the shared store gone."""

    async def settle(self, charges: Sequence[Charge]) -> None:
        raise RateLimiterUnavailableError("gone")


async def test_a_failed_settlement_never_fails_the_answer(
    app: TinyApp, caplog: pytest.LogCaptureFixture
) -> None:
    async for client in http(limited(TOKENS, app, limiter=SettleFails())):
        answer = await client.post("/v1/embeddings", json=embed(400, use=3), headers=key("k"))
    assert answer.status_code == 200
    assert answer.json()["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert "not settled" in caplog.text
