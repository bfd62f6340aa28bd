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
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aiplatform.errors import EngineUnavailableError

__all__ = ["MicroBatcher"]

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(slots=True)
class _Pending(Generic[In, Out]):
    items: Sequence[In]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: list[Out] | None = None
    error: BaseException | None = None
    cancelled: bool = False


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
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._process = process
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._max_concurrency = max_concurrency
        self._send: MemoryObjectSendStream[_Pending[In, Out]] | None = None
        self._receive: MemoryObjectReceiveStream[_Pending[In, Out]] | None = None
        #: a request that did not fit the batch being formed; it starts the next one.
        self._carry: _Pending[In, Out] | None = None
        #: sizes of the last few batches: how many items the load tends to bring at once.
        self._recent_sizes: deque[int] = deque(maxlen=8)

    async def submit(self, items: Sequence[In]) -> list[Out]:
        """Queue ``items`` for batching and wait for their outputs (in the same order)."""
        if self._send is None:
            raise EngineUnavailableError("The engine is not running.")
        if not items:
            return []
        size = self._max_batch_size
        if len(items) <= size:
            return await self._submit_one(items)
        parts: list[list[Out]] = [[] for _ in range(math.ceil(len(items) / size))]

        async def submit_part(index: int) -> None:
            parts[index] = await self._submit_one(items[index * size : (index + 1) * size])

        async with anyio.create_task_group() as task_group:
            for index in range(len(parts)):
                task_group.start_soon(submit_part, index)
        return [out for part in parts for out in part]

    async def _submit_one(self, items: Sequence[In]) -> list[Out]:
        assert self._send is not None
        pending: _Pending[In, Out] = _Pending(items)
        await self._send.send(pending)
        try:
            await pending.done.wait()
        except BaseException:
            pending.cancelled = True  # the caller went away: skip it if not yet running
            raise
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Form and run batches until cancelled."""
        send, receive = anyio.create_memory_object_stream[_Pending[In, Out]](math.inf)
        self._send, self._receive = send, receive
        slots = anyio.Semaphore(self._max_concurrency)
        task_status.started()
        try:
            async with anyio.create_task_group() as task_group:
                while True:
                    await slots.acquire()
                    try:
                        batch = await self._next_batch(receive)
                    except BaseException:
                        slots.release()
                        raise
                    task_group.start_soon(self._run_batch, batch, slots)
        finally:
            self._send = None
            send.close()
            leftovers = [self._carry] if self._carry is not None else []
            self._carry = None
            while True:
                try:
                    leftovers.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            for pending in leftovers:
                pending.error = EngineUnavailableError("The engine is shutting down.")
                pending.done.set()
            receive.close()

    async def _next_batch(
        self, receive: MemoryObjectReceiveStream[_Pending[In, Out]]
    ) -> list[_Pending[In, Out]]:
        batch: list[_Pending[In, Out]] = []
        count = 0
        first = self._carry if self._carry is not None else await receive.receive()
        self._carry = None
        if not first.cancelled:
            batch.append(first)
            count = len(first.items)
        deadline = anyio.current_time() + self._max_wait_s
        expected = min(max(self._recent_sizes, default=1), self._max_batch_size)
        while count < self._max_batch_size:
            try:
                pending = receive.receive_nowait()
            except anyio.WouldBlock:
                remaining = deadline - anyio.current_time()
                if remaining <= 0 or not batch or count >= expected:
                    break
                received: _Pending[In, Out] | None = None
                with anyio.move_on_after(remaining):
                    received = await receive.receive()
                if received is None:
                    break
                pending = received
            if pending.cancelled:
                continue
            if count + len(pending.items) > self._max_batch_size:
                self._carry = pending
                break
            batch.append(pending)
            count += len(pending.items)
        self._recent_sizes.append(count)
        return batch

    async def _run_batch(self, batch: list[_Pending[In, Out]], slots: anyio.Semaphore) -> None:
        try:
            batch = [pending for pending in batch if not pending.cancelled]
            if not batch:
                return
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
            if len(outputs) != len(items):
                raise RuntimeError(f"batch produced {len(outputs)} outputs for {len(items)} items")
            offset = 0
            for pending in batch:
                pending.result = outputs[offset : offset + len(pending.items)]
                offset += len(pending.items)
        except Exception as exc:
            for pending in batch:
                if pending.result is None and pending.error is None:
                    pending.error = exc
        finally:
            for pending in batch:
                if pending.result is None and pending.error is None:
                    pending.error = EngineUnavailableError("The engine is shutting down.")
                pending.done.set()
            slots.release()

    async def _run_alone(self, pending: _Pending[In, Out]) -> None:
        try:
            pending.result = await self._process(list(pending.items))
        except Exception as exc:
            pending.error = exc
