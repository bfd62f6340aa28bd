"""Request ids, the access log and JSON log lines, on apps in this process (the same through two
real processes: tests/e2e/test_traces_across_pods.py)."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from aiplatform.observability.logs import (
    ACCESS_LOGGER,
    RequestContextFilter,
    _log_access,
    json_formatter,
)
from aiplatform.observability.request_id import (
    current_request_id,
    request_id_from,
    request_id_middleware,
)
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_engines
from aiplatform.settings import load_settings
from aiplatform.testing import POD_AUTH
from tests.support import FAKE_LLM_ENV, FAKE_LLM_MODEL
from tests.unit.observability.test_tracing import (
    CHAT,
    TRACING_ON,
    export_to_memory,
    hex_id,
    one,
    split,
)

pytestmark = pytest.mark.anyio

ACCESS_ON = {"AIPLATFORM_SERVER__ACCESS_LOG": "true"}
UUID_HEX = re.compile(r"[0-9a-f]{32}")


@asynccontextmanager
async def app_client(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The app of ``env`` (LLM on its fake) over ASGI, its engines entered."""
    settings = load_settings(env={**FAKE_LLM_ENV, **env})
    engines = {"llm": build_engines(settings)["llm"]}
    app = create_app(settings, engines=engines)
    async with engines["llm"]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every record at DEBUG and above, as the JSON log format writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The access log's records, as their fields (and the text line as ``message``)."""
    return [
        {**record.__dict__, "message": record.getMessage()}
        for record in caplog.records
        if record.name == ACCESS_LOGGER
    ]


# -- request ids ---------------------------------------------------------------------------


async def test_every_response_names_its_request() -> None:
    async with app_client({}) as http:
        first = await http.get("/health")
        second = await http.post("/v1/chat/completions", json=CHAT)
        refused = await http.post("/v1/chat/completions", content=b"{", headers={})
    ids = [response.headers["x-request-id"] for response in (first, second, refused)]
    assert all(UUID_HEX.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == 3
    assert refused.status_code >= 400


async def test_refusals_of_the_middleware_carry_the_id_too() -> None:
    async with app_client({"AIPLATFORM_AUTH__SERVICE_TOKEN": "t" * 40}) as http:
        wrong_host = await http.get("/health", headers={"host": "evil.example"})
        wrong_token = await http.get(
            "/v1/models", headers={"x-aiplatform-service-token": "nope", "x-request-id": "r-1"}
        )
    assert wrong_host.status_code == 400
    assert UUID_HEX.fullmatch(wrong_host.headers["x-request-id"])
    assert wrong_token.status_code == 401
    assert wrong_token.headers["x-request-id"] == "r-1"


@pytest.mark.parametrize("sent", ["abc", "req-1.2_3", "A" * 128])
async def test_a_sane_incoming_id_is_kept(sent: str) -> None:
    async with app_client({}) as http:
        response = await http.get("/health", headers={"x-request-id": sent})
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["A" * 129, "", "has space", "semi;colon", 'quote"d', "slash/ed", "caf\u00e9", "{json}"],
)
def test_an_insane_incoming_id_is_replaced(sent: str) -> None:
    replaced = request_id_from([(b"x-request-id", sent.encode("utf-8"))])
    assert replaced != sent
    assert UUID_HEX.fullmatch(replaced)


async def test_a_websocket_handshake_names_its_request() -> None:
    sent: list[dict[str, object]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert current_request_id() == "ws-1"
        await send({"type": "websocket.accept", "subprotocol": None})

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/v1/ws/x", "headers": [(b"x-request-id", b"ws-1")]}
    await request_id_middleware()(app)(scope, None, send)
    assert sent == [
        {"type": "websocket.accept", "subprotocol": None, "headers": [(b"x-request-id", b"ws-1")]}
    ]
    assert current_request_id() is None


async def test_a_bad_id_is_replaced_on_the_wire() -> None:
    async with app_client({}) as http:
        response = await http.get("/health", headers={"x-request-id": "x" * 200})
    assert UUID_HEX.fullmatch(response.headers["x-request-id"])


async def test_the_id_reaches_the_pod_and_both_access_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        async with split(ACCESS_ON) as setup:
            response = await setup.client.post(
                "/v1/chat/completions", json=CHAT, headers={"x-request-id": "chat-42"}
            )
    assert response.headers["x-request-id"] == "chat-42"
    assert setup.to_pod.sent[-1]["x-request-id"] == "chat-42"
    lines = access_lines(caplog)
    assert [line["request_id"] for line in lines] == ["chat-42", "chat-42"]
    pod, gateway = lines  # the pod's request ends first
    for line in (pod, gateway):
        assert line["engine"] == "llm"
        assert line["status"] == 200
        assert line["path"] == "/v1/chat/completions"
        assert line["tenant"] == "default"


# -- the access log ------------------------------------------------------------------------


async def test_one_access_line_per_request_only_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        async with app_client({}) as http:
            await http.get("/health")
        assert access_lines(caplog) == []
        async with app_client(ACCESS_ON) as http:
            health = await http.get("/health")
            missing = await http.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    first, second = access_lines(caplog)
    assert str(first["message"]).startswith("GET /health 200 ")
    assert (first["request_id"], first["engine"]) == (health.headers["x-request-id"], None)
    assert (second["status"], second["engine"]) == (404, "llm")
    assert second["request_id"] == missing.headers["x-request-id"]
    assert isinstance(second["duration_ms"], float)


async def test_the_access_line_has_no_query_string(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        async with app_client(ACCESS_ON) as http:
            await http.get("/v1/models?api_key=query-secret-123&token=query-secret-456")
    (line,) = access_lines(caplog)
    assert line["path"] == "/v1/models"
    # what the server logged (the test's own HTTP client logs its URL, query and all)
    served = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert served
    assert not [message for message in served if "query-secret" in message]


def test_a_path_cannot_forge_an_access_line(caplog: pytest.LogCaptureFixture) -> None:
    """Paths arrive percent-decoded: a decoded newline is encoded again before it is logged."""
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        _log_access("GET", "/v1/x\n2026-12-02 INFO forged", 404, None, time.perf_counter())
    (line,) = access_lines(caplog)
    assert "\n" not in str(line["message"])
    assert line["path"] == "/v1/x%0A2026-12-02%20INFO%20forged"


# -- JSON lines ----------------------------------------------------------------------------


async def test_json_lines_carry_the_request_and_its_tenant(json_lines: io.StringIO) -> None:
    """A gateway's call as the pod sees it: the service credential and the tenant it acts for.
    A record logged inside the request (unknown fields, at debug) and the access line both
    name the request and the tenant; the credential appears in neither."""
    token = POD_AUTH.service_token
    env = {**ACCESS_ON, "AIPLATFORM_AUTH__SERVICE_TOKEN": token}
    async with app_client(env) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={**CHAT, "frobnicate": 1},
            headers={
                "x-aiplatform-service-token": token,
                "x-aiplatform-tenant": "acme",
                "x-request-id": "json-7",
                "authorization": "Bearer aip_0.not-a-real-key-but-secret",
            },
        )
    assert response.status_code == 200, response.text
    lines = records(json_lines)
    mine = [line for line in lines if line["request_id"] == "json-7"]
    by_logger = {line["logger"]: line for line in mine}
    unknown = by_logger["aiplatform.server.routes"]
    assert "frobnicate" in str(unknown["message"])
    assert unknown["tenant"] == "acme"
    assert unknown["level"] == "DEBUG"
    access = by_logger[ACCESS_LOGGER]
    assert access["tenant"] == "acme"
    assert access["engine"] == "llm"
    assert access["status"] == 200
    assert access["method"] == "POST"
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "request_id", "tenant"} <= set(line)
    text = json_lines.getvalue()
    assert token not in text
    assert "not-a-real-key-but-secret" not in text


async def test_json_lines_of_a_traced_request_name_its_trace(
    json_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = export_to_memory(monkeypatch)
    async with app_client({**ACCESS_ON, **TRACING_ON}) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={**CHAT, "frobnicate": 1},
            headers={"x-request-id": "traced-1"},
        )
    assert response.status_code == 200
    await exports.flush()
    server = one(exports.spans("aiplatform"), "POST /v1/chat/completions")
    server_ids = (hex_id(server.trace_id, 32), hex_id(server.span_id, 16))
    lines = {str(line["logger"]): line for line in records(json_lines)}
    # the access line, and a record the handler logs before the engine call, are the request's
    for logger in (ACCESS_LOGGER, "aiplatform.server.routes"):
        assert (lines[logger]["trace_id"], lines[logger]["span_id"]) == server_ids


def test_records_outside_a_request_have_no_request() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("aiplatform.test.outside")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("starting %s", "up", extra={"model": FAKE_LLM_MODEL})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (line,) = records(stream)
    assert line["message"] == "starting up"
    assert line["level"] == "WARNING"
    assert line["model"] == FAKE_LLM_MODEL
    assert line["request_id"] is None
    assert line["tenant"] is None
    assert str(line["timestamp"]).endswith("Z")  # UTC


CONFIGURED = """
import logging
from aiplatform.observability.logs import configure_logging
configure_logging({log_format!r}, "info")
logging.getLogger("uvicorn.error").info("Started server process")
logging.getLogger("aiplatform.x").debug("hidden")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("aiplatform.x").exception("it failed")
"""


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_configure_logging_writes_every_logger_in_the_format(log_format: str) -> None:
    code = CONFIGURED.format(log_format=log_format)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    assert "hidden" not in done.stderr
    if log_format == "text":
        assert re.fullmatch(r"\S+ \S+ INFO uvicorn\.error: Started server process", lines[0])
        assert "ZeroDivisionError" in done.stderr
        return
    first, second = (json.loads(line) for line in lines)
    assert (first["logger"], first["level"], first["message"]) == (
        "uvicorn.error",
        "INFO",
        "Started server process",
    )
    assert second["level"] == "ERROR"
    assert "ZeroDivisionError" in str(second["exc_info"])
