"""ASGI middleware that runs each request as its verified identity and that identity's tenant.

- With authentication on, every ``/v1`` route and WebSocket needs ``Authorization: Bearer
  <API key or access token>`` (a WebSocket may send it as the subprotocol ``bearer.<token>``
  instead, since browsers cannot set headers on one); ``/health``, ``/ready``, ``/docs`` and the
  login and refresh routes stay open. A missing or bad token is a 401 (a WebSocket is closed
  with 1008 before it is accepted).
- The tenant comes from the identity, never from a header a client sets: ``x-aiplatform-tenant``
  is honoured only from a caller presenting the service credential (``x-aiplatform-service-
  token``, what a gateway sends its pods), and refused (403) from anyone else. With
  authentication off and no service credential configured (a development server on loopback),
  the header is honoured as before, and every caller is the anonymous identity.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from functools import partial

import msgspec
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from aiplatform.auth.identity import ANONYMOUS, Identity, acting_identity
from aiplatform.auth.service import AuthService
from aiplatform.errors import AIPlatformError, AuthenticationError, PermissionDeniedError
from aiplatform.server.errors import error_body
from aiplatform.tenant import (
    DEFAULT_TENANT,
    SERVICE_TOKEN_HEADER,
    TENANT_HEADER,
    acting_as,
    check_tenant,
)

__all__ = ["identity_middleware", "reauthenticate"]

_TENANT = TENANT_HEADER.encode("latin-1")
_SERVICE = SERVICE_TOKEN_HEADER.encode("latin-1")
_AUTHORIZATION = b"authorization"
_PROTOCOL = b"sec-websocket-protocol"
_BEARER_PROTOCOL = "bearer."
#: Where a WebSocket's scope keeps how to check its token again (a long-lived connection
#: outlives a revoked key, a logout and an access token's expiry).
_REAUTHENTICATE = "aiplatform.reauthenticate"


def identity_middleware(
    auth: AuthService | None,
    *,
    service_token: str | None,
    open_paths: Iterable[str] = (),
) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware: authentication is on when ``auth`` is given."""
    guard = _Guard(auth, service_token, frozenset(open_paths))

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            try:
                identity = await guard.identify(scope)
            except AIPlatformError as exc:
                await _refuse(scope, send, exc)
                return
            if identity is ANONYMOUS:
                await app(scope, receive, send)
                return
            with acting_identity(identity), acting_as(identity.tenant):
                await app(scope, receive, send)

        return middleware

    return factory


class _Guard:
    def __init__(
        self, auth: AuthService | None, service_token: str | None, open_paths: frozenset[str]
    ) -> None:
        self._auth = auth
        self._service_token = service_token
        self._open_paths = open_paths

    async def identify(self, scope: Scope) -> Identity:
        headers = _headers(scope["headers"], (_TENANT, _SERVICE, _AUTHORIZATION, _PROTOCOL))
        tenant = headers.get(_TENANT)
        service = headers.get(_SERVICE)
        if service is not None:
            if self._service_token is None or not hmac.compare_digest(
                service.encode(), self._service_token.encode()
            ):
                raise AuthenticationError(
                    "The service credential is not valid.", code="invalid_service_token"
                )
            name = check_tenant(tenant) if tenant is not None else DEFAULT_TENANT
            return Identity(kind="service", subject="service", tenant=name, role="member")
        auth = self._auth
        if tenant is not None and (auth is not None or self._service_token is not None):
            raise PermissionDeniedError(
                f"{TENANT_HEADER} is accepted only with the service credential; the tenant "
                "comes from the caller's API key or login.",
                code="tenant_header_not_allowed",
            )
        path: str = scope["path"]
        if auth is None or not path.startswith("/v1/") or path in self._open_paths:
            if tenant is None or tenant == DEFAULT_TENANT:
                return ANONYMOUS
            return Identity(kind="anonymous", subject="anonymous", tenant=check_tenant(tenant),
                            role="admin")  # fmt: skip
        token = _bearer(headers)
        if token is None:
            raise AuthenticationError(
                "You did not provide an API key: send 'Authorization: Bearer <key or token>'.",
                code="missing_api_key",
            )
        identity = await auth.authenticate(token)
        if str(scope["type"]) == "websocket":
            scope.setdefault("state", {})[_REAUTHENTICATE] = partial(auth.authenticate, token)
        return identity


async def reauthenticate(scope: Scope) -> None:
    """Check a WebSocket's token again (401 when it is revoked, logged out or expired);
    nothing to check on a connection made without one."""
    check = scope.get("state", {}).get(_REAUTHENTICATE)
    if check is not None:
        await check()


def _headers(raw: Iterable[tuple[bytes, bytes]], wanted: tuple[bytes, ...]) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for key, value in raw:
        if key in wanted:
            found[key] = value.decode("latin-1")
    return found


def _bearer(headers: dict[bytes, str]) -> str | None:
    authorization = headers.get(_AUTHORIZATION)
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    for offered in (headers.get(_PROTOCOL) or "").split(","):
        protocol = offered.strip()
        if protocol.startswith(_BEARER_PROTOCOL) and len(protocol) > len(_BEARER_PROTOCOL):
            return protocol[len(_BEARER_PROTOCOL) :]
    return None


async def _refuse(scope: Scope, send: Send, exc: AIPlatformError) -> None:
    if str(scope["type"]) == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    body = msgspec.json.encode(error_body(exc))
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": exc.status_code,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
