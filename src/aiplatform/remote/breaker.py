"""A circuit breaker per remote engine: while the upstream cannot be reached, fail fast.

Without one, a hung upstream (a stopped process, a partitioned node) costs every request the
whole ``timeout_s``, and a dead one costs each request a connect attempt. The breaker *opens*
when the upstream is found unreachable: a connection refused opens it at once; a call that
timed out or broke off opens it only when a probe sent at once gets no answer either (a call may
time out because it was long, while the upstream is fine). While it is open every call fails at
once with 503 ``upstream_circuit_open``, and a background probe asks the upstream's readiness
path every ``probe_interval_s``. The first probe the upstream *answers* closes it — with any
status: the breaker is about reaching the upstream; whether it is ready is the upstream's own
answer to give (a 503 of its own), and ``/ready`` reports it. Answers the upstream gives to calls
(a 4xx, its own 503, a body that cannot be used) never open it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import anyio
import anyio.abc

from aiplatform.errors import EngineUnavailableError

__all__ = ["CircuitBreaker", "CircuitState", "ProbeResult"]

logger = logging.getLogger(__name__)

CircuitState = Literal["closed", "open"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a readiness probe found."""

    #: The upstream answered over HTTP, whatever the status.
    answered: bool
    #: It answered ready.
    ready: bool
    #: Why not, or where.
    detail: str


class CircuitBreaker:
    """Whether calls to one upstream go through, and the probe that decides when they may again.

    ``start`` hands it the task group its probes run in (the engine's own, for its lifetime);
    a breaker never started still opens at a refused connection, but only :meth:`probe_now`
    closes it.
    """

    def __init__(
        self,
        name: str,
        url: str,
        probe: Callable[[], Awaitable[ProbeResult]],
        *,
        interval_s: float,
    ) -> None:
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
            f"{self._url} unreachable for {since:.1f}s ({self._reason}); calls fail at once "
            f"until it answers a probe (every {self._interval_s:g}s)"
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

    def unreachable(self, reason: str) -> None:
        """The upstream refused a connection or ignored a probe: open now, and probe."""
        if self._state == "closed":
            logger.warning("engine %s at %s is unreachable (%s)", self._name, self._url, reason)
            self._state = "open"
            self._opened_at = time.monotonic()
        self._reason = reason
        self._start_probing()

    def suspect(self, reason: str) -> None:
        """A call timed out or broke off: probe now, and open if the probe gets no answer."""
        self._reason = reason
        self._start_probing()

    async def probe_now(self) -> ProbeResult:
        """Probe once: an answer closes the breaker; none opens it."""
        result = await self._probe()
        if result.answered:
            self._close()
        else:
            self.unreachable(result.detail)
        return result

    def _close(self) -> None:
        if self._state == "open":
            logger.warning("engine %s at %s answers again", self._name, self._url)
        self._state = "closed"
        self._reason = ""

    def _start_probing(self) -> None:
        if self._probing or self._task_group is None:
            return
        self._probing = True
        self._task_group.start_soon(self._probe_until_answered, name=f"probe {self._name}")

    async def _probe_until_answered(self) -> None:
        """Probe at once, then every ``interval_s`` while open. Nothing a probe raises may end
        the task group it runs in (the engine's, and with it the server)."""
        try:
            while True:
                try:
                    result = await self._probe()
                except Exception as exc:  # a misconfigured probe must not take the server down
                    logger.exception("probing engine %s at %s failed", self._name, self._url)
                    result = ProbeResult(answered=False, ready=False, detail=repr(exc))
                if result.answered:
                    self._close()
                    return
                self.unreachable(result.detail)
                await anyio.sleep(self._interval_s)
        finally:
            self._probing = False
