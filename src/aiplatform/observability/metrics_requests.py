"""Request metrics: every HTTP request counted by route, status and tenant, and timed.

The middleware runs before the server's others (the browser guard, authentication, the rate
limits), so it sees the status of every answer, their refusals (401, 403, 408, 429) included.
It reads the caller's identity while the inner middleware hold it: when the response starts
(or the body is read), which is inside the identity middleware's context.

Label values stay bounded: a route is named by the engine kind and the operation it serves
(from the engines' operation tables, matched to the route handler litestar picked, never from
the path); a server route (``/health``, the auth routes) by ``server`` and its handler;
requests that match no route (404, 405) by ``server`` / ``other``. Tenants beyond
``max_tenants`` are counted as ``_other``, requests with no identity (refused, or an open route
with authentication on) as ``_none``: neither can be a tenant's name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aiplatform.auth.identity import ANONYMOUS, Identity, current_identity
from aiplatform.observability.metrics_engines import LATENCY_BUCKETS
from aiplatform.tenant import DEFAULT_TENANT

__all__ = ["NO_TENANT", "OTHER_TENANT", "RequestMetrics", "RouteLabels", "TenantLabels"]

#: The tenant label of a request with no identity (tenant names start with a letter or digit).
NO_TENANT = "_none"
#: The tenant label of the tenants past ``max_tenants``.
OTHER_TENANT = "_other"
#: The engine label of routes that are the server's own, not an engine's.
SERVER = "server"
#: The operation label of requests that matched no route.
OTHER = "other"


class RouteLabels:
    """``(engine, operation)`` of the route a request was routed to."""

    def __init__(self, operations: Iterable[tuple[str, str]]) -> None:
        """``operations``: ``(engine kind, operation name)`` of every operation served."""
        self._operations = {f"{kind}.{name}": (kind, name) for kind, name in operations}

    def __call__(self, handler: BaseRouteHandler | None) -> tuple[str, str]:
        if handler is None:
            return SERVER, OTHER
        # Operation routes are named "<kind>.<operation>" (server.routes); other routes are
        # the server's, named by their handler function.
        served = self._operations.get(handler.name or "")
        if served is not None:
            return served
        return SERVER, handler.handler_name


class TenantLabels:
    """The first ``limit`` tenants seen are named; later ones are :data:`OTHER_TENANT`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._named: set[str] = set()

    def __call__(self, tenant: str) -> str:
        if tenant in self._named:
            return tenant
        if len(self._named) < self._limit:
            self._named.add(tenant)
            return tenant
        return OTHER_TENANT


class RequestMetrics:
    """The request instruments of one app, and the middleware that feeds them."""

    def __init__(
        self,
        registry: CollectorRegistry,
        operations: Iterable[tuple[str, str]],
        *,
        tenants: TenantLabels | None,
        auth_enabled: bool,
    ) -> None:
        """``tenants``: how tenants are labelled (None: no tenant label). With
        ``auth_enabled`` a request without an identity is :data:`NO_TENANT`; without it,
        every request acts for a tenant (the default one unless a gateway named another)."""
        self._routes = RouteLabels(operations)
        #: each route's labels and instruments, and each counter's, found once (litestar's
        #: route handlers live as long as the app; statuses and tenants are bounded)
        self._by_route: dict[int, _Route] = {}
        self._counters: dict[tuple[str, str, int, str | None], Counter] = {}
        self._tenants = tenants
        self._anonymous_tenant = NO_TENANT if auth_enabled else DEFAULT_TENANT
        tenant_label = ["tenant"] if tenants is not None else []
        self.requests = Counter(
            "aiplatform_requests",
            "HTTP requests answered, by the engine and operation of their route, status and "
            "tenant.",
            ["engine", "operation", "status", *tenant_label],
            registry=registry,
        )
        self.duration = Histogram(
            "aiplatform_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer (a stream's last event).",
            ["engine", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "aiplatform_requests_in_flight",
            "HTTP requests being answered now.",
            ["engine"],
            registry=registry,
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """The ASGI middleware around ``app`` (litestar's middleware list calls this)."""

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            route = self._route(scope.get("route_handler"))
            exchange = _Exchange(send, receive)
            route.in_flight.inc()
            start = time.perf_counter()
            try:
                await app(scope, exchange.receive, exchange.send)
            except BaseException as exc:
                exchange.failed(exc)
                raise
            finally:
                route.in_flight.dec()
                route.duration.observe(time.perf_counter() - start)
                self._count(route.engine, route.operation, exchange.final_status, exchange.identity)

        return middleware

    async def after_exception(self, exc: Exception, scope: Scope) -> None:
        """Count a request that matched no route (litestar's router refused it before any
        middleware ran); routed requests are the middleware's."""
        if scope["type"] == ScopeType.HTTP and scope.get("route_handler") is None:
            self._count(SERVER, OTHER, _status_of(exc), None)

    def _route(self, handler: BaseRouteHandler | None) -> _Route:
        route = self._by_route.get(id(handler))
        if route is None:
            engine, operation = self._routes(handler)
            route = self._by_route[id(handler)] = _Route(
                engine,
                operation,
                self.in_flight.labels(engine),
                self.duration.labels(engine, operation),
            )
        return route

    def _count(self, engine: str, operation: str, status: int, identity: Identity | None) -> None:
        tenant: str | None = None
        if self._tenants is not None:
            tenant = identity.tenant if identity is not None else self._anonymous_tenant
            if tenant != NO_TENANT:
                tenant = self._tenants(tenant)
        key = (engine, operation, status, tenant)
        counter = self._counters.get(key)
        if counter is None:
            values = (engine, operation, str(status), *([tenant] if tenant is not None else []))
            counter = self._counters[key] = self.requests.labels(*values)
        counter.inc()


@dataclass(frozen=True, slots=True)
class _Route:
    engine: str
    operation: str
    in_flight: Gauge
    duration: Histogram


class _Exchange:
    """One request as the middleware sees it: the status it was answered with, and the
    identity the inner middleware ran it as (None: anonymous)."""

    __slots__ = ("_receive", "_send", "identity", "status")

    def __init__(self, send: Send, receive: Receive) -> None:
        self._send = send
        self._receive = receive
        self.status: int | None = None
        self.identity: Identity | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self._note_identity()
        await self._send(message)

    async def receive(self) -> ReceiveMessage:
        self._note_identity()
        return await self._receive()

    @property
    def final_status(self) -> int:
        """The status answered; 499 (nginx's "client closed request") for a request that
        ended with no answer (cancelled: its client left, or the server is stopping)."""
        return self.status if self.status is not None else 499

    def failed(self, exc: BaseException) -> None:
        """The inner app raised: if it had not answered yet, the status an outer handler
        answers its error with (an unexpected error is a 500)."""
        if self.status is None and isinstance(exc, Exception):
            self.status = _status_of(exc)

    def _note_identity(self) -> None:
        identity = current_identity()
        if identity is not ANONYMOUS:
            self.identity = identity


def _status_of(exc: Exception) -> int:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else 500
