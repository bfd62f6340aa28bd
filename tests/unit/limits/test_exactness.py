"""N + k concurrent requests against a limit of N: exactly k are refused, in one process and
across two limiters (two gateway replicas) sharing one Redis."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from aiplatform.limits.limiter import Charge, Limiter, Verdict
from aiplatform.limits.memory import MemoryLimiter
from aiplatform.limits.redis import RedisLimiter
from tests.unit.limits.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def concurrently(limiters: list[Limiter], charge_lists: list[list[Charge]]) -> list[Verdict]:
    """Every acquisition at once, the i-th on limiter i mod len(limiters)."""
    verdicts: list[Verdict | None] = [None] * len(charge_lists)
    start = anyio.Event()

    async def one(i: int) -> None:
        await start.wait()
        verdicts[i] = await limiters[i % len(limiters)].acquire(charge_lists[i])

    async with anyio.create_task_group() as group:
        for i in range(len(charge_lists)):
            group.start_soon(one, i)
        await anyio.lowlevel.checkpoint()
        start.set()
    assert all(verdict is not None for verdict in verdicts)
    return [verdict for verdict in verdicts if verdict is not None]


def refused(verdicts: list[Verdict]) -> int:
    return sum(not verdict.allowed for verdict in verdicts)


async def test_memory_limiter_refuses_exactly_the_excess() -> None:
    limiter = MemoryLimiter(clock=lambda: 0.0)
    n, k = 200, 50
    verdicts = await concurrently([limiter], [[Charge("key", "k", "requests", n, 1.0)]] * (n + k))
    assert refused(verdicts) == k


async def test_memory_limiter_is_exact_across_shared_and_own_buckets() -> None:
    """Keys of one tenant: each key's own limit and the tenant's, all or nothing."""
    limiter = MemoryLimiter(clock=lambda: 0.0)
    tenant = Charge("tenant", "acme", "requests", 25, 1.0)
    charges = [[Charge("key", f"k{i % 4}", "requests", 10, 1.0), tenant] for i in range(40)]
    verdicts = await concurrently([limiter], charges)
    # 4 keys of 10 would allow 40; the tenant's 25 allow 25
    assert refused(verdicts) == 15


async def test_two_redis_limiters_share_one_limit(redis: RedisServer, prefix: str) -> None:
    replicas = [RedisLimiter(redis.url, timeout_s=5, prefix=prefix) for _ in range(2)]
    # 30 a minute: the first request refills after 2 s, far longer than the burst takes
    n, k = 30, 10
    try:
        with anyio.fail_after(2):
            verdicts = await concurrently(
                list(replicas), [[Charge("tenant", "acme", "requests", n, 1.0)]] * (n + k)
            )
    finally:
        for replica in replicas:
            await replica.aclose()
    assert refused(verdicts) == k
    assert all(v.retry_after_s > 0 for v in verdicts if not v.allowed)


async def test_redis_take_is_all_or_nothing_across_replicas(
    redis: RedisServer, prefix: str
) -> None:
    replicas = [RedisLimiter(redis.url, timeout_s=5, prefix=prefix) for _ in range(2)]
    tenant = Charge("tenant", "acme", "tokens", 1000, 100.0)
    charges = [[Charge("key", f"k{i % 2}", "tokens", 400, 100.0), tenant] for i in range(14)]
    try:
        with anyio.fail_after(2):
            verdicts = await concurrently(list(replicas), charges)
        # the refused requests took nothing from the tenant: 200 are left (and what refilled)
        rest = await replicas[0].acquire([Charge("tenant", "acme", "tokens", 1000, 200.0)])
    finally:
        for replica in replicas:
            await replica.aclose()
    # each key's 400 allows 4 of its 7 requests: 8 in all, within the tenant's 10
    assert refused(verdicts) == 6
    assert rest.allowed
    assert rest.levels[0] == pytest.approx(0, abs=40)  # under 2.4 s of refill
