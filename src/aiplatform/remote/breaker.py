"""A circuit breaker per remote engine: after the upstream fails, fail fast until it is back.

Without one, a hung upstream (a stopped process, a partitioned node) costs every request the
whole ``timeout_s``, and a dead one costs each request a connect attempt. When a call fails in
transport (refused, timed out, broken off), the breaker *opens*: every call fails at once with
503 ``upstream_circuit_open``, and a background probe asks the upstream's readiness path every
``probe_interval_s``. The first probe that finds it ready *closes* the breaker, and calls go
through again. Answers the upstream gives itself (a 4xx, its own 503) never open it: the upstream
is there and speaking.

A call that times out because it was legitimately long opens the breaker too; the probe, which
a healthy upstream answers at once, closes it again within moments.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
import anyio.abc

from aiplatform.errors import EngineUnavailableError

__all__ = ["CircuitBreaker", "CircuitState"]

logger = logging.getLogger(__name__)

CircuitState = Literal["closed", "open"]

#: A probe says whether the upstream is ready, and why not when it is not.
Probe = Callable[[], Awaitable[tuple[bool, str]]]


class CircuitBreaker:
    """Whether calls to one upstream go through, and the probe that decides when they may again.

    ``start`` hands it the task group its probe runs in (the engine's own, for its lifetime);
    a breaker never started still opens and fails fast, but only :meth:`probe_now` closes it.
    """

    def __init__(self, name: str, url: str, probe: Probe, *, interval_s: float) -> None:
        self._name = name
        self._url = url
        self._probe = probe
        self._interval_s = interval_s
        self._state: CircuitState = "closed"
        self._reason = ""
        self._opened_at = 0.0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def detail(self) -> str:
        """Why the breaker is open and since when; empty when closed."""
        if self._state == "closed":
            return ""
        since = time.monotonic() - self._opened_at
        return (
            f"{self._url} failed {since:.1f}s ago ({self._reason}); calls fail at once until "
            f"its readiness probe (every {self._interval_s:g}s) succeeds"
        )

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        if self._state == "open":
            self._start_probing()

    def stop(self) -> None:
        self._task_group = None

    def check(self) -> None:
        """Raise 503 ``upstream_circuit_open`` while the breaker is open."""
        if self._state == "open":
            error = EngineUnavailableError(
                f"Engine '{self._name}' is unavailable: {self.detail}.",
                code="upstream_circuit_open",
            )
            error.retry_after_s = float(math.ceil(self._interval_s))
            raise error

    def trip(self, reason: str) -> None:
        """A call failed in transport: open (if closed) and start probing."""
        if self._state == "closed":
            logger.warning(
                "engine %s at %s failed (%s): failing fast", self._name, self._url, reason
            )
            self._state = "open"
            self._opened_at = time.monotonic()
        self._reason = reason
        self._start_probing()

    async def probe_now(self) -> bool:
        """Probe once; close on success. Whether the upstream is ready."""
        ready, _ = await self._probe()
        if ready:
            self._close()
        return ready

    def _close(self) -> None:
        if self._state == "open":
            logger.warning("engine %s at %s is ready again", self._name, self._url)
        self._state = "closed"
        self._reason = ""

    def _start_probing(self) -> None:
        if self._probing or self._task_group is None:
            return
        self._probing = True
        self._task_group.start_soon(self._probe_until_closed)

    async def _probe_until_closed(self) -> None:
        try:
            while self._state == "open":
                if await self.probe_now():
                    return
                await anyio.sleep(self._interval_s)
        finally:
            self._probing = False
