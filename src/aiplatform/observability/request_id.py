"""Request ids: every response names the request it answers, and so does every log line.

The id is the caller's ``x-request-id`` when that is a sane token (up to 128 of
``[A-Za-z0-9._-]``), else a new random one; anything else a client sends there (a long string,
control characters, text meant to forge log lines) is replaced, never echoed. A gateway sends
the id on with every forwarded call, so the pod's log lines about that call carry the same id.

The middleware keeps a :class:`RequestRecord` in a context variable for the request's
duration: :func:`current_request_id` reads its id, and code inside the request notes what the
access log reports of it (the engine that served it) on the same record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestRecord",
    "current_request",
    "current_request_id",
    "note_engine",
    "request_id_from",
    "request_id_middleware",
]

REQUEST_ID_HEADER = "x-request-id"
_HEADER = REQUEST_ID_HEADER.encode("latin-1")
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,128}")


@dataclass(slots=True)
class RequestRecord:
    """One request in progress, as its log lines and its access log line describe it."""

    request_id: str
    #: The engine kind that served it (None: no engine did, e.g. ``/health``).
    engine: str | None = None


_current: ContextVar[RequestRecord | None] = ContextVar("aiplatform_request", default=None)


def current_request() -> RequestRecord | None:
    """The request in progress (None outside one: startup, background work)."""
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request in progress."""
    record = _current.get()
    return record.request_id if record is not None else None


def note_engine(name: str) -> None:
    """Record that engine ``name`` serves the request in progress (for its access log line)."""
    record = _current.get()
    if record is not None:
        record.engine = name


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's ``x-request-id`` when it is sane, else a new one (uuid4, hex)."""
    for key, value in headers:
        if key == _HEADER:
            return value.decode("ascii") if _SANE.fullmatch(value) else uuid.uuid4().hex
    return uuid.uuid4().hex


def request_id_middleware() -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware: each HTTP request (and WebSocket handshake) gets its id, held in the
    context for its duration and sent back as ``x-request-id``. First in the chain, so that
    refusals of the middleware after it carry the id too."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            record = RequestRecord(request_id_from(scope["headers"]))
            token = _current.set(record)
            try:
                await app(scope, receive, _naming(send, record.request_id.encode("ascii")))
            finally:
                _current.reset(token)

        return middleware

    return wrap


def _naming(send: Send, request_id: bytes) -> Send:
    """``send``, adding ``x-request-id`` to the response's head (or the WebSocket's accept)."""

    async def send_named(message: Message) -> None:
        if message["type"] == "http.response.start" or message["type"] == "websocket.accept":
            message["headers"] = [*message.get("headers", ()), (_HEADER, request_id)]
        await send(message)

    return send_named
