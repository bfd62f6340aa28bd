"""ASGI middleware that keeps web pages from using the server as they please.

First in the chain, before tenancy and authentication, for HTTP requests and WebSocket
handshakes alike (``/health`` and ``/ready`` included: probing them is how a rebinding attack
starts):

1. The ``Host`` header must be one the server answers to (:mod:`.hosts`), else 400
   ``host_not_allowed``. 400 rather than 421 Misdirected Request: HTTP/2 clients may retry a
   421 on another connection, and nothing here is a connection's fault.
2. A browser request (it has an ``Origin``) that changes state (``POST``, ``PUT``, ``PATCH``,
   ``DELETE``), a preflight, or a WebSocket handshake must come from the server's own origin
   or an allowed one (:mod:`.origins`), else 403 ``origin_not_allowed``; a refused handshake
   is closed with 1008 before it is accepted (the client sees HTTP 403). Reads from other
   origins are served without CORS headers, so their pages cannot see the answer.
3. Allowed origins get their preflight answered here and ``Access-Control-Allow-Origin`` on
   every response.

Clients that are not browsers send no ``Origin`` and only meet the Host check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from aiplatform.errors import AIPlatformError, InvalidRequestError, PermissionDeniedError
from aiplatform.server.errors import error_body
from aiplatform.server.guard.hosts import effective_allowed_hosts, host_allowed
from aiplatform.server.guard.origins import CorsPolicy, same_origin
from aiplatform.server.http_settings import HttpSettings

__all__ = ["UNSAFE_METHODS", "browser_guard_middleware"]

#: Methods a page of another origin may not use (those that change state).
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_READ = {b"host": "host", b"origin": "origin", b"access-control-request-method": "preflight"}
_READ_LISTS = {b"access-control-request-headers": "requested_headers"}


@dataclass(frozen=True, slots=True)
class _Request:
    """What the checks read: the scope's type and method, and a few headers (None: absent; a
    header sent twice reads as absent)."""

    kind: str
    method: str
    host: str | None
    origin: str | None
    preflight: str | None
    requested_headers: str | None

    @property
    def is_preflight(self) -> bool:
        return self.method == "OPTIONS" and self.origin is not None and self.preflight is not None


def browser_guard_middleware(
    settings: HttpSettings, host_bound: str
) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware for a server with ``settings`` bound to ``host_bound`` (``server.host``)."""
    hosts = effective_allowed_hosts(host_bound, settings.allowed_hosts)
    cors = settings.cors()

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            kind = str(scope["type"])
            if kind not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            request = _read(scope, kind)
            refusal = _refusal(request, hosts, cors)
            if refusal is not None:
                await _refuse(kind, send, refusal)
                return
            if request.origin is None or not cors.allows(request.origin):
                await app(scope, receive, send)
            elif request.is_preflight:
                headers = cors.preflight_headers(request.origin, request.requested_headers)
                await _answer_preflight(send, headers)
            else:
                await app(scope, receive, _adding(send, cors.response_headers(request.origin)))

        return middleware

    return wrap


def _read(scope: Scope, kind: str) -> _Request:
    values: dict[str, str | None] = {}
    for key, value in scope["headers"]:
        if (field := _READ.get(key)) is not None:
            values[field] = None if field in values else value.decode("latin-1")
        elif (field := _READ_LISTS.get(key)) is not None:
            earlier = values.get(field)
            text = value.decode("latin-1")
            values[field] = f"{earlier},{text}" if earlier else text
    return _Request(
        kind=kind,
        method=str(scope["method"]) if scope["type"] == ScopeType.HTTP else "GET",
        host=values.get("host"),
        origin=values.get("origin"),
        preflight=values.get("preflight"),
        requested_headers=values.get("requested_headers"),
    )


def _refusal(request: _Request, hosts: tuple[str, ...], cors: CorsPolicy) -> AIPlatformError | None:
    if not host_allowed(request.host, hosts):
        shown = "no Host" if request.host is None else f"the Host {request.host[:100]!r}"
        return InvalidRequestError(
            f"This server does not answer to {shown}; list the name in http.allowed_hosts to "
            "serve it.",
            code="host_not_allowed",
        )
    origin = request.origin
    if origin is None or cors.allows(origin) or same_origin(origin, request.host):
        return None
    if request.kind == "websocket" or request.method in UNSAFE_METHODS or request.is_preflight:
        return PermissionDeniedError(
            f"Pages of {origin[:100]!r} may not call this server; list the origin in "
            "http.cors_origins to let them.",
            code="origin_not_allowed",
        )
    return None


async def _refuse(kind: str, send: Send, exc: AIPlatformError) -> None:
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    body = msgspec.json.encode(error_body(exc))
    await _respond(send, exc.status_code, [(b"content-type", b"application/json")], body)


async def _answer_preflight(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    await _respond(send, 204, headers, b"")


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    if body:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


def _adding(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """``send`` with ``headers`` added to the response's start."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
        await send(message)

    return send_with_headers
