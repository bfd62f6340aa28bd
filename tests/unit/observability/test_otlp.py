"""Spans sent to a collector: the OTLP JSON encoding checked against OpenTelemetry's own
protobuf schema, and the sender's bounded queue and failures."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from aiplatform.observability.otlp import (
    MAX_ATTRIBUTE_CHARS,
    BatchSender,
    OtlpHttpExport,
    encode_spans,
)
from aiplatform.observability.spans import Span, SpanKind, StatusCode, Tracer
from aiplatform.observability.trace_context import RemoteParent
from tests.otlp import export_request

PARENT = RemoteParent(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, "vendor=x")


def traced_pair() -> list[Span]:
    ended: list[Span] = []
    tracer = Tracer(sample_ratio=1.0, on_end=ended.append)
    server = tracer.start(
        "POST /v1/embeddings",
        kind=SpanKind.SERVER,
        parent=PARENT,
        attributes={"http.route": "/v1/embeddings", "http.response.status_code": 200},
    )
    call = tracer.start("embeddings.embed", parent=server, attributes={"ratio": 0.5, "ok": True})
    call.record_exception(ValueError("bad input"))
    call.end()
    server.end()
    return ended


def test_the_encoding_is_otlps_export_request() -> None:
    call, server = traced_pair()
    body = encode_spans(
        [call, server],
        resource={"service.name": "aiplatform-embeddings", "service.version": "1.0"},
        scope=("aiplatform", "1.0"),
    )
    raw = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    # OTLP's JSON rules (protobuf's own parser would take names or numbers alike)
    assert set(raw[1]) == {
        "traceId",
        "spanId",
        "parentSpanId",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "status",
        "traceState",
    }
    assert raw[1]["traceId"] == f"{PARENT.trace_id:032x}"
    assert raw[1]["parentSpanId"] == f"{PARENT.span_id:016x}"
    assert raw[1]["kind"] == 2
    assert raw[0]["status"] == {"code": 2, "message": "bad input"}
    assert raw[1]["startTimeUnixNano"] == str(server.start_ns)
    assert {"key": "http.response.status_code", "value": {"intValue": "200"}} in raw[1][
        "attributes"
    ]
    assert {"key": "ok", "value": {"boolValue": True}} in raw[0]["attributes"]
    message = export_request(body)
    (resource_spans,) = message.resource_spans
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource == {"service.name": "aiplatform-embeddings", "service.version": "1.0"}
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("aiplatform", "1.0")
    sent_call, sent_server = scope_spans.spans
    assert sent_server.trace_id == PARENT.trace_id.to_bytes(16, "big")
    assert sent_server.parent_span_id == PARENT.span_id.to_bytes(8, "big")
    assert sent_server.span_id == server.span_id.to_bytes(8, "big")
    assert sent_call.parent_span_id == sent_server.span_id
    assert sent_server.kind == SpanMessage.SPAN_KIND_SERVER
    assert sent_call.kind == SpanMessage.SPAN_KIND_INTERNAL
    assert sent_server.trace_state == "vendor=x"
    assert (sent_server.start_time_unix_nano, sent_server.end_time_unix_nano) == (
        server.start_ns,
        server.end_ns,
    )
    attributes = {kv.key: kv.value for kv in sent_server.attributes}
    assert attributes["http.route"].string_value == "/v1/embeddings"
    assert attributes["http.response.status_code"].int_value == 200
    call_attributes = {kv.key: kv.value for kv in sent_call.attributes}
    assert call_attributes["ratio"].double_value == 0.5
    assert call_attributes["ok"].bool_value is True
    assert sent_call.status.code == Status.STATUS_CODE_ERROR
    assert sent_call.status.message == "bad input"
    (event,) = sent_call.events
    assert event.name == "exception"
    assert {kv.key: kv.value.string_value for kv in event.attributes} == {
        "exception.type": "ValueError",
        "exception.message": "bad input",
    }
    assert sent_server.status.code == Status.STATUS_CODE_UNSET


def test_a_long_text_attribute_is_cut() -> None:
    tracer = Tracer(sample_ratio=1.0, on_end=lambda span: None)
    span = tracer.start("work", attributes={"exception.message": "x" * 100_000})
    span.end()
    body = encode_spans([span], resource={}, scope=("aiplatform", "1.0"))
    (sent,) = export_request(body).resource_spans[0].scope_spans[0].spans
    assert sent.attributes[0].value.string_value == "x" * MAX_ATTRIBUTE_CHARS


def test_a_root_span_has_no_parent() -> None:
    root = Tracer(sample_ratio=1.0, on_end=lambda span: None).start("root")
    root.end()
    body = encode_spans([root], resource={}, scope=("aiplatform", "1.0"))
    assert "parentSpanId" not in body.decode()
    span = export_request(body).resource_spans[0].scope_spans[0].spans[0]
    assert span.parent_span_id == b""
    assert root.status == StatusCode.UNSET


class Gate:
    """An export that blocks until opened, keeping what it was given."""

    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[Span] = []
        self.opened = threading.Event()
        self.fail = fail

    def __call__(self, spans: Sequence[Span]) -> None:
        self.opened.wait(10)
        if self.fail:
            raise ConnectionError("collector down")
        self.sent.extend(spans)


def ended(count: int) -> list[Span]:
    done: list[Span] = []
    tracer = Tracer(sample_ratio=1.0, on_end=done.append)
    for _ in range(count):
        tracer.start("work").end()
    return done


def test_a_full_queue_drops_spans_and_counts_them() -> None:
    gate = Gate()
    # a long interval: only a full batch wakes the sender, so the first batch is exactly 4
    sender = BatchSender(gate, max_queued=10, max_batch=4, interval_s=60)
    spans = ended(40)
    for span in spans[:4]:
        sender.add(span)
    deadline = time.monotonic() + 5
    while sender._queue and time.monotonic() < deadline:  # the first batch is being sent
        time.sleep(0.01)
    for span in spans[4:]:
        sender.add(span)
    assert sender.dropped == 26  # 36 more, room for 10 while the export hangs
    gate.opened.set()
    sender.shutdown(5)
    assert gate.sent == spans[:14]


def test_dropping_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    sender = BatchSender(gate, max_queued=2, max_batch=1, interval_s=0.05)
    spans = ended(30)
    sender.add(spans[0])  # taken at once; its export hangs
    deadline = time.monotonic() + 5
    while sender._queue and time.monotonic() < deadline:
        time.sleep(0.01)
    for span in spans[1:]:
        sender.add(span)  # room for 2
    time.sleep(0.3)  # several wakes while dropping
    gate.opened.set()
    time.sleep(0.3)  # and several after
    sender.shutdown(5)
    messages = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert messages == [
        "spans are being dropped: more end than the collector takes (queue of 2 full)",
        "27 spans were dropped",
    ]


def test_shutdown_stops_at_its_deadline_and_closes_on_the_senders_thread() -> None:
    gate = Gate()  # never opened: the collector hangs
    closed: list[str] = []
    sender = BatchSender(
        gate,
        max_batch=1,
        interval_s=60,
        close=lambda: closed.append(threading.current_thread().name),
    )
    for span in ended(5):
        sender.add(span)
    start = time.monotonic()
    sender.shutdown(0.2)
    assert time.monotonic() - start < 2
    gate.opened.set()  # the export in progress ends; nothing more is sent
    sender._thread.join(5)
    assert len(gate.sent) == 1
    assert closed == ["aiplatform-spans"]


def test_a_failing_export_loses_its_batch_and_the_sender_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate(fail=True)
    gate.opened.set()
    sender = BatchSender(gate, max_batch=5, interval_s=0.01)
    for span in ended(12):
        sender.add(span)
    sender.shutdown(5)
    assert sender.failed == 12
    warnings = [r.getMessage() for r in caplog.records if "collector" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per outage


def test_shutdown_sends_what_is_queued() -> None:
    gate = Gate()
    gate.opened.set()
    sender = BatchSender(gate, max_batch=512, interval_s=60)
    spans = ended(7)
    for span in spans:
        sender.add(span)
    sender.shutdown(5)
    assert gate.sent == spans
    sender.add(ended(1)[0])
    assert sender.dropped == 1  # nothing is queued after shutdown


class Receiver:
    """A collector on a loopback port answering ``status``; keeps each request."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_an_export_posts_the_batch_with_the_configured_headers(compress: bool) -> None:
    receiver = Receiver()
    export = OtlpHttpExport(
        receiver.url,
        resource={"service.name": "aiplatform"},
        scope=("aiplatform", "1.0"),
        headers={"authorization": "Bearer collector-key"},
        compress=compress,
        timeout=5,
    )
    try:
        spans = ended(3)
        export(spans)
    finally:
        export.close()
        receiver.close()
    ((path, headers, body),) = receiver.requests
    assert path == "/v1/traces"
    lowered = {key.lower(): value for key, value in headers.items()}
    assert lowered["authorization"] == "Bearer collector-key"
    assert lowered["content-type"] == "application/json"
    if compress:
        assert lowered["content-encoding"] == "gzip"
        body = gzip.decompress(body)
    sent = export_request(body).resource_spans[0].scope_spans[0].spans
    assert [span.span_id for span in sent] == [s.span_id.to_bytes(8, "big") for s in spans]


def test_a_refused_export_raises_for_the_sender_to_count() -> None:
    receiver = Receiver(status=400)
    export = OtlpHttpExport(
        receiver.url, resource={}, scope=("aiplatform", "1.0"), headers={}, timeout=5
    )
    try:
        with pytest.raises(RuntimeError, match="refused 2 spans: 400"):
            export(ended(2))
    finally:
        export.close()
        receiver.close()
