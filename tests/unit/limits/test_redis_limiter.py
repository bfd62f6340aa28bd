"""The Redis limiter: the same bucket math in one script, Redis's clock, keys that expire, and
a fast 503 when Redis cannot answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from aiplatform.limits.limiter import Charge, RateLimiterUnavailableError
from aiplatform.limits.redis import RedisLimiter
from aiplatform.testing import free_port
from tests.unit.limits.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def limiter(redis: RedisServer, prefix: str) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter(redis.url, timeout_s=2, prefix=prefix)
    yield limiter
    await limiter.aclose()


@pytest.fixture
async def client(redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis.url)
    yield client
    await client.aclose()


def tokens(limit: int, amount: float, name: str = "k") -> Charge:
    return Charge("key", name, "tokens", limit, amount)


async def test_take_settle_and_refuse(limiter: RedisLimiter) -> None:
    first = await limiter.acquire([tokens(6000, 5000)])
    assert first.allowed
    assert first.levels[0] == pytest.approx(1000, abs=1)  # what refilled in the meantime
    refused = await limiter.acquire([tokens(6000, 2000)])
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(10, abs=0.1)  # 1000 short at 100 a second
    await limiter.settle([tokens(6000, -4000)])  # used 1000 of the 5000
    assert (await limiter.acquire([tokens(6000, 2000)])).allowed


async def test_settle_may_leave_a_bucket_owing(limiter: RedisLimiter) -> None:
    await limiter.acquire([tokens(600, 100)])
    await limiter.settle([tokens(600, 1000)])
    verdict = await limiter.acquire([tokens(600, 1)])
    assert not verdict.allowed
    assert verdict.levels[0] == pytest.approx(-500, abs=1)
    assert verdict.retry_after_s == pytest.approx(50.1, abs=0.1)


async def test_buckets_expire_once_full_and_use_redis_time(
    limiter: RedisLimiter, client: Redis, prefix: str
) -> None:
    await limiter.acquire([tokens(60, 30)])
    key = f"{prefix}key:k:tokens"
    ttl_ms = await client.pttl(key)
    assert 30_000 < ttl_ms <= 31_000  # full again in 30 s, plus a second's margin
    seconds, micros = await client.time()
    at = float(await client.hget(key, "at"))
    assert abs(at - (seconds * 1_000_000 + micros)) < 2_000_000
    await limiter.settle([tokens(60, -30)])  # a refund that fills it: nothing left to keep
    assert await client.exists(key) == 0


async def test_an_absent_redis_is_a_fast_503() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(RateLimiterUnavailableError) as caught:
        await limiter.acquire([tokens(10, 1)])
    assert time.monotonic() - started < 1
    assert (caught.value.status_code, caught.value.code) == (503, "rate_limiter_unavailable")
    await limiter.aclose()


async def test_a_hung_redis_is_a_503_at_the_deadline(redis: RedisServer, prefix: str) -> None:
    limiter = RedisLimiter(redis.url, timeout_s=0.3, prefix=prefix)
    assert (await limiter.acquire([tokens(10, 1)])).allowed  # connected
    redis.pause()
    try:
        for call in (limiter.acquire, limiter.settle):
            started = time.monotonic()
            with pytest.raises(RateLimiterUnavailableError):
                await call([tokens(10, 1)])
            assert 0.25 < time.monotonic() - started < 1.5
    finally:
        redis.resume()
    assert (await limiter.acquire([tokens(10, 1)])).allowed  # and back once it answers
    await limiter.aclose()


async def test_a_hung_connect_is_a_503_at_the_deadline(silent_port: int) -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{silent_port}/0", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RateLimiterUnavailableError):
        await limiter.acquire([tokens(10, 1)])
    assert time.monotonic() - started < 1.5
    await limiter.aclose()
