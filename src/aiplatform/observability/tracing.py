"""Distributed traces: a span of each request and engine call, sent to an OpenTelemetry
collector over OTLP/HTTP.

Off unless ``[tracing] otlp_endpoint`` is set, and then free: no middleware is added, no header
is read, no span made. On, the app gets:

- a server span per HTTP request (``POST /v1/chat/completions``), continuing the trace of an
  incoming W3C ``traceparent`` header when the caller may bring one (a gateway's call to its pod
  arrives with one);
- a span per engine call, named ``<kind>.<operation>`` (``llm.chat``, ``embeddings.embed``),
  with the attributes ``aiplatform.engine``, ``aiplatform.operation``, ``aiplatform.call``
  (``invoke`` or ``stream``), ``aiplatform.model`` (when the request names one) and
  ``aiplatform.tenant``; a streamed call's span lasts until its stream ends;
- the trace context sent on with every forwarded call (:func:`propagate`), so a pod's spans
  join the gateway's trace.

Spans are made by :mod:`aiplatform.observability.spans` and sent in batches from a background
thread by :mod:`aiplatform.observability.otlp` (why not the OpenTelemetry SDK: its cost per
request, measured there); the app's shutdown sends what is left.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar, cast

import msgspec

from aiplatform import __version__
from aiplatform.errors import ClientDisconnectedError
from aiplatform.observability.request_id import REQUEST_ID_HEADER, current_request_id, note_engine
from aiplatform.observability.spans import (
    AttributeValue,
    Span,
    SpanKind,
    StatusCode,
    Tracer,
    current_span,
)
from aiplatform.observability.trace_context import parse_traceparent
from aiplatform.tenant import SERVICE_TOKEN_HEADER, current_tenant

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

    from aiplatform.observability.otlp import BatchSender
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
#: The instrumentation scope of every span.
_SCOPE = ("aiplatform", __version__)


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

    #: Headers sent with every export: the credentials of a hosted collector
    #: (``{"authorization": "Bearer ..."}``).
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: ``gzip``: compress each export (for a collector across a slow or metered link; it costs
    #: CPU on the exporting thread).
    compression: Literal["none", "gzip"] = "none"
    #: Seconds between two exports while fewer spans than a batch (512) wait.
    export_interval_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 1.0


#: What sends a batch of ended spans (blocking; called on the sender's thread).
Export = Callable[[Sequence[Span]], None]


class Tracing:
    """The spans of one app: its tracer, the thread that sends its spans, and the
    server-span middleware."""

    def __init__(
        self, tracer: Tracer, sender: BatchSender, *, trusted: Callable[[str], bool]
    ) -> None:
        self.tracer = tracer
        self.sender = sender
        self._trusted = trusted

    @property
    def middleware(self) -> Callable[[ASGIApp], ASGIApp]:
        """ASGI middleware opening a server span per HTTP request."""
        return _server_span_middleware(self.tracer, self._trusted)

    async def aclose(self) -> None:
        """Send the spans not sent yet and stop (blocking I/O: on a thread)."""
        import anyio

        await anyio.to_thread.run_sync(self.sender.shutdown, _EXPORT_TIMEOUT_S + 1)


def start_tracing(settings: Settings, *, export: Export | None = None) -> Tracing | None:
    """The app's tracing, or None when ``[tracing] otlp_endpoint`` is unset. ``export``
    replaces the OTLP/HTTP one (tests)."""
    section = settings.tracing
    if not section.otlp_endpoint:
        return None
    from aiplatform.observability.otlp import BatchSender, OtlpHttpExport

    close: Callable[[], None] | None = None
    if export is None:
        resource: dict[str, AttributeValue] = {
            "service.name": service_name(settings),
            "service.version": __version__,
        }
        otlp = OtlpHttpExport(
            traces_url(section.otlp_endpoint),
            resource=resource,
            scope=_SCOPE,
            headers=section.headers,
            compress=section.compression == "gzip",
            timeout=_EXPORT_TIMEOUT_S,
        )
        export, close = otlp, otlp.close
    sender = BatchSender(export, interval_s=section.export_interval_s, close=close)
    tracer = Tracer(sample_ratio=section.sample_ratio, on_end=sender.add)
    return Tracing(tracer, sender, trusted=_trusted_callers(settings))


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

_SERVICE_TOKEN = SERVICE_TOKEN_HEADER.encode("latin-1")


def _server_span_middleware(
    tracer: Tracer, trusted: Callable[[str], bool]
) -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if str(scope["type"]) != "http":
                await app(scope, receive, send)
                return
            http = cast("HTTPScope", scope)
            traceparents: list[bytes] = []
            tracestates: list[bytes] = []
            presented = ""
            for key, value in http["headers"]:
                if key == b"traceparent":
                    traceparents.append(value)
                elif key == b"tracestate":
                    tracestates.append(value)
                elif key == _SERVICE_TOKEN:
                    presented = value.decode("latin-1")
            parent = None
            # two traceparent headers make no trace context; tracestate headers are one list
            if len(traceparents) == 1 and trusted(presented):
                tracestate = b",".join(tracestates).decode("latin-1") if tracestates else None
                parent = parse_traceparent(traceparents[0].decode("latin-1"), tracestate)
            route = http.get("path_template") or http["path"]
            attributes: dict[str, AttributeValue] = {
                "http.request.method": http["method"],
                "http.route": route,
                "url.path": http["path"],
                "url.scheme": http.get("scheme", "http"),
            }
            if (request_id := current_request_id()) is not None:
                attributes["aiplatform.request_id"] = request_id
            span = tracer.start(
                f"{http['method']} {route}",
                kind=SpanKind.SERVER,
                parent=parent,
                attributes=attributes,
            )
            token = current_span.set(span)
            try:
                await app(scope, receive, _noting_status(send, span))
            except Exception as exc:
                span.record_exception(exc)
                raise
            finally:
                current_span.reset(token)
                span.end()

        return middleware

    return wrap


def _noting_status(send: Send, span: Span) -> Send:
    """``send``, noting the response's status (and the tenant it was for) on ``span``."""

    async def send_noted(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("aiplatform.tenant", current_tenant())
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        await send(message)

    return send_noted


def _call_attributes(
    kind: str, operation: str, call: str, request: object
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "aiplatform.engine": kind,
        "aiplatform.operation": operation,
        "aiplatform.call": call,
        "aiplatform.tenant": current_tenant(),
    }
    model = getattr(request, "model", None)
    if isinstance(model, str):
        attributes["aiplatform.model"] = model
    return attributes


class _CurrentSpan:
    """``span`` as the span in progress while the ``with`` block runs, ended at its end
    (failed by an exception that escapes it)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = current_span.set(self._span)
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        current_span.reset(self._token)
        if exc is not None and _failed(exc):
            self._span.record_exception(exc)
        self._span.end()


def _failed(exc: BaseException) -> bool:
    """Whether ``exc`` ends a span as failed: an error, not the client going away (a
    cancellation, or the disconnect the server noticed)."""
    return isinstance(exc, Exception) and not isinstance(exc, ClientDisconnectedError)


def engine_span(kind: str, operation: str, request: object) -> AbstractContextManager[object]:
    """The span of one call of engine ``kind`` (a null context with tracing off). It also
    names the engine in the request's record, for its access log line."""
    note_engine(kind)
    parent = current_span.get()
    if parent is None:
        return nullcontext()
    attributes = _call_attributes(kind, operation, "invoke", request)
    return _CurrentSpan(
        parent.tracer.start(f"{kind}.{operation}", parent=parent, attributes=attributes)
    )


def traced_stream(
    kind: str, operation: str, request: object, chunks: AsyncIterator[T]
) -> AsyncIterator[T]:
    """``chunks`` inside a span lasting until the stream ends (``chunks`` itself with
    tracing off). It also names the engine in the request's record, as :func:`engine_span`."""
    note_engine(kind)
    parent = current_span.get()
    if parent is None:
        return chunks
    attributes = _call_attributes(kind, operation, "stream", request)
    span = parent.tracer.start(f"{kind}.{operation}", parent=parent, attributes=attributes)
    return _in_span(span, chunks)


async def _in_span(span: Span, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """Each step of ``chunks`` with ``span`` in progress. The span is made current for one step
    at a time, not across the ``yield``: the steps of a streamed response may run in different
    tasks, and a context variable set in one cannot be reset in another."""
    iterator = aiter(chunks)
    try:
        while True:
            token = current_span.set(span)
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            finally:
                current_span.reset(token)
            yield chunk
    except Exception as exc:
        if _failed(exc):
            span.record_exception(exc)
        raise
    finally:
        span.end()
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


# -- what a forwarded call carries -------------------------------------------------------------


def propagate(headers: dict[str, str]) -> None:
    """Add the request's context to the headers of a call forwarded on its behalf: its id
    (``x-request-id``) and, with tracing on, its W3C trace context (``traceparent``, and the
    caller's ``tracestate`` when it brought one)."""
    request_id = current_request_id()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    span = current_span.get()
    if span is not None:
        headers["traceparent"] = span.traceparent()
        if span.tracestate:
            headers["tracestate"] = span.tracestate


def current_trace_ids() -> tuple[str, str] | None:
    """The trace id and span id of the span in progress (hex), for log lines; None with
    tracing off or outside a span."""
    span = current_span.get()
    if span is None:
        return None
    return f"{span.trace_id:032x}", f"{span.span_id:016x}"
