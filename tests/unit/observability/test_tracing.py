"""Traces in one process: a gateway app forwarding the LLM to a pod app over ASGI, each with its
own tracer and an in-memory export in place of OTLP/HTTP (the two real processes exporting
over OTLP/HTTP are tests/e2e/test_traces_across_pods.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from aiplatform.observability import tracing
from aiplatform.observability.spans import Span, SpanKind, StatusCode, current_span
from aiplatform.observability.tracing import Tracing, service_name, traces_url
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire
from aiplatform.server import app as app_module
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_engines
from aiplatform.settings import Settings, SettingsError, load_settings, select_engines
from tests.support import FAKE_LLM_ENV, FAKE_LLM_MODEL

pytestmark = pytest.mark.anyio

#: The credential the gateway presents to its pod: a pod continues only its gateway's traces.
SERVICE_TOKEN = {"AIPLATFORM_AUTH__SERVICE_TOKEN": "trace-service-token-" + "s" * 20}
TRACING_ON = {"AIPLATFORM_TRACING__OTLP_ENDPOINT": "http://collector.invalid:4318", **SERVICE_TOKEN}
CHAT = {"model": FAKE_LLM_MODEL, "messages": [{"role": "user", "content": "Hello"}]}
#: A W3C trace context as a caller that traces already would send it.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@dataclass
class Exports:
    """The spans each app made while the fixture is active sent, by service."""

    exporters: dict[str, list[Span]] = field(default_factory=dict)
    made: list[Tracing] = field(default_factory=list)

    def spans(self, service: str) -> list[Span]:
        return list(self.exporters[service])

    async def flush(self) -> None:
        for made in self.made:
            await made.aclose()


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> Exports:
    return export_to_memory(monkeypatch)


def export_to_memory(monkeypatch: pytest.MonkeyPatch) -> Exports:
    """create_app's tracing, exporting to a list per app."""
    found = Exports()

    def start(settings: Settings) -> Tracing | None:
        sent: list[Span] = []
        made = tracing.start_tracing(settings, export=sent.extend)
        if made is not None:
            found.exporters[service_name(settings)] = sent
            found.made.append(made)
        return made

    monkeypatch.setattr(app_module, "start_tracing", start)
    return found


class RecordingTransport(httpx.ASGITransport):
    """ASGI transport to the pod that keeps the headers of every request the gateway sent."""

    def __init__(self, app: Any) -> None:
        super().__init__(app=app)
        self.sent: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers)
        return await super().handle_async_request(request)


@dataclass
class Split:
    client: httpx.AsyncClient
    to_pod: RecordingTransport


@asynccontextmanager
async def split(env: dict[str, str]) -> AsyncIterator[Split]:
    """A gateway app whose LLM is forwarded to a pod app (``--engines llm``), both with the
    settings of ``env``, over ASGI; the engines entered as the apps' lifespans would."""
    pod_settings = select_engines(
        load_settings(env={**FAKE_LLM_ENV, **env, "AIPLATFORM_HTTP__ALLOWED_HOSTS": '["*"]'}),
        ["llm"],
    )
    local = build_engines(pod_settings)["llm"]
    pod = create_app(pod_settings, engines={"llm": local})
    transport = RecordingTransport(pod)
    gateway_env = {**env, "AIPLATFORM_ENGINES__LLM__URL": "http://llm-pod:8000"}
    gateway_settings = load_settings(env=gateway_env)
    remote = RemoteEngine(
        local.kind,
        gateway_settings.engine("llm"),
        wire=HttpxWire(transport),
        name="llm",
        service_token=gateway_settings.auth.service_token,
    )
    gateway = create_app(gateway_settings, engines={"llm": remote})
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(local)
        await stack.enter_async_context(remote)
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://localhost"
            )
        )
        yield Split(client, transport)


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def sampled(flags: str) -> bool:
    """The sampled bit of a ``traceparent``'s flags (other bits may be set: ``random``)."""
    return bool(int(flags, 16) & 1)


def parent_of(span: Span) -> int | None:
    return span.parent_id or None


def one(spans: list[Span], name: str) -> Span:
    named = [span for span in spans if span.name == name]
    assert len(named) == 1, [span.name for span in spans]
    return named[0]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
async def test_a_chat_through_gateway_and_pod_is_one_trace(exports: Exports, stream: bool) -> None:
    async with split(TRACING_ON) as setup:
        response = await setup.client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert response.status_code == 200, response.text
    await exports.flush()

    gateway, pod = exports.spans("aiplatform"), exports.spans("aiplatform-llm")
    g_server, g_call = one(gateway, "POST /v1/chat/completions"), one(gateway, "llm.chat")
    p_server, p_call = one(pod, "POST /v1/chat/completions"), one(pod, "llm.chat")
    trace_ids = {span.trace_id for span in (g_server, g_call, p_server, p_call)}
    assert len(trace_ids) == 1
    # gateway request -> its engine call -> the pod's request -> the pod's engine call
    assert g_server.parent_id == 0
    assert parent_of(g_call) == g_server.span_id
    assert parent_of(p_server) == g_call.span_id
    assert parent_of(p_call) == p_server.span_id
    assert g_server.kind == p_server.kind == SpanKind.SERVER
    # a streamed call's span lasts until the stream's end, past the pod's whole request
    assert p_server.end_ns > 0
    assert g_call.end_ns >= p_server.end_ns
    call = "stream" if stream else "invoke"
    for span in (g_call, p_call):
        assert dict(span.attributes or {}) == {
            "aiplatform.engine": "llm",
            "aiplatform.operation": "chat",
            "aiplatform.call": call,
            "aiplatform.model": FAKE_LLM_MODEL,
            "aiplatform.tenant": "default",
        }
    attributes = dict(g_server.attributes or {})
    assert attributes["http.route"] == "/v1/chat/completions"
    assert attributes["http.response.status_code"] == 200
    assert attributes["aiplatform.request_id"] == response.headers["x-request-id"]
    sent = setup.to_pod.sent[-1]
    _version, trace_id, parent_id, flags = sent["traceparent"].split("-")
    assert (trace_id, parent_id) == (
        hex_id(g_call.trace_id, 32),
        hex_id(g_call.span_id, 16),
    )
    assert sampled(flags)
    assert sent["x-request-id"] == response.headers["x-request-id"]


async def test_a_clients_trace_context_is_not_continued_by_default(exports: Exports) -> None:
    """A client cannot pick the trace id, nor force its requests to be recorded."""
    async with split({**TRACING_ON, "AIPLATFORM_TRACING__SAMPLE_RATIO": "0"}) as setup:
        response = await setup.client.post(
            "/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 200
    await exports.flush()
    assert exports.spans("aiplatform") == []  # its sampled flag did not force a recording
    assert CALLER_TRACE not in setup.to_pod.sent[-1]["traceparent"]


async def test_an_incoming_trace_context_is_continued(exports: Exports) -> None:
    trusting = {**TRACING_ON, "AIPLATFORM_TRACING__TRUST_CLIENT_CONTEXT": "true"}
    async with split(trusting) as setup:
        response = await setup.client.post(
            "/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 200
    await exports.flush()
    server = one(exports.spans("aiplatform"), "POST /v1/chat/completions")
    assert hex_id(server.trace_id, 32) == CALLER_TRACE
    assert hex_id(server.parent_id, 16) == CALLER_SPAN
    assert {span.trace_id for span in exports.spans("aiplatform-llm")} == {server.trace_id}


async def test_a_callers_tracestate_reaches_the_pod(exports: Exports) -> None:
    trusting = {**TRACING_ON, "AIPLATFORM_TRACING__TRUST_CLIENT_CONTEXT": "true"}
    async with split(trusting) as setup:
        response = await setup.client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers=[
                ("traceparent", TRACEPARENT),
                ("tracestate", "vendor=a"),
                ("tracestate", "other=b"),  # repeated headers are one list
            ],
        )
        assert response.status_code == 200
        assert current_span.get() is None  # nothing of the request stays in the caller's context
    await exports.flush()
    assert setup.to_pod.sent[-1]["tracestate"] == "vendor=a,other=b"
    (pod_server,) = [s for s in exports.spans("aiplatform-llm") if s.name.startswith("POST")]
    assert pod_server.tracestate == "vendor=a,other=b"


async def test_two_traceparent_headers_start_a_trace_here(exports: Exports) -> None:
    trusting = {**TRACING_ON, "AIPLATFORM_TRACING__TRUST_CLIENT_CONTEXT": "true"}
    other = f"00-{'1' * 32}-{CALLER_SPAN}-01"
    async with split(trusting) as setup:
        response = await setup.client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers=[("traceparent", TRACEPARENT), ("traceparent", other)],
        )
        assert response.status_code == 200
    await exports.flush()
    server = one(exports.spans("aiplatform"), "POST /v1/chat/completions")
    assert server.parent_id == 0
    assert hex_id(server.trace_id, 32) not in {CALLER_TRACE, "1" * 32}


async def test_a_trace_not_sampled_is_recorded_by_neither_process(exports: Exports) -> None:
    async with split({**TRACING_ON, "AIPLATFORM_TRACING__SAMPLE_RATIO": "0"}) as setup:
        response = await setup.client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
    await exports.flush()
    assert exports.spans("aiplatform") == []
    assert exports.spans("aiplatform-llm") == []
    # the pod was told so: the context went with the call, flagged not sampled
    assert not sampled(setup.to_pod.sent[-1]["traceparent"].split("-")[3])


async def test_a_failed_engine_call_marks_its_spans(exports: Exports) -> None:
    async with split(TRACING_ON) as setup:
        response = await setup.client.post(
            "/v1/chat/completions", json={**CHAT, "model": "no-such-model"}
        )
        assert response.status_code == 404
    await exports.flush()
    gateway = exports.spans("aiplatform")
    call = one(gateway, "llm.chat")
    assert call.status == StatusCode.ERROR
    assert [event.name for event in call.events] == ["exception"]
    server = one(gateway, "POST /v1/chat/completions")
    assert (server.attributes or {})["http.response.status_code"] == 404
    assert server.status == StatusCode.UNSET  # a 4xx is the client's, not ours


async def test_tracing_off_sends_no_trace_context(exports: Exports) -> None:
    async with split({}) as setup:
        response = await setup.client.post(
            "/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 200
    assert exports.exporters == {}
    sent = setup.to_pod.sent[-1]
    assert "traceparent" not in sent
    assert "tracestate" not in sent
    assert sent["x-request-id"] == response.headers["x-request-id"]


IMPORTS = """
import json, sys
from aiplatform.server.app import create_app
from aiplatform.settings import load_settings
app = create_app(load_settings(env={env!r}))
print(json.dumps([sorted(m for m in sys.modules if m.startswith(("opentelemetry", "aiplatform"))),
                  len(app.middleware)]))
"""


def imported_with(env: dict[str, str]) -> tuple[list[str], int]:
    code = IMPORTS.format(env={**FAKE_LLM_ENV, **env})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, middleware = json.loads(done.stdout.strip().splitlines()[-1])
    return modules, middleware


def test_tracing_off_loads_no_exporter_and_adds_no_middleware() -> None:
    off_modules, off_middleware = imported_with({})
    assert "aiplatform.observability.otlp" not in off_modules
    on_modules, on_middleware = imported_with(TRACING_ON)
    assert "aiplatform.observability.otlp" in on_modules
    assert on_middleware == off_middleware + 1
    # no OpenTelemetry SDK either way (litestar's own probe for its optional plugin imports
    # the bare namespace whenever an app is made, alike in both)
    otel = [m for m in on_modules if m.startswith("opentelemetry")]
    assert otel == [m for m in off_modules if m.startswith("opentelemetry")]
    assert not [m for m in otel if m.startswith("opentelemetry.sdk")]


def test_the_default_service_name_names_a_pods_engines() -> None:
    settings = load_settings(env={})
    assert service_name(settings) == "aiplatform"
    assert service_name(select_engines(settings, ["llm"])) == "aiplatform-llm"
    assert service_name(select_engines(settings, ["llm", "embeddings"])) == (
        "aiplatform-embeddings-llm"
    )
    gateway = load_settings(env={"AIPLATFORM_ENGINES__LLM__URL": "http://llm:8000"})
    assert service_name(select_engines(gateway, ["llm", "rag"])) == "aiplatform"
    named = load_settings(env={"AIPLATFORM_TRACING__SERVICE_NAME": "edge"})
    assert service_name(select_engines(named, ["llm"])) == "edge"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
    ],
)
def test_spans_go_to_the_collectors_traces_path(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url


def test_a_sample_ratio_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(SettingsError, match="sample_ratio"):
        load_settings(env={"AIPLATFORM_TRACING__SAMPLE_RATIO": "1.5"})
    assert msgspec.structs.asdict(load_settings(env={}).tracing) == {
        "otlp_endpoint": None,
        "service_name": None,
        "sample_ratio": 1.0,
        "trust_client_context": False,
        "headers": {},
        "compression": "none",
        "export_interval_s": 1.0,
    }
