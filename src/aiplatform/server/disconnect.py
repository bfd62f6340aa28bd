"""Stop the work of a client that has gone.

A streamed answer stops when its client leaves (the response notices as it sends). A
non-streamed one would otherwise run to its end for nobody: an LLM generation holding a slot
for minutes, or a forwarded call holding a pod's. :func:`unless_disconnected` runs the call
while it watches the ASGI receive channel, and cancels the call as soon as the server reports
``http.disconnect``. Cancelling reaches the engine: an in-process generation sets its
cancelled event and frees its slot; a forwarded call closes its upstream connection, so the
pod sees the disconnect and cancels in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from litestar.types import Receive

from aiplatform.errors import ClientDisconnectedError

__all__ = ["unless_disconnected"]

T = TypeVar("T")


async def unless_disconnected(receive: Receive, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``, cancelled when the client disconnects first (then
    :class:`~aiplatform.errors.ClientDisconnectedError`, whose response nobody reads).

    The request's body must already be read: messages other than the disconnect are dropped.
    Built on asyncio's own task cancellation rather than a task group: this wraps every
    non-streamed call, and an anyio task group costs about ten times as much per call.
    """
    task = asyncio.current_task()
    assert task is not None
    left = finished = False

    def on_disconnect(watcher: asyncio.Task[bool]) -> None:
        nonlocal left
        # ``finished``: the callback was already scheduled when the call returned; a cancel
        # now would land on whatever the task does next (sending the answer).
        if finished or watcher.cancelled() or watcher.exception() is not None:
            return
        if watcher.result():
            left = True
            task.cancel()

    watcher = asyncio.ensure_future(_watch(receive))
    watcher.add_done_callback(on_disconnect)
    try:
        answer = await call()
    except asyncio.CancelledError:
        if left and task.uncancel() == 0:  # cancelled for the disconnect alone
            raise ClientDisconnectedError(
                "The client disconnected; its request was cancelled."
            ) from None
        raise
    finally:
        finished = True
        watcher.remove_done_callback(on_disconnect)
        watcher.cancel()
    if left:  # the call finished despite the cancel: withdraw it
        task.uncancel()
    return answer


async def _watch(receive: Receive) -> bool:
    """True when the client disconnects; False when the channel fails (a body past its
    deadline), which is no disconnect to act on."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:
        return False
    return True
