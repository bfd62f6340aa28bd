"""The server's log: plain text lines, or one JSON object per line for a log collector.

``[server] log_format``: ``text`` (the default) writes ``time LEVEL logger: message``; ``json``
writes each record as one object with ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, ``request_id`` and ``tenant`` (null outside a request), ``trace_id`` and
``span_id`` while a traced request runs, and any ``extra`` fields the record was given.
Every logger goes through the same handler: the platform's, uvicorn's and the libraries'.

JSON comes from python-json-logger (its msgspec formatter): it is a ``logging.Formatter``, so the
standard library's records, which is what uvicorn, litestar and the engines' libraries emit,
become JSON without a second logging API beside the standard one.

``[server] access_log`` adds one line per HTTP request (:func:`access_log_middleware`): method,
path (never the query string, which may carry a token), status, duration, request id, tenant
and engine. Headers are never logged, so neither are credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import quote

from aiplatform.observability.request_id import current_request
from aiplatform.observability.tracing import current_trace_ids
from aiplatform.tenant import current_tenant

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

__all__ = [
    "ACCESS_LOGGER",
    "LogFormat",
    "RequestContextFilter",
    "access_log_middleware",
    "configure_logging",
    "json_formatter",
]

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The logger of the access log lines.
ACCESS_LOGGER = "aiplatform.access"

_access = logging.getLogger(ACCESS_LOGGER)


def configure_logging(log_format: LogFormat, level: str) -> None:
    """Send every record at ``level`` and above to stderr in ``log_format``."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(json_formatter())
        handler.addFilter(RequestContextFilter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def json_formatter() -> logging.Formatter:
    """One JSON object per record (python-json-logger, imported only for JSON logs)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.msgspec import MsgspecFormatter

    return MsgspecFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        # uvicorn gives its records a copy of the message in terminal colours; Python 3.12
        # gives every record its asyncio task's name
        reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        timestamp=True,
    )


class RequestContextFilter(logging.Filter):
    """Gives each record the request it was logged in (``request_id``, ``tenant``) and, while
    a traced request runs, its ``trace_id`` and ``span_id``. Values a record was given (the
    access log's) are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if "request_id" not in fields:
            request = current_request()
            record.request_id = request.request_id if request is not None else None
            record.tenant = current_tenant() if request is not None else None
        if "trace_id" not in fields and (ids := current_trace_ids()) is not None:
            record.trace_id, record.span_id = ids
        return True


def access_log_middleware() -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware writing one access log line per HTTP request when it ends. After the
    request-id middleware in the chain, which it reads the id and the engine from, and after
    the tracing one, so that its line names the request's trace."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if str(scope["type"]) != "http":
                await app(scope, receive, send)
                return
            http = cast("HTTPScope", scope)
            start = time.perf_counter()
            status: int = 500
            tenant: str | None = None

            async def send_watched(message: Message) -> None:
                nonlocal status, tenant
                if message["type"] == "http.response.start":
                    # in the request's own context, where the identity middleware set the tenant
                    status, tenant = message["status"], current_tenant()
                await send(message)

            try:
                await app(scope, receive, send_watched)
            finally:
                _log_access(http["method"], http["path"], status, tenant, start)

        return middleware

    return wrap


#: What a path may hold as it is (RFC 3986's path characters); anything else is %-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _log_access(method: str, path: str, status: int, tenant: str | None, start: float) -> None:
    if not _access.isEnabledFor(logging.INFO):
        return
    # the path arrives percent-decoded: encoded again, a %0A in it cannot forge a log line
    path = quote(path, safe=_PATH_SAFE)
    duration_ms = round((time.perf_counter() - start) * 1000, 2)
    request = current_request()
    request_id = request.request_id if request is not None else None
    engine = request.engine if request is not None else None
    _access.info(
        "%s %s %d %.2fms request_id=%s tenant=%s engine=%s",
        method,
        path,
        status,
        duration_ms,
        request_id,
        tenant,
        engine,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
            "tenant": tenant,
            "engine": engine,
        },
    )
