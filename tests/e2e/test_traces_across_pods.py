"""Traces, request ids and JSON logs through two real processes.

A gateway (``aiplatform serve``, authentication on) forwards the LLM (its fake backend) to a pod
(``aiplatform serve --engines llm``) with the service credential, as in a split deployment. Both
export their spans over OTLP/HTTP to a collector the test runs (an HTTP server reading OTLP's
JSON encoding into OpenTelemetry's own ``ExportTraceServiceRequest`` message), and both write
JSON logs with the access log on. One chat through the gateway must be one trace with spans from
both processes; its request id must be in the pod's log; every log line must parse, and no
credential the test sent may appear in any log.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.otlp import export_request
from tests.support import FAKE_LLM_MODEL, ServerProcess, admin_api_key

ADMIN_PASSWORD = "traces-admin-password-" + "p" * 16
SERVICE_TOKEN = "traces-service-token-" + "s" * 24
CHAT = {"model": FAKE_LLM_MODEL, "messages": [{"role": "user", "content": "Hello"}]}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


class Collector:
    """An OTLP/HTTP trace receiver on a loopback port: it keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.content_types: set[str] = set()
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.receive(self.path, self.headers.get("content-type", ""), body)
                answer = b"{}"  # an ExportTraceServiceResponse: all accepted
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def receive(self, path: str, content_type: str, body: bytes) -> None:
        assert path == "/v1/traces", path
        request = export_request(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            service=resource["service.name"],
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.content_types.add(content_type)
            self.spans.extend(spans)

    def trace_of(self, request_id: str, *, count: int, timeout_s: float = 20) -> list[ReceivedSpan]:
        """The spans of the trace whose server spans carry ``request_id``, once ``count`` of
        them have arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                spans = list(self.spans)
            traces = {
                span.trace_id
                for span in spans
                if span.attributes.get("aiplatform.request_id") == request_id
            }
            found = [span for span in spans if span.trace_id in traces]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def observed(collector: Collector, **extra: str) -> dict[str, str]:
    return {
        "AIPLATFORM_TRACING__OTLP_ENDPOINT": collector.url,
        "AIPLATFORM_SERVER__LOG_FORMAT": "json",
        "AIPLATFORM_SERVER__ACCESS_LOG": "true",
        "AIPLATFORM_SERVER__LOG_LEVEL": "debug",  # the most a log may say
        "AIPLATFORM_AUTH__SERVICE_TOKEN": SERVICE_TOKEN,
        # the batch is sent every 200 ms rather than every second, so the test waits less
        "AIPLATFORM_TRACING__EXPORT_INTERVAL_S": "0.2",
        **extra,
    }


@dataclass
class Split:
    collector: Collector
    gateway: ServerProcess
    pod: ServerProcess
    key: str


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    folder = tmp_path_factory.mktemp("traces")
    with Collector() as collector:
        pod = ServerProcess(
            ["--engines", "llm"],
            observed(collector, AIPLATFORM_AUTH__DATA_DIR=str(folder / "pod-auth")),
        )
        gateway = ServerProcess(
            ["--engines", "llm"],  # only what the test calls: it starts faster
            observed(
                collector,
                AIPLATFORM_ENGINES__LLM__URL=pod.url,
                AIPLATFORM_AUTH__ENABLED="true",
                AIPLATFORM_AUTH__ADMIN_PASSWORD=ADMIN_PASSWORD,
                AIPLATFORM_AUTH__PASSWORD_TIME_COST="1",
                AIPLATFORM_AUTH__PASSWORD_MEMORY_KIB="8",
                AIPLATFORM_AUTH__DATA_DIR=str(folder / "gateway-auth"),
            ),
        )
        try:
            pod.start()
            gateway.start()
            yield Split(collector, gateway, pod, admin_api_key(gateway, ADMIN_PASSWORD, "traces"))
        finally:
            gateway.stop()
            pod.stop()


def chat(split: Split, request_id: str, **fields: Any) -> httpx.Response:
    response = httpx.post(
        f"{split.gateway.url}/v1/chat/completions",
        json={**CHAT, **fields},
        headers={"authorization": f"Bearer {split.key}", "x-request-id": request_id},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    return response


def one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [span for span in spans if span.service == service and span.name == name]
    assert len(found) == 1, [(span.service, span.name) for span in spans]
    return found[0]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_one_chat_is_one_trace_across_gateway_and_pod(split: Split, stream: bool) -> None:
    request_id = f"trace-{'stream' if stream else 'invoke'}"
    chat(split, request_id, stream=stream)
    spans = split.collector.trace_of(request_id, count=4)
    assert len({span.trace_id for span in spans}) == 1
    assert {span.service for span in spans} == {"aiplatform", "aiplatform-llm"}
    g_server = one(spans, "aiplatform", "POST /v1/chat/completions")
    g_call = one(spans, "aiplatform", "llm.chat")
    p_server = one(spans, "aiplatform-llm", "POST /v1/chat/completions")
    p_call = one(spans, "aiplatform-llm", "llm.chat")
    assert g_server.parent_id == ""
    assert g_call.parent_id == g_server.span_id
    assert p_server.parent_id == g_call.span_id  # the pod continued the gateway's trace
    assert p_call.parent_id == p_server.span_id
    assert p_server.attributes["aiplatform.request_id"] == request_id
    for call in (g_call, p_call):
        assert call.attributes["aiplatform.call"] == ("stream" if stream else "invoke")
        assert call.attributes["aiplatform.model"] == FAKE_LLM_MODEL
    # the gateway's tenant (its key's) is what the pod acted for
    assert g_call.attributes["aiplatform.tenant"] == p_call.attributes["aiplatform.tenant"]
    assert split.collector.content_types == {"application/json"}


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines() if line.strip()]


def access(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(server)
        if line["logger"] == "aiplatform.access" and line["request_id"] == request_id
    ]


def wait_for_access(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while not (found := access(server, request_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_the_request_id_is_in_the_pods_log(split: Split) -> None:
    chat(split, "pod-log-1")
    (gateway_line,) = wait_for_access(split.gateway, "pod-log-1")
    (pod_line,) = wait_for_access(split.pod, "pod-log-1")
    for line in (gateway_line, pod_line):
        assert line["path"] == "/v1/chat/completions"
        assert line["status"] == 200
        assert line["engine"] == "llm"
        assert isinstance(line["duration_ms"], float)
    assert pod_line["tenant"] == gateway_line["tenant"] is not None
    # the lines name the trace the request made, in both processes
    (trace_id,) = {span.trace_id for span in split.collector.trace_of("pod-log-1", count=4)}
    assert gateway_line["trace_id"] == pod_line["trace_id"] == trace_id


def test_json_logs_parse_and_hold_no_credential(split: Split) -> None:
    wrong_key = "aip_0.wrong-key-the-logs-must-not-show"
    query_token = "query-token-the-logs-must-not-show"
    chat(split, "secret-1")
    refused = httpx.post(
        f"{split.gateway.url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {wrong_key}", "x-request-id": "secret-2"},
    )
    assert refused.status_code == 401
    models = httpx.get(
        f"{split.gateway.url}/v1/models?api_key={query_token}",
        headers={"authorization": f"Bearer {split.key}", "x-request-id": "secret-3"},
    )
    assert models.status_code == 200
    pod_direct = httpx.post(
        f"{split.pod.url}/v1/chat/completions",
        json=CHAT,
        headers={
            "x-aiplatform-service-token": SERVICE_TOKEN,
            "x-aiplatform-tenant": "acme",
            "x-request-id": "secret-4",
        },
    )
    assert pod_direct.status_code == 200
    for server, request_id in [
        (split.gateway, "secret-1"),
        (split.gateway, "secret-2"),
        (split.gateway, "secret-3"),
        (split.pod, "secret-4"),
    ]:
        assert wait_for_access(server, request_id), request_id
    (line,) = access(split.pod, "secret-4")
    assert line["tenant"] == "acme"
    (line,) = access(split.gateway, "secret-3")
    assert line["path"] == "/v1/models"
    for server in (split.gateway, split.pod):
        lines = log_lines(server)  # every line is one JSON object, uvicorn's included
        assert any(line["logger"].startswith("uvicorn") for line in lines)
        for line in lines:
            assert {"timestamp", "level", "logger", "message", "request_id", "tenant"} <= set(line)
            assert "color_message" not in line  # uvicorn's copy in terminal colours
        # one access line per request: uvicorn's own access log is off
        assert not any(line["logger"] == "uvicorn.access" for line in lines)
        text = server.log()
        for secret in (split.key, wrong_key, query_token, SERVICE_TOKEN, ADMIN_PASSWORD):
            assert secret not in text


def test_spans_still_queued_are_sent_at_shutdown() -> None:
    """With a batch delay far longer than the test, the spans arrive only because stopping the
    server sends what is queued."""
    with Collector() as collector:
        env = observed(collector, AIPLATFORM_TRACING__EXPORT_INTERVAL_S="600")
        pod = ServerProcess(["--engines", "llm"], env)
        pod.start()
        try:
            response = httpx.post(
                f"{pod.url}/v1/chat/completions", json=CHAT, headers={"x-request-id": "last"}
            )
            assert response.status_code == 200
            time.sleep(0.5)
            assert collector.trace_of("last", count=2, timeout_s=0) == []
        finally:
            pod.stop()
        spans = collector.trace_of("last", count=2, timeout_s=5)
    assert {span.name for span in spans} == {"POST /v1/chat/completions", "llm.chat"}
