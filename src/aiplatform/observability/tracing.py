"""Distributed traces: OpenTelemetry spans of each request, exported over OTLP/HTTP.

Off unless ``[tracing] otlp_endpoint`` is set, and then free: the OpenTelemetry SDK is not
imported, no middleware is added, no header is read. On, the app gets:

- a server span per HTTP request (``POST /v1/chat/completions``), continuing the trace of an
  incoming W3C ``traceparent`` header (a gateway's call to its pod arrives with one);
- a span per engine call, named ``<kind>.<operation>`` (``llm.chat``, ``embeddings.embed``),
  with the attributes ``aiplatform.engine``, ``aiplatform.operation``, ``aiplatform.call``
  (``invoke`` or ``stream``), ``aiplatform.model`` (when the request names one) and
  ``aiplatform.tenant``; a streamed call's span lasts until its stream ends;
- the trace context sent on with every forwarded call (:func:`propagate`), so a pod's spans
  join the gateway's trace.

Spans are batched in memory and sent from a background thread to the collector's
``/v1/traces``; the app's shutdown sends what is left. The tracer is that of the app serving the
request (a context variable the server span sets), not a process-wide global, so two apps in one
process (a test's gateway and pod) keep their own.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, TypeVar, cast

import msgspec

from aiplatform import __version__
from aiplatform.observability.request_id import REQUEST_ID_HEADER, current_request_id, note_engine
from aiplatform.tenant import SERVICE_TOKEN_HEADER, current_tenant

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Status, Tracer

    from aiplatform.settings import Settings

__all__ = [
    "Tracing",
    "TracingSettings",
    "current_trace_ids",
    "engine_span",
    "propagate",
    "service_name",
    "start_tracing",
    "traced_stream",
    "traces_url",
]

T = TypeVar("T")

#: Where an OTLP/HTTP collector takes spans, under its base URL.
TRACES_PATH = "/v1/traces"
#: Seconds one export may take; the app's shutdown waits at most about this long for the last.
_EXPORT_TIMEOUT_S = 5.0


class TracingSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Base URL of an OTLP/HTTP collector (``http://otel-collector:4318``); spans are sent to
    #: its ``/v1/traces``. Unset: tracing is off, and costs nothing.
    otlp_endpoint: str | None = None
    #: The ``service.name`` of the spans. Unset: ``aiplatform``, or for a pod serving only
    #: some engines in-process ``aiplatform-`` and their names (``aiplatform-llm``).
    service_name: str | None = None
    #: Fraction of the traces begun here that are recorded. A request that arrives with a
    #: trace context it may bring follows its caller's decision, so a trace is whole or absent.
    sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    #: Continue the trace context (``traceparent``) of any caller. Off: only a gateway's (a
    #: caller presenting ``[auth] service_token``), so a client cannot pick trace ids or force
    #: every request of its own to be recorded; a client's request starts a trace here.
    trust_client_context: bool = False


#: The tracer of the app serving the request in progress; None: tracing is off.
_tracer: ContextVar[Tracer | None] = ContextVar("aiplatform_tracer", default=None)


class Tracing:
    """The spans of one app: its provider (OTLP/HTTP, batched) and the server-span
    middleware."""

    def __init__(self, provider: TracerProvider, *, trusted: Callable[[str], bool]) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("aiplatform", __version__)
        self._trusted = trusted

    @property
    def middleware(self) -> Callable[[ASGIApp], ASGIApp]:
        """ASGI middleware opening a server span per HTTP request."""
        return _server_span_middleware(self._tracer, self._trusted)

    async def aclose(self) -> None:
        """Send the spans not sent yet and stop the exporter (blocking I/O: on a thread)."""
        import anyio

        await anyio.to_thread.run_sync(self._provider.shutdown)


def start_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> Tracing | None:
    """The app's tracing, or None when ``[tracing] otlp_endpoint`` is unset (nothing of
    OpenTelemetry is imported then). ``exporter`` replaces the OTLP/HTTP one (tests)."""
    section = settings.tracing
    if not section.otlp_endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        from aiplatform.settings import SettingsError

        raise SettingsError(
            "[tracing] otlp_endpoint is set but the OpenTelemetry SDK is not installed: "
            "pip install 'aiplatform[otel]'"
        ) from exc

    resource = Resource.create({SERVICE_NAME: service_name(settings), SERVICE_VERSION: __version__})
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(section.sample_ratio)),
        resource=resource,
        shutdown_on_exit=False,  # the app's shutdown does it
    )
    if exporter is None:
        exporter = OTLPSpanExporter(
            endpoint=traces_url(section.otlp_endpoint), timeout=_EXPORT_TIMEOUT_S
        )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider, trusted=_trusted_callers(settings))


def _trusted_callers(settings: Settings) -> Callable[[str], bool]:
    """Whether a caller presenting this service credential ('' for none) may bring a trace
    context."""
    if settings.tracing.trust_client_context:
        return lambda _: True
    expected = (settings.auth.service_token or "").encode()
    return lambda presented: bool(expected) and hmac.compare_digest(presented.encode(), expected)


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: ``endpoint`` with ``/v1/traces`` unless it ends so."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def service_name(settings: Settings) -> str:
    """``[tracing] service_name``, else ``aiplatform`` for a server with every engine or a
    gateway (one that forwards any), and ``aiplatform-<engines>`` for a pod (some engines
    only, all in-process)."""
    if settings.tracing.service_name:
        return settings.tracing.service_name
    from aiplatform.settings import engine_names

    names = engine_names()
    enabled = [name for name in names if settings.engine(name).enabled]
    forwards = any(settings.engine(name).url for name in enabled)
    if forwards or not enabled or len(enabled) == len(names):
        return "aiplatform"
    return "aiplatform-" + "-".join(enabled)


# -- spans of requests and engine calls -------------------------------------------------------

_TRACE_HEADERS = (b"traceparent", b"tracestate", SERVICE_TOKEN_HEADER.encode("latin-1"))


def _server_span_middleware(
    tracer: Tracer, trusted: Callable[[str], bool]
) -> Callable[[ASGIApp], ASGIApp]:
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    failed = Status(StatusCode.ERROR)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if str(scope["type"]) != "http":
                await app(scope, receive, send)
                return
            http = cast("HTTPScope", scope)
            carrier = _trace_headers(http["headers"])
            presented = carrier.pop(SERVICE_TOKEN_HEADER, "")
            parent = propagator.extract(carrier) if carrier and trusted(presented) else None
            route = http.get("path_template") or http["path"]
            attributes = {
                "http.request.method": http["method"],
                "http.route": route,
                "url.path": http["path"],
                "url.scheme": http.get("scheme", "http"),
            }
            if (request_id := current_request_id()) is not None:
                attributes["aiplatform.request_id"] = request_id
            with tracer.start_as_current_span(
                f"{http['method']} {route}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
            ) as span:
                token = _tracer.set(tracer)
                try:
                    await app(scope, receive, _noting_status(send, span, failed))
                finally:
                    _tracer.reset(token)

        return middleware

    return wrap


def _trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in headers
        if key in _TRACE_HEADERS
    }


def _noting_status(send: Send, span: Span, failed: Status) -> Send:
    """``send``, noting the response's status (and the tenant it was for) on ``span``."""

    async def send_noted(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("aiplatform.tenant", current_tenant())
            if status >= 500:
                span.set_status(failed)
        await send(message)

    return send_noted


def _call_attributes(kind: str, operation: str, call: str, request: object) -> dict[str, str]:
    attributes = {
        "aiplatform.engine": kind,
        "aiplatform.operation": operation,
        "aiplatform.call": call,
        "aiplatform.tenant": current_tenant(),
    }
    model = getattr(request, "model", None)
    if isinstance(model, str):
        attributes["aiplatform.model"] = model
    return attributes


def engine_span(kind: str, operation: str, request: object) -> AbstractContextManager[object]:
    """The span of one call of engine ``kind`` (a null context with tracing off). It also
    names the engine in the request's record, for its access log line."""
    note_engine(kind)
    tracer = _tracer.get()
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(
        f"{kind}.{operation}", attributes=_call_attributes(kind, operation, "invoke", request)
    )


def traced_stream(
    kind: str, operation: str, request: object, chunks: AsyncIterator[T]
) -> AsyncIterator[T]:
    """``chunks`` inside a span lasting until the stream ends (``chunks`` itself with
    tracing off). It also names the engine in the request's record, as :func:`engine_span`."""
    note_engine(kind)
    tracer = _tracer.get()
    if tracer is None:
        return chunks
    attributes = _call_attributes(kind, operation, "stream", request)
    return _in_span(tracer, f"{kind}.{operation}", attributes, chunks)


async def _in_span(
    tracer: Tracer, name: str, attributes: dict[str, str], chunks: AsyncIterator[T]
) -> AsyncIterator[T]:
    """Each step of ``chunks`` with the span current. The span is made current for one step at
    a time, not across the ``yield``: the steps of a streamed response may run in different
    tasks, and a context attached in one cannot be detached in another."""
    from opentelemetry import context, trace
    from opentelemetry.trace import StatusCode

    span = tracer.start_span(name, attributes=attributes)
    current = trace.set_span_in_context(span)
    iterator = aiter(chunks)
    try:
        while True:
            token = context.attach(current)
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            finally:
                context.detach(token)
            yield chunk
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, str(exc))
        raise
    finally:
        span.end()
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


# -- what a forwarded call carries -------------------------------------------------------------


def propagate(headers: dict[str, str]) -> None:
    """Add the request's context to the headers of a call forwarded on its behalf: its id
    (``x-request-id``) and, with tracing on, its W3C trace context (``traceparent``)."""
    request_id = current_request_id()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    if _tracer.get() is not None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        TraceContextTextMapPropagator().inject(headers)


def current_trace_ids() -> tuple[str, str] | None:
    """The trace id and span id of the span in progress (hex), for log lines; None with
    tracing off or outside a span."""
    if _tracer.get() is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
