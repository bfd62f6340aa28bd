"""Token bucket math on the in-process limiter, with a clock the test moves."""

from __future__ import annotations

import pytest

from aiplatform.limits.limiter import Charge, decide, refill, reset_s
from aiplatform.limits.memory import MemoryLimiter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def requests(name: str, limit: int, scope: str = "key") -> Charge:
    return Charge(scope, name, "requests", limit, 1.0)


def tokens(name: str, limit: int, amount: float, scope: str = "key") -> Charge:
    return Charge(scope, name, "tokens", limit, amount)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> MemoryLimiter:
    return MemoryLimiter(clock=clock)


async def test_a_full_bucket_allows_its_limit_then_refuses(limiter: MemoryLimiter) -> None:
    verdicts = [await limiter.acquire([requests("a", 60)]) for _ in range(61)]
    assert [v.allowed for v in verdicts] == [True] * 60 + [False]
    assert verdicts[0].levels == (59.0,)
    assert verdicts[59].levels == (0.0,)
    assert verdicts[60].retry_after_s == pytest.approx(1.0)  # 60 a minute: one a second


async def test_the_bucket_refills_continuously(limiter: MemoryLimiter, clock: Clock) -> None:
    for _ in range(60):
        assert (await limiter.acquire([requests("a", 60)])).allowed
    clock.advance(0.5)
    half = await limiter.acquire([requests("a", 60)])
    assert not half.allowed
    assert half.levels == (pytest.approx(0.5),)
    assert half.retry_after_s == pytest.approx(0.5)
    clock.advance(0.5)
    assert (await limiter.acquire([requests("a", 60)])).allowed
    assert not (await limiter.acquire([requests("a", 60)])).allowed
    clock.advance(10)
    taken = [(await limiter.acquire([requests("a", 60)])).allowed for _ in range(11)]
    assert taken == [True] * 10 + [False]


async def test_a_bucket_never_holds_more_than_its_limit(
    limiter: MemoryLimiter, clock: Clock
) -> None:
    assert (await limiter.acquire([requests("a", 5)])).allowed
    clock.advance(3600)
    taken = [(await limiter.acquire([requests("a", 5)])).allowed for _ in range(6)]
    assert taken == [True] * 5 + [False]


async def test_refused_requests_take_nothing(limiter: MemoryLimiter, clock: Clock) -> None:
    for _ in range(5):
        await limiter.acquire([requests("a", 5)])
    for _ in range(100):
        assert not (await limiter.acquire([requests("a", 5)])).allowed
    clock.advance(12)  # one request's worth, unaffected by the hundred refusals
    assert (await limiter.acquire([requests("a", 5)])).allowed


async def test_take_is_all_or_nothing_across_buckets(limiter: MemoryLimiter) -> None:
    tenant = requests("acme", 3, scope="tenant")
    for key in ("k1", "k2", "k3"):
        assert (await limiter.acquire([requests(key, 10), tenant])).allowed
    refused = await limiter.acquire([requests("k4", 10), tenant])
    assert not refused.allowed
    assert refused.levels == (10.0, 0.0)  # as found: k4's bucket untouched
    # k4 lost nothing to the refusal: its whole limit is still there
    assert (await limiter.acquire([Charge("key", "k4", "requests", 10, 10.0)])).allowed


async def test_requests_refused_by_their_key_take_nothing_from_the_tenant(
    limiter: MemoryLimiter,
) -> None:
    tenant = requests("acme", 100, scope="tenant")
    verdicts = [await limiter.acquire([requests("k", 5), tenant]) for _ in range(8)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 3
    assert (await limiter.acquire([Charge("tenant", "acme", "requests", 100, 95.0)])).allowed
    assert not (await limiter.acquire([tenant])).allowed


async def test_the_retry_wait_is_the_longest_shortfall(limiter: MemoryLimiter) -> None:
    await limiter.acquire([requests("k", 60), tokens("k", 600, 600)])
    verdict = await limiter.acquire([requests("k", 60), tokens("k", 600, 300)])
    assert not verdict.allowed
    assert verdict.retry_after_s == pytest.approx(30.0)  # 300 tokens at 10 a second


async def test_settle_refunds_what_was_not_used(limiter: MemoryLimiter) -> None:
    assert (await limiter.acquire([tokens("k", 100, 80)])).allowed
    await limiter.settle([tokens("k", 100, -50)])  # used 30 of the 80 charged
    verdict = await limiter.acquire([tokens("k", 100, 70)])
    assert verdict.allowed
    assert verdict.levels == (pytest.approx(0.0),)


async def test_a_refund_never_fills_a_bucket_past_its_limit(limiter: MemoryLimiter) -> None:
    await limiter.acquire([tokens("k", 100, 10)])
    await limiter.settle([tokens("k", 100, -1000)])
    assert (await limiter.acquire([tokens("k", 100, 100)])).allowed
    assert not (await limiter.acquire([tokens("k", 100, 1)])).allowed


async def test_settle_charges_beyond_the_estimate_without_refusing(
    limiter: MemoryLimiter, clock: Clock
) -> None:
    await limiter.acquire([tokens("k", 60, 50)])
    await limiter.settle([tokens("k", 60, 70)])  # used 120: the bucket owes 60
    verdict = await limiter.acquire([tokens("k", 60, 1)])
    assert not verdict.allowed
    assert verdict.levels == (pytest.approx(-60.0),)
    assert verdict.retry_after_s == pytest.approx(61.0)
    clock.advance(61)
    assert (await limiter.acquire([tokens("k", 60, 1)])).allowed


async def test_buckets_of_other_owners_and_units_are_separate(limiter: MemoryLimiter) -> None:
    await limiter.acquire([requests("a", 1)])
    assert not (await limiter.acquire([requests("a", 1)])).allowed
    assert (await limiter.acquire([requests("a", 1, scope="user")])).allowed
    assert (await limiter.acquire([requests("b", 1)])).allowed
    assert (await limiter.acquire([tokens("a", 1, 1)])).allowed


async def test_full_buckets_are_forgotten(limiter: MemoryLimiter, clock: Clock) -> None:
    for i in range(9_999):
        await limiter.acquire([requests(f"k{i}", 10)])
    assert len(limiter._buckets) == 9_999
    clock.advance(6)  # each bucket refilled by the one request it gave
    await limiter.acquire([requests("last", 10)])
    assert list(limiter._buckets) == ["key:last:requests"]


def test_bucket_functions() -> None:
    assert refill(0.0, 30, 60) == 30.0
    assert refill(-10.0, 30, 60) == 20.0
    assert refill(50.0, 30, 60) == 60.0
    assert refill(5.0, -1, 60) == 5.0  # a clock that went back adds nothing
    assert reset_s(0.0, 60) == 60.0
    assert reset_s(45.0, 60) == 15.0
    assert reset_s(60.0, 60) == 0.0
    charges = [requests("a", 60), tokens("a", 600, 100)]
    assert decide(charges, [1.0, 100.0]).levels == (0.0, 0.0)
    refused = decide(charges, [0.5, 100.0])
    assert (refused.allowed, refused.levels) == (False, (0.5, 100.0))
