"""Buckets in this process: exact for one server; replicas each count on their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from aiplatform.limits.limiter import Charge, Verdict, decide, refill, settled

__all__ = ["MemoryLimiter"]

#: Buckets kept before full ones (indistinguishable from absent ones) are dropped.
_SWEEP_AT = 10_000


class MemoryLimiter:
    """Token buckets in a dict. Each call runs without awaiting, so on the event loop it is
    atomic: concurrent requests see each other's takes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: bucket key -> (level, when it was that, its limit). An absent bucket is full.
        self._buckets: dict[str, tuple[float, float, int]] = {}
        self._sweep_at = _SWEEP_AT

    async def acquire(self, charges: Sequence[Charge]) -> Verdict:
        now = self._clock()
        verdict = decide(charges, [self._level(charge, now) for charge in charges])
        if verdict.allowed:
            for charge, level in zip(charges, verdict.levels, strict=True):
                self._store(charge, level, now)
        return verdict

    async def settle(self, charges: Sequence[Charge]) -> None:
        now = self._clock()
        for charge in charges:
            self._store(charge, settled(charge, self._level(charge, now)), now)

    async def aclose(self) -> None:
        self._buckets.clear()

    def _level(self, charge: Charge, now: float) -> float:
        state = self._buckets.get(charge.key)
        if state is None:
            return float(charge.limit)
        level, at, _ = state
        return refill(level, now - at, charge.limit)

    def _store(self, charge: Charge, level: float, now: float) -> None:
        if level >= charge.limit:
            self._buckets.pop(charge.key, None)
            return
        self._buckets[charge.key] = (level, now, charge.limit)
        if len(self._buckets) >= self._sweep_at:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Drop the buckets that have refilled; if most have not, sweep again only once the
        dict has doubled, so sweeping stays amortized O(1) per request."""
        self._buckets = {
            key: (level, at, limit)
            for key, (level, at, limit) in self._buckets.items()
            if refill(level, now - at, limit) < limit
        }
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._buckets))
