"""What a limiter is: token buckets, and taking from several of them at once or from none.

A bucket holds at most ``limit`` (its per-minute limit) and refills continuously at ``limit``
per :data:`PERIOD_S`. A request names every bucket it touches with what it takes from each
(:class:`Charge`); :meth:`Limiter.acquire` takes all of it, or, when any bucket holds less than
its charge, nothing at all, so a request refused by one limit never uses up another. What a
request really used is settled afterwards (:meth:`Limiter.settle`): a refund or a further
charge that may leave a bucket below zero, never a refusal.

The math here is shared by the in-process limiter; the Redis limiter's script does the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from aiplatform.errors import EngineUnavailableError
from aiplatform.limits.settings import RateLimitSettings

__all__ = [
    "PERIOD_S",
    "Charge",
    "Limiter",
    "RateLimiterUnavailableError",
    "Unit",
    "Verdict",
    "build_limiter",
    "decide",
    "refill",
    "reset_s",
    "settled",
    "shortfall_s",
    "taken",
]

#: A limit is per minute: an empty bucket is full again after this long.
PERIOD_S = 60.0

Unit = Literal["requests", "tokens"]


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request takes from one bucket (or, settling, gives back when negative)."""

    #: ``key``, ``user`` or ``tenant``: whose bucket.
    scope: str
    #: The key's id, the user's name, the tenant's name.
    name: str
    unit: Unit
    #: The bucket's per-minute limit (its capacity).
    limit: int
    amount: float

    @property
    def key(self) -> str:
        """The bucket's name: unique per scope, name and unit."""
        return f"{self.scope}:{self.name}:{self.unit}"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    #: Each bucket's level, in the order of the charges: after the take when allowed, before
    #: it (refilled to now) when refused.
    levels: tuple[float, ...]
    #: When refused: how long until every bucket holds its charge.
    retry_after_s: float = 0.0


class RateLimiterUnavailableError(EngineUnavailableError):
    """The shared limiter cannot be asked (Redis down, or too slow): refuse rather than let
    every request through unlimited (503 ``rate_limiter_unavailable``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="rate_limiter_unavailable", retry_after_s=1.0)


class Limiter(Protocol):
    async def acquire(self, charges: Sequence[Charge]) -> Verdict:
        """Take every charge, or none when any bucket holds less than its charge."""
        ...

    async def settle(self, charges: Sequence[Charge]) -> None:
        """Add each charge's amount (negative: a refund) to what its bucket has given, without
        refusing: a bucket may go below zero, and never above its limit."""
        ...

    async def aclose(self) -> None: ...


def refill(level: float, elapsed_s: float, limit: int) -> float:
    """A bucket's level ``elapsed_s`` after it was ``level``."""
    return min(float(limit), level + max(0.0, elapsed_s) * limit / PERIOD_S)


def reset_s(level: float, limit: int) -> float:
    """Seconds until a bucket at ``level`` is full again."""
    return max(0.0, (limit - level) * PERIOD_S / limit)


def decide(charges: Sequence[Charge], levels: Sequence[float]) -> Verdict:
    """Whether ``charges`` fit buckets at ``levels`` (refilled to now): all of them or none.

    Allowed, the verdict's levels are those after the take (:func:`taken`); refused, they are
    ``levels`` themselves, and ``retry_after_s`` is the longest wait for a short bucket.
    """
    wait = shortfall_s(charges, levels)
    if wait is not None:
        return Verdict(allowed=False, levels=tuple(levels), retry_after_s=wait)
    return Verdict(allowed=True, levels=taken(charges, levels))


def shortfall_s(charges: Sequence[Charge], levels: Sequence[float]) -> float | None:
    """How long until every bucket at ``levels`` holds its charge; None when they all do."""
    waits = [
        (charge.amount - level) * PERIOD_S / charge.limit
        for charge, level in zip(charges, levels, strict=True)
        if level < charge.amount
    ]
    return max(waits) if waits else None


def taken(charges: Sequence[Charge], levels: Sequence[float]) -> tuple[float, ...]:
    return tuple(level - charge.amount for charge, level in zip(charges, levels, strict=True))


def settled(charge: Charge, level: float) -> float:
    """A bucket's level after settling ``charge`` (which may leave it below zero)."""
    return min(float(charge.limit), level - charge.amount)


def build_limiter(settings: RateLimitSettings) -> Limiter:
    """The limiter ``settings`` ask for: in Redis when ``redis_url`` is set, else in-process."""
    if settings.redis_url:
        from aiplatform.limits.redis import RedisLimiter

        return RedisLimiter(settings.redis_url, timeout_s=settings.redis_timeout_s)
    from aiplatform.limits.memory import MemoryLimiter

    return MemoryLimiter()
