"""Prometheus metrics at ``GET /metrics``: requests, engines, models, jobs, the process.

Each app owns its registry (:func:`app_metrics`): its request metrics (see
:mod:`~aiplatform.observability.metrics_requests`), the instruments the engines record into
(:mod:`~aiplatform.observability.metrics_engines`), the gauges of queues, models and jobs read
at scrape time (:mod:`~aiplatform.observability.metrics_live`) and the process's own (memory,
CPU, open files, garbage collection). The server runs one process, so the engines' figures
are the process's; ``docs/operations.md`` lists every metric.

``/metrics`` is open like ``/health`` (a scraper has no API key) and names tenants in its
labels: it is meant for the scraper alone (``[metrics] tenant_label = false`` leaves tenants
out). With ``[metrics] enabled = false`` there is no route and no request middleware.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.response.base import ASGIResponse
from litestar.types import AfterExceptionHookHandler, ASGIApp
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aiplatform.engines.base import Engine
from aiplatform.errors import AuthenticationError
from aiplatform.observability.metrics_engines import ENGINE_INSTRUMENTS
from aiplatform.observability.metrics_live import LiveCollector
from aiplatform.observability.metrics_requests import RequestMetrics, TenantLabels
from aiplatform.observability.metrics_settings import MetricsSettings

__all__ = ["METRICS_PATH", "AppMetrics", "MetricsSettings", "app_metrics"]

METRICS_PATH = "/metrics"


@dataclass(frozen=True, slots=True)
class AppMetrics:
    """What ``create_app`` mounts: all empty when metrics are off."""

    #: The app's registry (None: metrics are off).
    registry: CollectorRegistry | None = None
    routes: list[HTTPRouteHandler] = field(default_factory=list)
    middleware: list[Callable[[ASGIApp], ASGIApp]] = field(default_factory=list)
    after_exception: list[AfterExceptionHookHandler[Exception]] = field(default_factory=list)


def app_metrics(
    settings: MetricsSettings, engines: Mapping[str, Engine], *, auth_enabled: bool
) -> AppMetrics:
    """The metrics of an app serving ``engines``."""
    if not settings.enabled:
        return AppMetrics()
    registry = CollectorRegistry()
    operations = [
        (engine.kind.name, op.name) for engine in engines.values() for op in engine.kind.operations
    ]
    requests = RequestMetrics(
        registry,
        operations,
        tenants=TenantLabels(settings.max_tenants)
        if _names_tenants(settings, auth_enabled)
        else None,
        auth_enabled=auth_enabled,
    )
    registry.register(_EngineInstruments())
    registry.register(LiveCollector())
    # the process's own (memory, CPU, file descriptors, Python's collector): they read the
    # process at scrape time, so every app may export them
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return AppMetrics(
        registry=registry,
        routes=[metrics_route(registry, token=settings.token)],
        middleware=[requests.middleware],
        after_exception=[requests.after_exception],
    )


def _names_tenants(settings: MetricsSettings, auth_enabled: bool) -> bool:
    """Tenant names go into labels only where not everyone may read them."""
    return settings.tenant_label and (not auth_enabled or settings.token is not None)


def metrics_route(registry: CollectorRegistry, *, token: str | None = None) -> HTTPRouteHandler:
    """``GET /metrics``: the registry in Prometheus' text format (or OpenMetrics, when the
    scraper asks for it), rendered off the event loop (reading job counts touches disk); only
    to a caller presenting ``token`` when one is set."""
    expected = f"Bearer {token}".encode() if token is not None else None

    @get(METRICS_PATH, include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> ASGIResponse:
        if expected is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), expected
        ):
            raise AuthenticationError(
                "Scraping needs the metrics token: 'Authorization: Bearer <token>'.",
                code="invalid_metrics_token",
            )
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await anyio.to_thread.run_sync(encode, registry)
        # as the encoder names it (a media_type would get a second charset)
        return ASGIResponse(body=body, headers={"content-type": content_type})

    return metrics


class _EngineInstruments(Collector):
    """The instruments the engines record into (they belong to the process)."""

    def collect(self) -> Iterator[Metric]:
        for instrument in ENGINE_INSTRUMENTS:
            yield from instrument.collect()

    def describe(self) -> Iterator[Metric]:
        for instrument in ENGINE_INSTRUMENTS:
            yield from instrument.describe()
