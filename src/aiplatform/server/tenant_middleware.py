"""ASGI middleware that runs each request as its tenant (see :mod:`aiplatform.tenant`)."""

from __future__ import annotations

import msgspec
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from aiplatform.errors import AIPlatformError
from aiplatform.server.errors import error_body
from aiplatform.tenant import DEFAULT_TENANT, TENANT_HEADER, acting_as, check_tenant

__all__ = ["tenancy_middleware"]

_HEADER = TENANT_HEADER.encode("latin-1")


def tenancy_middleware(app: ASGIApp) -> ASGIApp:
    """The request's tenant: the one its header names, else the default one. A malformed
    name is refused with 400 before the request reaches a route."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        tenant = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                tenant = value.decode("latin-1")
        if tenant is None or tenant == DEFAULT_TENANT:
            await app(scope, receive, send)  # the context's default: nothing to set or check
            return
        try:
            check_tenant(tenant)
        except AIPlatformError as exc:
            await _refuse(scope, send, exc)
            return
        with acting_as(tenant):
            await app(scope, receive, send)

    return middleware


async def _refuse(scope: Scope, send: Send, exc: AIPlatformError) -> None:
    if str(scope["type"]) == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    body = msgspec.json.encode(error_body(exc))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": exc.status_code,
        "headers": [(b"content-type", b"application/json")],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
