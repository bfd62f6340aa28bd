"""Bridges from blocking model code on worker threads to the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

__all__ = ["iterate_in_thread"]

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(
    executor: Executor, make_iterator: Callable[[threading.Event], Iterator[T]]
) -> AsyncIterator[T]:
    """Run a blocking iterator on ``executor`` and yield its items on the event loop.

    ``make_iterator`` receives an event that is set when the consumer stops early (it closed
    the stream, or its client went away); the iterator should check it between items and end,
    which frees its thread (and whatever it holds, such as a generation slot).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancelled = threading.Event()

    def produce() -> None:
        try:
            for item in make_iterator(cancelled):
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if cancelled.is_set():
                    break
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, _Failure(exc))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    future = loop.run_in_executor(executor, produce)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        # A producer still queued never starts; a running one sees the event and ends.
        cancelled.set()
        future.cancel()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
