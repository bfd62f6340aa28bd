"""ASGI middleware that gives a request's body a deadline.

A client that sends its body a byte at a time would otherwise hold a connection, a task and a
buffer for as long as it likes. The body must arrive in full within ``body_timeout_s`` of the
first read; past it the read fails with 408 ``body_timeout``, sent with ``Connection: close``
so the server closes the connection. Reads after the body (a route watching for the client's
disconnect) have no deadline.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from aiplatform.errors import RequestTimeoutError

__all__ = ["BodyTimeoutError", "body_deadline_middleware"]


class BodyTimeoutError(RequestTimeoutError):
    """The body did not arrive in time; the connection is closed after the answer."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


def body_deadline_middleware(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if str(scope["type"]) != "http":
                await app(scope, receive, send)
                return
            await app(scope, _bounded(receive, timeout_s), send)

        return middleware

    return wrap


def _bounded(receive: Receive, timeout_s: float) -> Receive:
    deadline: float | None = None
    done = False

    async def bounded_receive() -> ReceiveMessage:
        nonlocal deadline, done
        if done:
            return await receive()
        if deadline is None:
            deadline = anyio.current_time() + timeout_s
        with anyio.move_on_after(deadline - anyio.current_time()):
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message
        raise BodyTimeoutError(
            f"The request body did not arrive within {timeout_s:g} s (body_timeout_s).",
            code="body_timeout",
        )

    return bounded_receive
