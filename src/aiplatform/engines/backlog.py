"""Bounded waiting: how many calls may wait for an in-process engine, and for how long.

Every queue a request can wait in (an engine's worker threads or processes, its micro-batcher,
an LLM model's slots, the wait for a model load) admits through a :class:`Backlog`. Past
``workers + max_queue`` calls a new one is refused at once with 429 ``engine_overloaded`` and a
``Retry-After`` estimate, rather than waiting behind minutes of work; one that has waited
``queue_timeout_s`` without starting is dropped before it runs (429 ``queue_timeout``).

Work an engine does on its own (a background task: ingest jobs, index maintenance) is never
refused and has no deadline: it runs inside :func:`background_work` and waits its turn. Only
requests are shed.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from aiplatform.errors import EngineOverloadedError

__all__ = [
    "SMOOTHING",
    "Backlog",
    "Ticket",
    "background_work",
    "in_background",
    "overloaded",
    "retry_after_s",
    "timed_out",
]

_BACKGROUND: ContextVar[bool] = ContextVar("aiplatform_background_work", default=False)

#: Bounds of a ``Retry-After`` estimate, in seconds.
_MIN_RETRY_S = 1.0
_MAX_RETRY_S = 60.0
#: Weight of the newest call in the running average of call durations.
SMOOTHING = 0.2


@contextmanager
def background_work() -> Iterator[None]:
    """Mark the calls made in this context (and the tasks it starts) as the engine's own work."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def in_background() -> bool:
    return _BACKGROUND.get()


def retry_after_s(call_s: float | None, waiting: int, workers: int) -> float:
    """When a refused call may find room: the calls ahead of it, ``workers`` at a time."""
    if call_s is None:
        return _MIN_RETRY_S
    rounds = math.ceil((waiting + 1) / max(workers, 1))
    return min(max(call_s * rounds, _MIN_RETRY_S), _MAX_RETRY_S)


def overloaded(label: str, waiting: int, max_queue: int, retry_s: float) -> EngineOverloadedError:
    """The refusal of a call that finds ``max_queue`` calls waiting."""
    return EngineOverloadedError(
        f"{label} is overloaded: {waiting} requests are already waiting "
        f"(max_queue={max_queue}). Retry later.",
        retry_after_s=retry_s,
    )


def timed_out(label: str, timeout_s: float | None, retry_s: float) -> EngineOverloadedError:
    """The error of a call dropped at its deadline, before it ran."""
    return EngineOverloadedError(
        f"{label} could not start this request within {timeout_s:g} s (queue_timeout_s); "
        "it was dropped before it ran. Retry later.",
        retry_after_s=retry_s,
        code="queue_timeout",
    )


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DROPPED = "dropped"
    EXPIRED = "expired"


class Ticket:
    """One admitted call, from admission until it ends or leaves the queue."""

    __slots__ = ("deadline", "started_at", "state")

    def __init__(self, deadline: float | None) -> None:
        #: ``time.monotonic()`` past which the call may no longer start; None: no deadline
        self.deadline = deadline
        self.state = _State.QUEUED
        self.started_at = 0.0

    @property
    def expired(self) -> bool:
        """The call waited past its deadline and was dropped before it ran."""
        return self.state is _State.EXPIRED

    @property
    def never_ran(self) -> bool:
        """The call left the queue without running (its caller left, or its deadline passed):
        it will not run now."""
        return self.state in (_State.DROPPED, _State.EXPIRED)

    def remaining_s(self) -> float | None:
        """Seconds left to start; None when there is no deadline."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)


class Backlog:
    """Admission, deadlines and counts for one queue that ``workers`` calls at a time leave.

    Thread-safe: calls start and finish on worker threads while they are admitted on the loop.
    """

    def __init__(
        self,
        label: str,
        *,
        workers: int,
        max_queue: int,
        queue_timeout_s: float | None,
    ) -> None:
        self.label = label
        self.workers = workers
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._lock = threading.Lock()
        self._queued = 0
        self._running = 0
        #: running average of call durations, for Retry-After
        self._call_s: float | None = None

    @property
    def queued(self) -> int:
        """Calls admitted that have not started."""
        return self._queued

    @property
    def running(self) -> int:
        return self._running

    def admit(self) -> Ticket:
        """Take one more call, or refuse it at once when ``max_queue`` already wait."""
        background = in_background()
        with self._lock:
            free = max(self.workers - self._running, 0)
            if not background and self._queued >= self.max_queue + free:
                waiting = self._queued
                raise overloaded(self.label, waiting, self.max_queue, self._retry_after_s(waiting))
            self._queued += 1
        timeout = None if background else self.queue_timeout_s
        return Ticket(time.monotonic() + timeout if timeout is not None else None)

    def start(self, ticket: Ticket) -> bool:
        """The call is about to run. False when it left the queue, or waited past its
        deadline (then it is dropped: :attr:`Ticket.expired`)."""
        now = time.monotonic()
        with self._lock:
            if ticket.state is not _State.QUEUED:
                return False
            self._queued -= 1
            if ticket.deadline is not None and now > ticket.deadline:
                ticket.state = _State.EXPIRED
                return False
            ticket.state = _State.RUNNING
            ticket.started_at = now
            self._running += 1
            return True

    def finish(self, ticket: Ticket) -> None:
        """A call that started has ended."""
        now = time.monotonic()
        with self._lock:
            if ticket.state is not _State.RUNNING:
                return
            ticket.state = _State.DONE
            self._running -= 1
            took = now - ticket.started_at
            previous = self._call_s
            self._call_s = took if previous is None else previous + SMOOTHING * (took - previous)

    def drop(self, ticket: Ticket) -> bool:
        """Take a call that has not started off the queue (its caller left)."""
        return self._leave(ticket, _State.DROPPED)

    def expire(self, ticket: Ticket) -> bool:
        """Drop a call that has not started because its deadline passed."""
        return self._leave(ticket, _State.EXPIRED)

    def renew(self, ticket: Ticket) -> None:
        """Restart a waiting call's deadline (the time it spent on a model load is not the
        queue's)."""
        if ticket.deadline is not None and self.queue_timeout_s is not None:
            ticket.deadline = time.monotonic() + self.queue_timeout_s

    def timeout_error(self) -> EngineOverloadedError:
        """The error of a call dropped at its deadline."""
        return timed_out(self.label, self.queue_timeout_s, self._retry_after_s(self._queued))

    def _leave(self, ticket: Ticket, state: _State) -> bool:
        with self._lock:
            if ticket.state is not _State.QUEUED:
                return False
            ticket.state = state
            self._queued -= 1
            return True

    def _retry_after_s(self, waiting: int) -> float:
        return retry_after_s(self._call_s, waiting, self.workers)
