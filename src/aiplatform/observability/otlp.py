"""Sending spans to an OpenTelemetry collector: OTLP/HTTP with the JSON encoding, in batches,
from a background thread.

Why not the OpenTelemetry SDK's exporter: measured on the embeddings server, the SDK's spans and
its protobuf exporter cost about 500 µs of CPU per traced request, on the thread and the GIL
that serve requests; the spans of :mod:`aiplatform.observability.spans` and this encoder (one
``msgspec`` encode of a whole batch) cost a small fraction of it (``bench/observability.py``).
Every OTLP/HTTP receiver takes the JSON encoding on ``/v1/traces`` (``application/json``; ids as
hex, 64-bit integers as strings).

The queue of ended spans is bounded (:data:`MAX_QUEUED`): when the collector is slower than the
spans come, or down, spans are dropped and counted, never held without bound; one export waits
at most its ``timeout``.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from aiplatform.observability.spans import AttributeValue, Span

__all__ = ["MAX_BATCH", "MAX_QUEUED", "BatchSender", "OtlpHttpExport", "encode_spans"]

#: Spans sent in one export, at most.
MAX_BATCH = 512
#: Spans waiting to be sent, at most; more are dropped.
MAX_QUEUED = 4096
#: Seconds between exports while fewer than a batch wait.
EXPORT_INTERVAL_S = 1.0

_log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()


def _value(value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, bool):  # before int: a bool is an int
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


#: Longest text an attribute is sent with; longer text is cut (an exception's message, a path).
MAX_ATTRIBUTE_CHARS = 4096
#: Attributes whose values come from a small set (the route, the engine, the tenant ...): their
#: encoding is kept and reused, which costs less than building it again for every span. Others
#: (request ids, paths, messages) are encoded each time and never kept.
_REPEATING = frozenset(
    {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "url.scheme",
        "aiplatform.engine",
        "aiplatform.operation",
        "aiplatform.call",
        "aiplatform.model",
        "aiplatform.tenant",
    }
)
_encoded: dict[tuple[str, type, AttributeValue], dict[str, Any]] = {}
#: Encodings kept, at most (tenants and models are bounded by the deployment, not by clients,
#: but a bound is a bound): past it the cache starts again.
_MAX_ENCODED = 4096


def _attribute(key: str, value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
        value = value[:MAX_ATTRIBUTE_CHARS]
    if key not in _REPEATING:
        return {"key": key, "value": _value(value)}
    cache_key = (key, type(value), value)  # the type: True == 1, and they encode apart
    encoded = _encoded.get(cache_key)
    if encoded is None:
        if len(_encoded) >= _MAX_ENCODED:
            _encoded.clear()
        encoded = _encoded[cache_key] = {"key": key, "value": _value(value)}
    return encoded


def _attributes(attributes: Mapping[str, AttributeValue]) -> list[dict[str, Any]]:
    return [_attribute(key, value) for key, value in attributes.items()]


def _span(span: Span) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "traceId": f"{span.trace_id:032x}",
        "spanId": f"{span.span_id:016x}",
        "name": span.name,
        "kind": int(span.kind),
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": _attributes(span.attributes),
        "status": {"code": int(span.status), "message": span.status_message},
    }
    if span.parent_id:
        encoded["parentSpanId"] = f"{span.parent_id:016x}"
    if span.tracestate:
        encoded["traceState"] = span.tracestate
    if span.events:
        encoded["events"] = [
            {
                "name": event.name,
                "timeUnixNano": str(event.time_ns),
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ]
    return encoded


def encode_spans(
    spans: Iterable[Span], *, resource: Mapping[str, AttributeValue], scope: tuple[str, str]
) -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` in its JSON encoding: ``spans`` of one resource
    (the service) and one instrumentation scope (name, version)."""
    name, version = scope
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource)},
                "scopeSpans": [
                    {
                        "scope": {"name": name, "version": version},
                        "spans": [_span(span) for span in spans],
                    }
                ],
            }
        ]
    }
    return _encoder.encode(request)


class OtlpHttpExport:
    """Sends batches of spans to a collector's ``/v1/traces`` (blocking; on the sender's
    thread)."""

    def __init__(
        self,
        url: str,
        *,
        resource: Mapping[str, AttributeValue],
        scope: tuple[str, str],
        headers: Mapping[str, str],
        compress: bool = False,
        timeout: float,
    ) -> None:
        import httpx

        self._gzip = compress
        if compress:
            headers = {**headers, "content-encoding": "gzip"}
        self._url = url
        self._resource = dict(resource)
        self._scope = scope
        self._client = httpx.Client(
            headers={**headers, "content-type": "application/json"}, timeout=timeout
        )

    def __call__(self, spans: Sequence[Span]) -> None:
        body = encode_spans(spans, resource=self._resource, scope=self._scope)
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
        response = self._client.post(self._url, content=body)
        if response.status_code >= 300:
            raise RuntimeError(
                f"the collector refused {len(spans)} spans: {response.status_code} "
                f"{response.text[:200]}"
            )

    def close(self) -> None:
        self._client.close()


class BatchSender:
    """Ended spans, queued (:meth:`add`, from any thread) and handed to ``export`` in batches
    from a thread of its own: when :data:`MAX_BATCH` wait, or every
    :data:`EXPORT_INTERVAL_S`. Spans dropped for want of room, and exports that fail, are
    logged once per episode and counted. ``close`` runs on that thread when it stops."""

    def __init__(
        self,
        export: Callable[[Sequence[Span]], None],
        *,
        max_queued: int = MAX_QUEUED,
        max_batch: int = MAX_BATCH,
        interval_s: float = EXPORT_INTERVAL_S,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._export = export
        self._close = close
        self._queue: deque[Span] = deque()
        self._max_queued = max_queued
        self._max_batch = max_batch
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._deadline = math.inf
        #: Spans dropped because the queue was full (or the sender stopping), and spans whose
        #: export failed, since the start.
        self.dropped = 0
        self.failed = 0
        self._dropped_seen = 0
        self._drops_from: int | None = None
        self._failed_before_outage: int | None = None
        self._thread = threading.Thread(target=self._run, name="aiplatform-spans", daemon=True)
        self._thread.start()

    def add(self, span: Span) -> None:
        if len(self._queue) >= self._max_queued or self._stopping:
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._interval_s)
                self._wake.clear()
                stopping = self._stopping
                self._note_drops()
                while self._queue and time.monotonic() < self._deadline:
                    self._send(self._take())
                    if not stopping and len(self._queue) < self._max_batch:
                        break
                if stopping:
                    return
        finally:
            if self._close is not None:
                self._close()

    def _note_drops(self) -> None:
        """Log when spans start being dropped, and how many when it stops (not once a
        wake)."""
        dropped = self.dropped
        if dropped > self._dropped_seen and self._drops_from is None:
            self._drops_from = self._dropped_seen
            _log.warning(
                "spans are being dropped: more end than the collector takes (queue of %d full)",
                self._max_queued,
            )
        elif dropped == self._dropped_seen and self._drops_from is not None:
            _log.warning("%d spans were dropped", dropped - self._drops_from)
            self._drops_from = None
        self._dropped_seen = dropped

    def _take(self) -> list[Span]:
        batch: list[Span] = []
        while self._queue and len(batch) < self._max_batch:
            batch.append(self._queue.popleft())
        return batch

    def _send(self, batch: list[Span]) -> None:
        try:
            self._export(batch)
        except Exception as exc:
            if self._failed_before_outage is None:  # once per outage, not once a batch
                self._failed_before_outage = self.failed
                _log.warning("could not send %d spans to the collector: %s", len(batch), exc)
            self.failed += len(batch)
            return
        if self._failed_before_outage is not None:
            lost = self.failed - self._failed_before_outage
            _log.warning("spans reach the collector again (%d lost meanwhile)", lost)
            self._failed_before_outage = None

    def shutdown(self, timeout: float) -> None:
        """Send what is queued, for at most ``timeout`` seconds, and stop: past it, what is
        left is not sent (the thread stops after the export in progress)."""
        self._deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout + 0.5)
