"""A micro-batcher: merges the items of concurrent requests into one model call.

Models such as sentence encoders run a batch of 32 in far less time than 32 single calls, so
under concurrent load one call per request wastes most of the machine. Each request submits its
items; a background task takes every request that is waiting when the model is free, runs one
call, and hands each request its slice. Batches form while the model is busy, so the batch size
follows the load by itself.

Waiting helps only under load: when the recent batches held several items, the next one may
wait up to ``max_wait_s`` for as many to arrive (clients whose answers just went out send their
next request a moment later). A lone client never waits.

A batch that fails is retried request by request, so one bad request fails alone.

The queue is bounded: past ``max_queue`` waiting requests (plus one per idle batch slot) a new
one is refused at once with 429 and ``Retry-After``; a request that waits ``queue_timeout_s``
without joining a batch is dropped before it runs (see :mod:`aiplatform.engines.backlog`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
import anyio.abc

from aiplatform.engines.backlog import (
    SMOOTHING,
    in_background,
    overloaded,
    retry_after_s,
    timed_out,
)
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import EngineOverloadedError, EngineUnavailableError

__all__ = ["MicroBatcher"]

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

#: Default bound of the queue: the engines' ``max_queue`` default.
DEFAULT_MAX_QUEUE = EngineSettings().max_queue


class _State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    LEFT = "left"  # its caller went away, or its deadline passed, before it ran


@dataclass(slots=True, eq=False)
class _Pending(Generic[In, Out]):
    items: Sequence[In]
    #: ``time.monotonic()`` past which it may no longer join a batch; None: no deadline
    deadline: float | None
    done: anyio.Event = field(default_factory=anyio.Event)
    result: list[Out] | None = None
    error: BaseException | None = None
    state: _State = _State.WAITING


class MicroBatcher(Generic[In, Out]):
    """Run ``process`` on batches merged from concurrent :meth:`submit` calls.

    ``process`` takes a list of items and returns one output per item, in order. Up to
    ``max_concurrency`` batches run at once; the next batch is formed only when a slot is free.
    Call :meth:`run` in a task group before submitting.
    """

    def __init__(
        self,
        process: Callable[[list[In]], Awaitable[list[Out]]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_concurrency: int = 1,
        max_queue: int = DEFAULT_MAX_QUEUE,
        queue_timeout_s: float | None = None,
        label: str = "The micro-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._process = process
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._max_concurrency = max_concurrency
        self._max_queue = max_queue
        self._queue_timeout_s = queue_timeout_s
        self._label = label
        self._open = False
        #: requests waiting for a batch, oldest first (a request that did not fit the batch
        #: being formed goes back to the front: it starts the next one)
        self._waiting: deque[_Pending[In, Out]] = deque()
        self._arrived: anyio.Event | None = None
        self._batches_running = 0
        #: sizes of the last few batches: how many items the load tends to bring at once.
        self._recent_sizes: deque[int] = deque(maxlen=8)
        #: running average of batch durations, for Retry-After
        self._batch_s: float | None = None

    @property
    def queued(self) -> int:
        """Requests (or parts of large requests) waiting for a batch."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Batches running now."""
        return self._batches_running

    async def submit(self, items: Sequence[In]) -> list[Out]:
        """Queue ``items`` for batching and wait for their outputs (in the same order)."""
        if not self._open:
            raise EngineUnavailableError("The engine is not running.")
        if not items:
            return []
        size = self._max_batch_size
        parts = [items[start : start + size] for start in range(0, len(items), size)]
        pendings = self._admit(parts)
        try:
            outputs: list[Out] = []
            for pending in pendings:
                outputs.extend(await self._wait(pending))
            return outputs
        finally:
            for pending in pendings:
                self._leave(pending)

    def _admit(self, parts: list[Sequence[In]]) -> list[_Pending[In, Out]]:
        """Queue a request's parts, or refuse it at once when ``max_queue`` already wait."""
        background = in_background()
        free = max(self._max_concurrency - self._batches_running, 0)
        if not background and len(self._waiting) >= self._max_queue + free:
            raise overloaded(self._label, len(self._waiting), self._max_queue, self._retry_s())
        timeout = None if background else self._queue_timeout_s
        deadline = time.monotonic() + timeout if timeout is not None else None
        pendings: list[_Pending[In, Out]] = [_Pending(part, deadline) for part in parts]
        self._waiting.extend(pendings)
        if self._arrived is not None:
            self._arrived.set()
        return pendings

    async def _wait(self, pending: _Pending[In, Out]) -> list[Out]:
        if pending.deadline is None:
            await pending.done.wait()
        else:
            with anyio.move_on_after(max(pending.deadline - time.monotonic(), 0.0)):
                await pending.done.wait()
            if not pending.done.is_set():
                if pending.state is _State.WAITING:
                    self._leave(pending)
                    raise self._timeout_error()
                await pending.done.wait()  # it runs: a running batch has no deadline
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _leave(self, pending: _Pending[In, Out]) -> None:
        """Take a request that has not joined a running batch off the queue."""
        if pending.state is not _State.WAITING:
            return
        pending.state = _State.LEFT
        with contextlib.suppress(ValueError):  # not found: in the batch being formed, which
            self._waiting.remove(pending)  # skips it

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Form and run batches until cancelled."""
        slots = anyio.Semaphore(self._max_concurrency)
        self._open = True
        task_status.started()
        try:
            async with anyio.create_task_group() as task_group:
                while True:
                    await slots.acquire()
                    try:
                        batch = await self._next_batch()
                    except BaseException:
                        slots.release()
                        raise
                    task_group.start_soon(self._run_batch, batch, slots)
        finally:
            self._open = False
            leftovers = list(self._waiting)
            self._waiting.clear()
            for pending in leftovers:
                pending.error = EngineUnavailableError("The engine is shutting down.")
                pending.done.set()

    async def _receive(self) -> _Pending[In, Out]:
        while not self._waiting:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        return self._waiting.popleft()

    def _usable(self, pending: _Pending[In, Out]) -> bool:
        """Whether a request taken off the queue joins the batch: not left, not past its
        deadline (then it is dropped with its error)."""
        if pending.state is not _State.WAITING:
            return False
        if pending.deadline is not None and time.monotonic() > pending.deadline:
            pending.state = _State.LEFT
            pending.error = self._timeout_error()
            pending.done.set()
            return False
        return True

    async def _next_batch(self) -> list[_Pending[In, Out]]:
        batch: list[_Pending[In, Out]] = []
        count = 0
        first = await self._receive()
        if self._usable(first):
            batch.append(first)
            count = len(first.items)
        deadline = anyio.current_time() + self._max_wait_s
        expected = min(max(self._recent_sizes, default=1), self._max_batch_size)
        while count < self._max_batch_size:
            if self._waiting:
                pending = self._waiting.popleft()
            else:
                remaining = deadline - anyio.current_time()
                if remaining <= 0 or not batch or count >= expected:
                    break
                received: _Pending[In, Out] | None = None
                with anyio.move_on_after(remaining):
                    received = await self._receive()
                if received is None:
                    break
                pending = received
            if not self._usable(pending):
                continue
            if count + len(pending.items) > self._max_batch_size:
                self._waiting.appendleft(pending)
                break
            batch.append(pending)
            count += len(pending.items)
        self._recent_sizes.append(count)
        return batch

    async def _run_batch(self, batch: list[_Pending[In, Out]], slots: anyio.Semaphore) -> None:
        self._batches_running += 1
        started = time.monotonic()
        try:
            batch = [pending for pending in batch if pending.state is _State.WAITING]
            if not batch:
                return
            for pending in batch:
                pending.state = _State.RUNNING
            items = [item for pending in batch for item in pending.items]
            logger.debug("running a batch of %d items from %d requests", len(items), len(batch))
            try:
                outputs = await self._process(items)
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                    return
                logger.debug("batch of %d requests failed; retrying one by one", len(batch))
                for pending in batch:
                    await self._run_alone(pending)
                return
            _hand_out(batch, items, outputs)
            took = time.monotonic() - started
            previous = self._batch_s
            self._batch_s = took if previous is None else previous + SMOOTHING * (took - previous)
        except Exception as exc:
            for pending in batch:
                if pending.result is None and pending.error is None:
                    pending.error = exc
        finally:
            for pending in batch:
                if pending.result is None and pending.error is None:
                    pending.error = EngineUnavailableError("The engine is shutting down.")
                pending.done.set()
            self._batches_running -= 1
            slots.release()

    async def _run_alone(self, pending: _Pending[In, Out]) -> None:
        try:
            pending.result = await self._process(list(pending.items))
        except Exception as exc:
            pending.error = exc

    def _retry_s(self) -> float:
        rounds = math.ceil(len(self._waiting) / self._max_batch_size)
        return retry_after_s(self._batch_s, rounds, self._max_concurrency)

    def _timeout_error(self) -> EngineOverloadedError:
        return timed_out(self._label, self._queue_timeout_s, self._retry_s())


def _hand_out(batch: list[_Pending[In, Out]], items: list[In], outputs: list[Out]) -> None:
    """Give each request of a batch its slice of the outputs."""
    if len(outputs) != len(items):
        raise RuntimeError(f"batch produced {len(outputs)} outputs for {len(items)} items")
    offset = 0
    for pending in batch:
        pending.result = outputs[offset : offset + len(pending.items)]
        offset += len(pending.items)
