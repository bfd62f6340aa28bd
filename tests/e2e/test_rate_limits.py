"""Rate limits on the platform's own app: concurrent requests over a limit get exactly the
excess refused, as the ``openai`` SDK's ``RateLimitError`` with OpenAI's headers, and a limit
in Redis holds across two replicas.

The in-process tests build the app with ``create_app``, the middleware placed where the app
places it (after the others, so after authentication); the server tests run ``aiplatform
serve`` configured through ``AIPLATFORM_LIMITS__*``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import openai
import pytest
from litestar import Litestar

import aiplatform.server.app as server_app
from aiplatform.limits.memory import MemoryLimiter
from aiplatform.limits.middleware import RateLimits, rate_limit_middleware
from aiplatform.limits.settings import RateLimitSettings
from aiplatform.settings import Settings, select_engines
from aiplatform.testing import fake_settings
from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess
from tests.unit.limits.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.anyio

LIMIT = 5
CONCURRENT = 8
MODEL = "all-MiniLM-L6-v2"
RATE_HEADERS = {
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
}

Outcome = tuple[int, httpx.Headers]


# -- in-process: create_app with the middleware in its place ------------------------------------

ADMIN_PASSWORD = "correct horse battery staple"
#: Authentication with the cheapest Argon2id the library takes: these tests count, not hash.
AUTH = {
    "enabled": True,
    "admin_password": ADMIN_PASSWORD,
    "jwt_secret": "j" * 40,
    "password_time_cost": 1,
    "password_memory_kib": 8,
}


def platform_settings(folder: Path, *, auth: bool = False) -> Settings:
    """Fake embeddings and LLM, keeping what they store under ``folder``."""
    settings = select_engines(fake_settings(folder), ["embeddings", "llm"])
    if not auth:
        return settings
    section = msgspec.convert({**AUTH, "data_dir": str(folder / "auth")}, type(settings.auth))
    return msgspec.structs.replace(settings, auth=section)


@asynccontextmanager
async def app_client(
    settings: Settings, limits: RateLimits, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``create_app(settings)`` (its lifespan run), the rate limit middleware last
    in the app's middleware list: after authentication."""
    real = server_app.Litestar

    def litestar(*args: Any, middleware: list[Any], **kwargs: Any) -> Litestar:
        return real(*args, middleware=[*middleware, limits], on_shutdown=[limits.aclose], **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(server_app, "Litestar", litestar)
        app = server_app.create_app(settings)
    transport = httpx.ASGITransport(app=app)  # requests run concurrently, on this event loop
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        yield client


def sdk(client: httpx.AsyncClient, api_key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{client.base_url}/v1", api_key=api_key, max_retries=0, http_client=client
    )


async def new_api_key(client: httpx.AsyncClient, name: str) -> str:
    """An API key of the admin's tenant, made through the API."""
    login = await client.post(
        "/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    created = await client.post(
        "/v1/keys", json={"name": name}, headers={"authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


async def embed(sdk: openai.AsyncOpenAI) -> Outcome:
    """One embeddings request: its status and headers, a 429 as the SDK raises it."""
    try:
        raw = await sdk.embeddings.with_raw_response.create(model=MODEL, input="hello")
    except openai.RateLimitError as exc:
        refused = exc
    else:
        return raw.status_code, raw.headers
    assert (refused.code, refused.type) == ("rate_limit_exceeded", "rate_limit_error")
    return refused.status_code, refused.response.headers


async def at_once(calls: list[Callable[[], Awaitable[Outcome]]]) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def one(call: Callable[[], Awaitable[Outcome]]) -> None:
        outcomes.append(await call())

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(one, call)
    return outcomes


def check_exactly_the_excess_refused(outcomes: list[Outcome]) -> None:
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [200] * LIMIT + [429] * (CONCURRENT - LIMIT)
    for status, headers in outcomes:
        assert set(headers) >= RATE_HEADERS
        assert headers["x-ratelimit-limit-requests"] == str(LIMIT)
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert headers["x-ratelimit-remaining-requests"] == "0"
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for s, h in outcomes if s == 200)
    assert remaining == list(range(LIMIT))


async def test_concurrent_requests_over_a_keys_limit_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = rate_limit_middleware(RateLimitSettings(requests_per_minute=LIMIT))
    settings = platform_settings(tmp_path, auth=True)
    async with app_client(settings, limits, monkeypatch) as client:
        first, second = [sdk(client, await new_api_key(client, name)) for name in ("a", "b")]
        outcomes = await at_once([lambda: embed(first)] * CONCURRENT)
        other = await embed(second)  # a key of the same tenant, with a limit of its own
    check_exactly_the_excess_refused(outcomes)
    assert other[0] == 200
    assert other[1]["x-ratelimit-remaining-requests"] == str(LIMIT - 1)


async def test_anonymous_callers_share_their_tenants_limit_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = rate_limit_middleware(RateLimitSettings(tenant_requests_per_minute=LIMIT))
    async with app_client(platform_settings(tmp_path), limits, monkeypatch) as client:
        outcomes = await at_once([lambda: embed(sdk(client))] * CONCURRENT)
        health = await client.get("/health")
    check_exactly_the_excess_refused(outcomes)
    assert health.status_code == 200
    assert "x-ratelimit-limit-requests" not in health.headers


async def test_concurrent_requests_over_the_limit_across_replicas_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_server() as redis:
        # a deadline for Redis that a loaded 2-core machine meets: this test is about the
        # count across replicas, not about a slow Redis (tests/unit/limits has that)
        shared = RateLimitSettings(
            tenant_requests_per_minute=LIMIT, redis_url=redis.url, redis_timeout_s=5.0
        )
        async with (
            app_client(
                platform_settings(tmp_path / "1"), rate_limit_middleware(shared), monkeypatch
            ) as one,
            app_client(
                platform_settings(tmp_path / "2"), rate_limit_middleware(shared), monkeypatch
            ) as two,
        ):
            calls = [lambda: embed(sdk(one)), lambda: embed(sdk(two))] * (CONCURRENT // 2)
            outcomes = await at_once(calls)
    check_exactly_the_excess_refused(outcomes)


async def test_chat_tokens_are_settled_to_the_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Charged the estimate up front, then what the answer (or the stream's last chunk)
    reports: the next request's remaining tokens show it."""
    limit = 10_000
    limits = rate_limit_middleware(
        RateLimitSettings(tenant_tokens_per_minute=limit), limiter=MemoryLimiter(lambda: 0.0)
    )
    prompt = "Say something about rate limits. " * 4  # 132 characters: 33 tokens
    messages: list[Any] = [{"role": "user", "content": prompt}]
    async with app_client(platform_settings(tmp_path), limits, monkeypatch) as client:
        chat = sdk(client).chat.completions.with_raw_response
        first = await chat.create(model=FAKE_LLM_MODEL, messages=messages, max_tokens=40)
        used = first.parse().usage
        assert used is not None
        assert first.headers["x-ratelimit-remaining-tokens"] == str(limit - 33 - 40)
        stream = await chat.create(
            model=FAKE_LLM_MODEL,
            messages=messages,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert stream.headers["x-ratelimit-remaining-tokens"] == str(
            limit - used.total_tokens - 33 - 20
        )
        streamed = [chunk.usage async for chunk in stream.parse() if chunk.usage]
        last = await chat.create(model=FAKE_LLM_MODEL, messages=messages, max_tokens=10)
    assert len(streamed) == 1
    assert used.total_tokens != 33 + 40  # a settlement that did nothing would pass otherwise
    assert last.headers["x-ratelimit-remaining-tokens"] == str(
        limit - used.total_tokens - streamed[0].total_tokens - 33 - 10
    )
    assert last.headers["x-ratelimit-limit-tokens"] == str(limit)


async def test_a_slow_body_read_for_an_estimate_is_still_a_408(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body read here for the token estimate has the server's body deadline."""
    limits = rate_limit_middleware(RateLimitSettings(tenant_tokens_per_minute=1000))
    settings = platform_settings(tmp_path)
    server = msgspec.structs.replace(settings.server, body_timeout_s=0.3)
    settings = msgspec.structs.replace(settings, server=server)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"input": '
        await anyio.sleep(5)
        yield b'"late"}'

    async with app_client(settings, limits, monkeypatch) as client:
        with anyio.fail_after(3):
            answer = await client.post("/v1/embeddings", content=trickle())
    assert answer.status_code == 408
    assert answer.json()["error"]["code"] == "body_timeout"


# -- aiplatform serve, configured through the environment ---------------------------------------

wired = pytest.mark.skipif(
    "limits" not in {field.name for field in msgspec.structs.fields(Settings)},
    reason="Settings has no [limits] section yet",
)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def server_client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=30)


@wired
async def test_concurrent_requests_over_a_keys_limit_on_a_server(tmp_path: Path) -> None:
    env = {
        **FAKE_EMBEDDINGS_ENV,
        **{f"AIPLATFORM_AUTH__{name.upper()}": str(value) for name, value in AUTH.items()},
        "AIPLATFORM_AUTH__DATA_DIR": str(tmp_path / "auth"),
        "AIPLATFORM_LIMITS__REQUESTS_PER_MINUTE": str(LIMIT),
    }
    with ServerProcess(["--engines", "embeddings"], env) as server:
        async with server_client(server) as client:
            key = sdk(client, await new_api_key(client, "a"))
            outcomes = await at_once([lambda: embed(key)] * CONCURRENT)
    check_exactly_the_excess_refused(outcomes)


@wired
async def test_limits_in_redis_hold_across_two_servers(redis: RedisServer) -> None:
    env = {
        **FAKE_EMBEDDINGS_ENV,
        "AIPLATFORM_LIMITS__TENANT_REQUESTS_PER_MINUTE": str(LIMIT),
        "AIPLATFORM_LIMITS__REDIS_URL": redis.url,
    }
    with (
        ServerProcess(["--engines", "embeddings"], env) as first,
        ServerProcess(["--engines", "embeddings"], env) as second,
    ):
        async with server_client(first) as one, server_client(second) as two:
            calls = [lambda: embed(sdk(one)), lambda: embed(sdk(two))] * (CONCURRENT // 2)
            outcomes = await at_once(calls)
    check_exactly_the_excess_refused(outcomes)
