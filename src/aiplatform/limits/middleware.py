"""ASGI middleware applying the rate limits to the ``/v1/`` HTTP routes.

It runs after authentication, so the identity is known: a request is counted against its API
key (or user) and its tenant; anonymous callers (authentication off) against their tenant only;
a gateway's own calls to its pods (the service identity) are not counted again. Token limits
need the request's body for an estimate, so on the token routes it is read here and handed on
to the route unchanged. Every answer carries OpenAI's ``x-ratelimit-*`` headers; a request
over a limit is refused with 429 before it reaches the route.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from aiplatform.auth.identity import current_identity
from aiplatform.errors import AIPlatformError
from aiplatform.limits.charges import charges_for, limit_of, owners_of, settle
from aiplatform.limits.estimate import TOKEN_PATHS, estimate_tokens
from aiplatform.limits.headers import RawHeaders, rate_headers, refusal, too_large
from aiplatform.limits.limiter import Charge, Limiter, RateLimiterUnavailableError, build_limiter
from aiplatform.limits.settings import RateLimitSettings
from aiplatform.limits.usage import UsageMeter
from aiplatform.server.errors import error_body
from aiplatform.tenant import current_tenant

__all__ = ["RateLimits", "rate_limit_middleware"]

logger = logging.getLogger(__name__)

_DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def rate_limit_middleware(
    settings: RateLimitSettings,
    *,
    max_body_bytes: int = _DEFAULT_MAX_BODY_BYTES,
    limiter: Limiter | None = None,
) -> RateLimits:
    """The middleware for ``settings``: place it after authentication. ``max_body_bytes`` (the
    server's) bounds the body read for a token estimate; ``limiter`` replaces the one the
    settings would build."""
    return RateLimits(settings, max_body_bytes=max_body_bytes, limiter=limiter)


class RateLimits:
    """Wraps an ASGI app (``RateLimits(settings)(app)``); with no limit set it wraps nothing.
    :meth:`aclose` releases the limiter's connections on shutdown."""

    def __init__(
        self, settings: RateLimitSettings, *, max_body_bytes: int, limiter: Limiter | None
    ) -> None:
        self.settings = settings
        self.max_body_bytes = max_body_bytes
        if limiter is None and settings.enabled:
            limiter = build_limiter(settings)
        self.limiter = limiter if settings.enabled else None

    def __call__(self, app: ASGIApp) -> ASGIApp:
        limiter = self.limiter
        if limiter is None:
            return app

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if str(scope["type"]) != "http" or not scope["path"].startswith("/v1/"):
                await app(scope, receive, send)
                return
            await _Exchange(self, limiter, cast("HTTPScope", scope)).run(app, receive, send)

        return middleware

    async def aclose(self) -> None:
        if self.limiter is not None:
            await self.limiter.aclose()


class _Exchange:
    """One request through the limits: charge, answer or refuse, settle."""

    def __init__(self, limits: RateLimits, limiter: Limiter, scope: HTTPScope) -> None:
        self.settings = limits.settings
        self.max_body_bytes = limits.max_body_bytes
        self.limiter = limiter
        self.scope = scope
        self.estimate = 0

    async def run(self, app: ASGIApp, receive: Receive, send: Send) -> None:
        owners = owners_of(current_identity(), current_tenant())
        counts_tokens = self._counts_tokens(owners)
        if counts_tokens:
            body, receive = await _buffered(receive, self.max_body_bytes)
            self.estimate = _estimate(body, self.scope["path"])
        charges = charges_for(owners, self.settings, self.estimate, counts_tokens)
        if not charges:
            await app(self.scope, receive, send)
            return
        headers = await self._acquire(charges, send)
        if headers is None:
            return
        tokens = [charge for charge in charges if charge.unit == "tokens"]
        meter = UsageMeter() if tokens else None
        try:
            await app(self.scope, receive, _sending(send, headers, meter))
        finally:
            if meter is not None:
                await self._settle(tokens, meter.used(self.estimate))

    async def _acquire(self, charges: Sequence[Charge], send: Send) -> RawHeaders | None:
        """The rate headers of a request let through; None when it was refused (answered)."""
        oversized = next((charge for charge in charges if charge.amount > charge.limit), None)
        if oversized is not None:
            await _refuse(send, too_large(oversized), [])
            return None
        try:
            verdict = await self.limiter.acquire(charges)
        except RateLimiterUnavailableError as exc:
            await _refuse(send, exc, [])
            return None
        headers = rate_headers(charges, verdict)
        if not verdict.allowed:
            await _refuse(send, refusal(charges, verdict), headers)
            return None
        return headers

    def _counts_tokens(self, owners: Sequence[tuple[str, str, bool]]) -> bool:
        if self.scope["method"] != "POST" or self.scope["path"] not in TOKEN_PATHS:
            return False
        return any(
            limit_of(self.settings, subject, "tokens") is not None for _, _, subject in owners
        )

    async def _settle(self, charges: Sequence[Charge], used: int) -> None:
        await settle(self.limiter, charges, used - self.estimate, what=self.scope["path"])


async def _buffered(receive: Receive, max_bytes: int) -> tuple[bytes | None, Receive]:
    """The request's body (None when it did not arrive whole or is over ``max_bytes``), and a
    ``receive`` that hands the app the same messages."""
    messages: list[ReceiveMessage] = []
    size = 0
    body: bytes | None = None
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # the client went away
        size += len(message.get("body", b""))
        if size > max_bytes:
            break  # left to the route, which refuses it (413)
        if not message.get("more_body", False):
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            break

    async def replay() -> ReceiveMessage:
        if messages:
            return messages.pop(0)
        return await receive()

    return body, replay


def _estimate(body: bytes | None, path: str) -> int:
    if body is None:
        return 0
    try:
        data: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return 0  # the route refuses it
    return estimate_tokens(data, path) if isinstance(data, dict) else 0


def _sending(send: Send, headers: RawHeaders, meter: UsageMeter | None) -> Send:
    """``send``, adding the rate headers to the response and showing it to ``meter``."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
            if meter is not None:
                meter.start(message)
        elif message["type"] == "http.response.body" and meter is not None:
            meter.feed(message)
        await send(message)

    return sending


async def _refuse(send: Send, exc: AIPlatformError, headers: RawHeaders) -> None:
    extra = [
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in exc.headers.items()
    ]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": exc.status_code,
        "headers": [(b"content-type", b"application/json"), *extra, *headers],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": msgspec.json.encode(error_body(exc)),
        "more_body": False,
    }
    await send(end)
