"""``create_app``: engines built from settings (or given), routes mounted from their operations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig

from aiplatform import __version__
from aiplatform.auth.service import AuthService
from aiplatform.coordinator.wiring import Coordination
from aiplatform.engines.base import Engine
from aiplatform.limits.middleware import rate_limit_middleware
from aiplatform.observability.logs import access_log_middleware
from aiplatform.observability.metrics import app_metrics
from aiplatform.observability.request_id import request_id_middleware
from aiplatform.observability.tracing import start_tracing
from aiplatform.server.auth_routes import OPEN_PATHS, auth_routes
from aiplatform.server.body_deadline import body_deadline_middleware
from aiplatform.server.errors import EXCEPTION_HANDLERS
from aiplatform.server.guard.hosts import is_loopback
from aiplatform.server.guard.middleware import browser_guard_middleware
from aiplatform.server.identity_middleware import identity_middleware
from aiplatform.server.live import live_routes
from aiplatform.server.routes import operation_route
from aiplatform.server.system import system_routes
from aiplatform.server.wiring import build_engines
from aiplatform.server.ws_chat import ws_chat_routes
from aiplatform.settings import Settings, load_settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    engines: Mapping[str, Engine] | None = None,
) -> Litestar:
    """The platform's ASGI app.

    ``engines`` replaces the engines the settings would build (tests, embedding the server in a
    larger program). The app enters every engine on startup and leaves it on shutdown.
    """
    settings = settings if settings is not None else load_settings()
    coordination = Coordination.of(settings)  # off unless [coordinator] sets a budget or url
    with coordination.building():
        engines = dict(engines) if engines is not None else build_engines(settings)
    auth = _auth_service(settings, engines)
    limits = rate_limit_middleware(settings.limits, max_body_bytes=settings.server.max_body_bytes)
    tracing = start_tracing(settings)  # None unless [tracing] otlp_endpoint is set
    metrics = app_metrics(settings.metrics, engines, auth_enabled=settings.auth_enabled)

    @asynccontextmanager
    async def run_engines(_: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if tracing is not None:  # closed last: sends the spans of the engines' exits too
                stack.push_async_callback(tracing.aclose)
            stack.push_async_callback(limits.aclose)
            if auth is not None:
                await auth.start()
                stack.push_async_callback(auth.stop)
            await stack.enter_async_context(coordination)  # left after the engines
            for engine in engines.values():
                await stack.enter_async_context(engine)
            yield

    app = Litestar(
        route_handlers=[
            *system_routes(engines),
            *(auth_routes(auth) if auth is not None else []),
            *_engine_routes(engines),
            *live_routes(engines),
            *ws_chat_routes(
                engines, limits=limits, max_message_bytes=settings.server.max_body_bytes
            ),
            *metrics.routes,
            *coordination.routes(),
        ],
        lifespan=[run_engines],
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=metrics.after_exception,  # counts requests that match no route
        middleware=[
            request_id_middleware(),
            *metrics.middleware,  # before the others: it sees their refusals (401, 429)
            *([tracing.middleware] if tracing is not None else []),
            *([access_log_middleware()] if settings.server.access_log else []),  # in the span
            browser_guard_middleware(settings.http, settings.server.host),
            body_deadline_middleware(settings.server.body_timeout_s),
            identity_middleware(
                auth, service_token=settings.auth.service_token, open_paths=OPEN_PATHS
            ),
            limits,
        ],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(title="aiplatform", version=__version__, path="/docs"),
        logging_config=None,
    )
    app.state.engines = engines
    app.state.settings = settings
    return app


def _auth_service(settings: Settings, engines: Mapping[str, Engine]) -> AuthService | None:
    """The identity service when authentication is on; off on a server others can reach is
    said loudly."""
    if settings.auth_enabled:
        return AuthService(
            settings.auth,
            known_engines=tuple(engines),
            storage_key=settings.storage.encryption_key,
        )
    if not is_loopback(settings.server.host):
        logger.warning(
            "AUTHENTICATION IS OFF on %s: anyone who can reach this server may use every "
            "engine and read every tenant's data ([auth] enabled = false)",
            settings.server.host,
        )
    return None


def _engine_routes(engines: Mapping[str, Engine]) -> list[HTTPRouteHandler]:
    routes: list[HTTPRouteHandler] = []
    owners: dict[tuple[str, str], str] = {}
    for name, engine in engines.items():
        for op in engine.kind.operations:
            key = (op.method, op.path)
            if key in owners:
                raise ValueError(
                    f"{op.method} {op.path} is served by both {owners[key]} and {name}"
                )
            owners[key] = name
            routes.append(operation_route(engine, op))
    return routes
