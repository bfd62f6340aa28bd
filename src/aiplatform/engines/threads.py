"""Blocking model code on worker threads, bridged to the event loop, behind a bounded queue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import aclosing, suppress
from functools import partial
from typing import Any, TypeVar

from aiplatform.engines.backlog import Backlog, Ticket
from aiplatform.errors import EngineUnavailableError, RequestTimeoutError

__all__ = ["BUFFERED_ITEMS", "READER_STALL_S", "ThreadPool"]

T = TypeVar("T")

_DONE = object()
_EXPIRED = object()
#: Items (tokens, chunks) an iterator may run ahead of its consumer before it waits.
BUFFERED_ITEMS = 64
#: How often a producer waiting for room checks whether its consumer left.
_ROOM_POLL_S = 0.05
#: How long a producer waits for a consumer that takes nothing (a client that stopped reading
#: but keeps its connection) before it ends the iteration, freeing its thread and its slot.
READER_STALL_S = 60.0


class ThreadPool:
    """``workers`` long-lived threads whose waiting calls a :class:`Backlog` bounds.

    A call is admitted when it is submitted (refused at once past ``max_queue`` waiting), checks
    its deadline when a thread takes it, and is dropped on the loop at the deadline if no thread
    has taken it by then. A caller that leaves before its call starts takes it off the queue; one
    that leaves while it runs leaves it to finish (a thread cannot be stopped) and drops the
    result.
    """

    def __init__(
        self,
        label: str,
        *,
        workers: int,
        max_queue: int,
        queue_timeout_s: float | None,
        thread_name_prefix: str = "",
    ) -> None:
        self.backlog = Backlog(
            label, workers=workers, max_queue=max_queue, queue_timeout_s=queue_timeout_s
        )
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=thread_name_prefix)

    @property
    def executor(self) -> Executor:
        """The threads themselves, for the engine's own calls that no request waits for
        (loading and unloading a model); calls submitted here skip the queue's bound."""
        return self._executor

    @property
    def queued(self) -> int:
        return self.backlog.queued

    @property
    def running(self) -> int:
        return self.backlog.running

    def admit(self) -> Ticket:
        """Reserve a place for a call made later with ``ticket=`` (429 when full)."""
        return self.backlog.admit()

    def release(self, ticket: Ticket) -> None:
        """Give back a reserved place that was never used."""
        self.backlog.drop(ticket)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any, ticket: Ticket | None = None) -> T:
        """Run ``fn(*args)`` on one of the threads and return its result."""
        ticket = ticket if ticket is not None else self.backlog.admit()
        backlog = self.backlog
        # What the call needs, released as soon as it cannot run: the executor keeps its work
        # item until a thread is free, and a failed wait keeps this frame in a traceback; the
        # arguments (say an upload's audio) need not stay with either.
        work: list[Any] = [fn, args]
        del fn, args

        def call() -> T | None:
            if not backlog.start(ticket):
                return None
            function, arguments = work
            try:
                return function(*arguments)  # type: ignore[no-any-return]
            finally:
                backlog.finish(ticket)

        try:
            future = self._submit(call)
            wrapped = asyncio.wrap_future(future)
            timer = self._expire_at_deadline(ticket, future)
            try:
                result = await wrapped
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                if ticket.expired:
                    raise backlog.timeout_error() from None
                raise _shutting_down() from None  # the pool shut down before it ran
            finally:
                if timer is not None:
                    timer.cancel()
            if ticket.expired:
                raise backlog.timeout_error()
            return result  # type: ignore[return-value]  # None only when dropped
        finally:
            backlog.drop(ticket)
            if ticket.never_ran:
                work.clear()

    async def iterate(
        self,
        make_iterator: Callable[[threading.Event], Iterator[T]],
        *,
        ticket: Ticket | None = None,
    ) -> AsyncIterator[T]:
        """Run a blocking iterator on one of the threads and yield its items on the loop.

        ``make_iterator`` receives an event that is set when the consumer stops early (it
        closed the stream, or its client went away); the iterator should check it between items
        and end, which frees its thread (and whatever it holds, such as a generation slot).
        Admitted when iteration begins."""
        ticket = ticket if ticket is not None else self.backlog.admit()
        backlog = self.backlog

        def started(cancelled: threading.Event) -> Iterator[T]:
            if not backlog.start(ticket):
                return
            try:
                yield from make_iterator(cancelled)
            finally:
                backlog.finish(ticket)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()
        room = threading.Semaphore(BUFFERED_ITEMS)
        try:
            future = self._submit(lambda: _produce(loop, queue, started, cancelled, room))
            future.add_done_callback(partial(_end_if_cancelled, loop, queue))
            timer = self._expire_at_deadline(ticket, future, queue)
            try:
                async with aclosing(_consume(queue, future, cancelled, room)) as items:
                    async for item in items:
                        yield item  # type: ignore[misc]
            finally:
                if timer is not None:
                    timer.cancel()
        except _ExpiredError:
            raise backlog.timeout_error() from None
        finally:
            backlog.drop(ticket)
        if ticket.expired:
            raise backlog.timeout_error()

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        try:
            return self._executor.submit(fn)
        except RuntimeError as exc:  # shut down
            raise _shutting_down() from exc

    def _expire_at_deadline(
        self, ticket: Ticket, future: Future[Any], queue: asyncio.Queue[object] | None = None
    ) -> asyncio.TimerHandle | None:
        remaining = ticket.remaining_s()
        if remaining is None:
            return None

        def expire() -> None:
            if self.backlog.expire(ticket):
                future.cancel()
                if queue is not None:
                    queue.put_nowait(_EXPIRED)

        return asyncio.get_running_loop().call_later(remaining, expire)


def _produce(
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[object],
    make_iterator: Callable[[threading.Event], Iterator[Any]],
    cancelled: threading.Event,
    room: threading.Semaphore,
) -> None:
    """On the worker thread: hand each item to the loop, then the end (or the failure). With
    ``BUFFERED_ITEMS`` items not yet taken by the consumer, wait for it: a slow reader holds
    the iterator back (the model stops generating) rather than growing the queue."""
    iterator: Iterator[Any] | None = None
    try:
        iterator = make_iterator(cancelled)
        for item in iterator:
            if not _wait_for_room(room, cancelled):
                if not cancelled.is_set():
                    stalled = RequestTimeoutError(
                        f"The reader took nothing for {READER_STALL_S:.0f} s; the stream ended.",
                        code="reader_stalled",
                    )
                    loop.call_soon_threadsafe(queue.put_nowait, _Failure(stalled))
                return
            loop.call_soon_threadsafe(queue.put_nowait, item)
            if cancelled.is_set():
                break
    except BaseException as exc:
        loop.call_soon_threadsafe(queue.put_nowait, _Failure(exc))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:  # a generator's own cleanup runs now, on this thread
            close()
        loop.call_soon_threadsafe(queue.put_nowait, _DONE)


def _wait_for_room(room: threading.Semaphore, cancelled: threading.Event) -> bool:
    """Whether room came free; False when the consumer left or took nothing for
    ``READER_STALL_S``."""
    deadline = time.monotonic() + READER_STALL_S
    while not room.acquire(timeout=_ROOM_POLL_S):
        if cancelled.is_set() or time.monotonic() > deadline:
            return False
    return True


async def _consume(
    queue: asyncio.Queue[object],
    future: asyncio.Future[Any] | Future[Any],
    cancelled: threading.Event,
    room: threading.Semaphore,
) -> AsyncGenerator[object, None]:
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if item is _EXPIRED:
                raise _ExpiredError
            if isinstance(item, _Failure):
                raise item.error
            room.release()
            yield item
    finally:
        # A producer still queued never starts; a running one sees the event and ends.
        cancelled.set()
        future.cancel()


def _end_if_cancelled(
    loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object], future: Future[Any]
) -> None:
    """A producer cancelled before it ran (the pool shut down) ends its consumer's wait."""
    if future.cancelled():
        with suppress(RuntimeError):  # the loop is already closed: nobody waits
            loop.call_soon_threadsafe(queue.put_nowait, _Failure(_shutting_down()))


def _shutting_down() -> EngineUnavailableError:
    return EngineUnavailableError("The engine is shutting down.")


def _being_cancelled() -> bool:
    """Whether the running task itself was cancelled (not only a future it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _ExpiredError(Exception):
    """The call's deadline passed before a thread took it."""


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
