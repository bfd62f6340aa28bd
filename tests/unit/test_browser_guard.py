"""What web pages cannot do to the server: send JSON as a simple request (415 before the body is
read), reach it under a rebinding name (400 ``host_not_allowed``), write to it from another
site or open its WebSockets from one (403 ``origin_not_allowed``), or read its answers across
sites unless the settings allow their origin (CORS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import msgspec
import openai
import pytest
from litestar import Litestar, Request, WebSocket, get, post, route, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import JSONBody
from litestar.testing import TestClient

from aiplatform.engines.base import Engine, Operation
from aiplatform.errors import InvalidRequestError
from aiplatform.server.app import create_app
from aiplatform.server.errors import EXCEPTION_HANDLERS
from aiplatform.server.guard.hosts import effective_allowed_hosts, host_allowed, host_pattern
from aiplatform.server.guard.json_body import is_json_media_type, require_json_body
from aiplatform.server.guard.middleware import browser_guard_middleware
from aiplatform.server.guard.origins import origin_entry, same_origin
from aiplatform.server.http_settings import HttpSettings
from aiplatform.server.wiring import build_engines
from aiplatform.settings import load_settings, select_engines
from tests.support import FAKE_AUDIO_ENV, FAKE_EMBEDDINGS_ENV

pytestmark = pytest.mark.anyio

EVIL = "http://evil.example"
APP = "https://app.example.com"
EMBED = b'{"input": "hello"}'
JSON = {"content-type": "application/json"}

# -- JSON bodies ---------------------------------------------------------------------------------


class CountingEngine:
    """An engine that counts the calls that reach it."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def kind(self) -> Any:
        return self.inner.kind

    @property
    def mode(self) -> Any:
        return self.inner.mode

    async def __aenter__(self) -> CountingEngine:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)

    async def status(self) -> Any:
        return await self.inner.status()

    async def list_models(self) -> Any:
        return await self.inner.list_models()

    async def invoke(self, op: Operation[Any, Any, Any], request: Any) -> Any:
        self.calls += 1
        return await self.inner.invoke(op, request)

    def stream(self, op: Operation[Any, Any, Any], request: Any) -> Any:
        self.calls += 1
        return self.inner.stream(op, request)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Any, dict[str, CountingEngine]]]:
    """The app on the fake embeddings, emotion and ASR engines, each counting its calls."""
    settings = load_settings(env={**FAKE_EMBEDDINGS_ENV, **FAKE_AUDIO_ENV})
    settings = select_engines(settings, ["embeddings", "emotion", "asr"])
    engines = {name: CountingEngine(engine) for name, engine in build_engines(settings).items()}
    app = create_app(settings, engines=engines)
    async with AsyncExitStack() as stack:
        for engine in engines.values():
            await stack.enter_async_context(engine)
        yield app, engines


@asynccontextmanager
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


async def raw_post(app: Any, path: str, headers: dict[str, str], body: bytes) -> tuple[int, int]:
    """POST ``body`` straight to the ASGI app: the status, and how often the app read the
    request's body."""
    reads = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads > 1:  # the body is read; the client stays until its answer
            await anyio.sleep_forever()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-length", str(len(body)).encode()),
            *((key.encode(), value.encode()) for key, value in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    return status, reads


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None],
)
async def test_json_that_does_not_say_so_is_refused_before_it_is_read(
    served: tuple[Any, dict[str, CountingEngine]], content_type: str | None
) -> None:
    app, engines = served
    headers = {"content-type": content_type} if content_type else {}
    status, reads = await raw_post(app, "/v1/embeddings", headers, EMBED)
    assert (status, reads) == (415, 0)
    async with client(app) as http:
        response = await http.post("/v1/embeddings", content=EMBED, headers=headers)
    assert response.status_code == 415
    assert response.json() == {
        "error": {
            "message": response.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": "unsupported_media_type",
        }
    }
    assert "application/json" in response.json()["error"]["message"]
    assert engines["embeddings"].calls == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; Charset=UTF-8",
        "application/merge-patch+json",
    ],
)
async def test_json_bodies_that_say_so_are_served(
    served: tuple[Any, dict[str, CountingEngine]], content_type: str
) -> None:
    app, engines = served
    status, reads = await raw_post(app, "/v1/embeddings", {"content-type": content_type}, EMBED)
    assert status == 200
    assert reads >= 1
    assert engines["embeddings"].calls == 1


async def test_json_in_another_charset_is_refused(
    served: tuple[Any, dict[str, CountingEngine]],
) -> None:
    app, _ = served
    async with client(app) as http:
        response = await http.post(
            "/v1/embeddings",
            content=EMBED,
            headers={"content-type": "application/json; charset=iso-8859-1"},
        )
    assert response.status_code == 415
    assert "UTF-8" in response.json()["error"]["message"]


async def test_a_bare_post_still_reads_as_an_empty_object_where_that_is_a_request(
    served: tuple[Any, dict[str, CountingEngine]],
) -> None:
    """``POST /v1/emotion`` with neither body nor content type reaches the engine as ``{}``
    (its own 400 names what is missing); a content type that is not JSON is still a 415."""
    app, engines = served
    async with client(app) as http:
        typed_empty = await http.post("/v1/emotion", headers={"content-type": "text/plain"})
        body_without_type = await http.post("/v1/emotion", content=b'{"input": ["hi"]}')
        assert engines["emotion"].calls == 0
        bare = await http.post("/v1/emotion")
    assert bare.status_code == 400, bare.text
    assert bare.json()["error"]["param"] == "input"
    assert typed_empty.status_code == 415
    assert body_without_type.status_code == 415


async def test_multipart_routes_keep_their_own_check(
    served: tuple[Any, dict[str, CountingEngine]],
) -> None:
    app, engines = served
    async with client(app) as http:
        response = await http.post("/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]
    assert engines["asr"].calls == 0


async def test_the_openai_sdk_and_httpx_json_send_json(
    served: tuple[Any, dict[str, CountingEngine]],
) -> None:
    app, engines = served
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as http,
        openai.AsyncOpenAI(
            base_url="http://localhost/v1",
            api_key="x",
            http_client=http,  # type: ignore[arg-type]  # the SDK also takes httpx clients
            max_retries=0,
        ) as sdk,
    ):
        result = await sdk.embeddings.create(input="hello", model="all-MiniLM-L6-v2")
        direct = await http.post("/v1/embeddings", json={"input": "hello"})
    assert len(result.data) == 1
    assert direct.status_code == 200
    assert engines["embeddings"].calls == 2


async def test_openapi_declares_the_415_on_json_routes_only(
    served: tuple[Any, dict[str, CountingEngine]],
) -> None:
    app, _ = served
    async with client(app) as http:
        paths = (await http.get("/docs/openapi.json")).json()["paths"]
    assert "415" in paths["/v1/embeddings"]["post"]["responses"]
    assert "415" not in paths["/v1/audio/transcriptions"]["post"]["responses"]


async def test_hand_written_json_routes_take_the_same_check() -> None:
    app = guarded()
    body = b'{"user": "ada"}'
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        plain = await http.post("/v1/login", content=body, headers={"content-type": "text/plain"})
        typed = await http.post("/v1/login", content=body, headers=JSON)
    assert_error(plain, 415, "unsupported_media_type")
    assert "POST /v1/login" in plain.json()["error"]["message"]
    assert typed.status_code == 201


@pytest.mark.parametrize(
    ("media_type", "options", "expected"),
    [
        ("application/json", {}, True),
        ("application/json", {"charset": "UTF8"}, True),
        ("application/problem+json", {}, True),
        ("application/json", {"charset": "utf-16"}, False),
        ("text/json", {}, False),
        ("application/jsonp", {}, False),
        ("application/+json", {}, False),
        ("", {}, False),
    ],
)
def test_json_media_types(media_type: str, options: dict[str, str], expected: bool) -> None:
    assert is_json_media_type(media_type, options) is expected


# -- the guard on a small app -------------------------------------------------------------------

calls: list[str] = []


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@route(
    "/v1/things",
    http_method=["POST", "PUT", "PATCH", "DELETE"],
    status_code=200,
    sync_to_thread=False,
)
def change_thing(request: Request[Any, Any, Any]) -> dict[str, str]:
    calls.append(request.method)
    return {"changed": "yes"}


@post("/v1/login", before_request=require_json_body, sync_to_thread=False)
def login(data: JSONBody[dict[str, str]]) -> dict[str, str]:
    return data


@get("/v1/broken", sync_to_thread=False)
def broken() -> None:
    raise InvalidRequestError("Always refused.")


@websocket("/v1/ws")
async def socket_route(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_text("hello")
    await socket.close()


def guarded(host_bound: str = "127.0.0.1", **settings: Any) -> Litestar:
    """A small app behind the guard (the server's app wires it the same way)."""
    return Litestar(
        route_handlers=[health, change_thing, login, broken, socket_route],
        middleware=[browser_guard_middleware(HttpSettings(**settings), host_bound)],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    calls.clear()


async def request(
    app: Litestar,
    method: str,
    path: str,
    *,
    host: str = "localhost:8000",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as http:
        return await http.request(method, path, headers={"host": host, **(headers or {})})


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, None)
    assert error["type"] == ("permission_error" if status == 403 else "invalid_request_error")
    assert not any(name.startswith("access-control-") for name in response.headers)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example"])
async def test_a_rebinding_host_is_refused_even_on_health(host: str) -> None:
    app = guarded()
    assert_error(await request(app, "GET", "/health", host=host), 400, "host_not_allowed")
    assert_error(await request(app, "POST", "/v1/things", host=host), 400, "host_not_allowed")
    assert calls == []


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000", "[::1]", "LOCALHOST."]
)
async def test_loopback_hosts_are_served_by_a_loopback_server(host: str) -> None:
    response = await request(guarded(), "GET", "/health", host=host)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["", "localhost:abc", "[::1", "[::1]x", "evil.example@localhost", "a:1:2"]
)
async def test_malformed_hosts_are_refused(host: str) -> None:
    assert_error(await request(guarded(), "GET", "/health", host=host), 400, "host_not_allowed")


async def test_a_host_sent_twice_is_refused() -> None:
    transport = httpx.ASGITransport(app=guarded())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        response = await http.get("/health", headers=[("host", "localhost"), ("host", "evil")])
    assert_error(response, 400, "host_not_allowed")


async def test_star_allows_any_host() -> None:
    response = await request(guarded(allowed_hosts=["*"]), "GET", "/health", host="evil.example")
    assert response.status_code == 200


async def test_a_server_bound_beyond_loopback_answers_any_host_unless_configured() -> None:
    """A pod is probed and called by its IP and its service name (authentication guards it)."""
    pod = guarded("0.0.0.0")
    assert (await request(pod, "GET", "/health", host="10.1.2.3:8000")).status_code == 200
    assert (await request(pod, "GET", "/health", host="embeddings:8000")).status_code == 200
    named = guarded("0.0.0.0", allowed_hosts=["api.example.com"])
    assert (await request(named, "GET", "/health", host="api.example.com")).status_code == 200
    assert_error(await request(named, "GET", "/health", host="10.1.2.3"), 400, "host_not_allowed")


async def test_wildcard_hosts_match_names_below_only() -> None:
    app = guarded(allowed_hosts=["*.example.com"])
    assert (await request(app, "GET", "/health", host="api.example.com")).status_code == 200
    assert (await request(app, "GET", "/health", host="a.b.example.com:443")).status_code == 200
    for host in ["example.com", "evilexample.com", "example.com.evil.example"]:
        assert_error(await request(app, "GET", "/health", host=host), 400, "host_not_allowed")


def test_effective_allowed_hosts() -> None:
    loopback = ("localhost", "127.0.0.1", "::1")
    assert effective_allowed_hosts("127.0.0.1", None) == loopback
    assert effective_allowed_hosts("::1", None) == loopback
    assert effective_allowed_hosts("localhost", None) == loopback
    assert effective_allowed_hosts("0.0.0.0", None) == ("*",)
    assert effective_allowed_hosts("::", None) == ("*",)
    assert effective_allowed_hosts("192.168.1.5", None) == ("*",)
    assert effective_allowed_hosts("0.0.0.0", ["API.example.com."]) == ("api.example.com",)
    assert effective_allowed_hosts("127.0.0.1", ["[::1]", "::1"]) == ("::1",)


def test_host_matching() -> None:
    assert host_allowed("[0:0:0:0:0:0:0:1]:80", ("::1",))
    assert not host_allowed(None, ("localhost",))
    assert host_allowed(None, ("*",))


@pytest.mark.parametrize("entry", ["localhost:8000", "[::1]:8000", "*", "a.*.com", "", "a/b"])
def test_host_entries_are_names_without_ports(entry: str) -> None:
    if entry == "*":
        assert host_pattern(entry) == "*"
        return
    with pytest.raises(ValueError, match="allowed_hosts"):
        host_pattern(entry)


async def test_a_foreign_origin_may_not_write() -> None:
    response = await request(guarded(), "POST", "/v1/things", headers={"origin": EVIL})
    assert_error(response, 403, "origin_not_allowed")
    assert calls == []


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_every_state_changing_method_is_guarded(method: str) -> None:
    response = await request(guarded(), method, "/v1/things", headers={"origin": EVIL})
    assert_error(response, 403, "origin_not_allowed")


async def test_a_foreign_origin_may_read_but_gets_no_cors_headers() -> None:
    response = await request(guarded(), "GET", "/health", headers={"origin": EVIL})
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://localhost:8000", "localhost:8000"),
        ("https://api.example.com", "api.example.com"),
        ("http://api.example.com", "api.example.com:80"),
        ("http://[::1]:8000", "[::1]:8000"),
    ],
)
async def test_the_servers_own_origin_may_write(origin: str, host: str) -> None:
    app = guarded(allowed_hosts=["*"])
    response = await request(app, "POST", "/v1/things", host=host, headers={"origin": origin})
    assert response.status_code == 200, response.text
    assert calls == ["POST"]


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://localhost:9999", "localhost:8000"),
        ("https://localhost", "localhost:8000"),
        ("null", "localhost:8000"),
        ("http://localhost:8000/path", "localhost"),
    ],
)
def test_other_ports_and_schemes_are_other_origins(origin: str, host: str) -> None:
    assert not same_origin(origin, host)


async def test_an_allowed_origin_writes_and_reads_with_cors_headers() -> None:
    app = guarded(cors_origins=[APP])
    response = await request(app, "POST", "/v1/things", headers={"origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["access-control-expose-headers"] == "Retry-After"
    refused = await request(app, "POST", "/v1/things", headers={"origin": EVIL})
    assert_error(refused, 403, "origin_not_allowed")


async def test_an_allowed_origin_gets_cors_headers_on_errors_too() -> None:
    app = guarded(cors_origins=[APP])
    response = await request(app, "GET", "/v1/broken", headers={"origin": APP})
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == APP


async def test_the_preflight_is_answered_only_when_origins_are_configured() -> None:
    preflight = {
        "origin": APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os",
    }
    unconfigured = await request(guarded(), "OPTIONS", "/v1/things", headers=preflight)
    assert_error(unconfigured, 403, "origin_not_allowed")

    app = guarded(cors_origins=[APP])
    answered = await request(app, "OPTIONS", "/v1/things", headers=preflight)
    assert answered.status_code == 204
    assert answered.headers["access-control-allow-origin"] == APP
    assert answered.headers["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE"
    allowed = answered.headers["access-control-allow-headers"].split(", ")
    assert {"authorization", "content-type", "x-stainless-os"} <= set(allowed)
    assert answered.headers["access-control-max-age"] == "600"
    refused = await request(app, "OPTIONS", "/v1/things", headers={**preflight, "origin": EVIL})
    assert_error(refused, 403, "origin_not_allowed")


async def test_a_plain_options_request_is_not_a_preflight() -> None:
    response = await request(guarded(cors_origins=[APP]), "OPTIONS", "/v1/things")
    assert response.status_code == 204
    assert "POST" in response.headers["allow"]
    assert "access-control-allow-origin" not in response.headers


async def test_any_origin_without_credentials_is_a_star() -> None:
    app = guarded(cors_origins=["*"])
    response = await request(app, "POST", "/v1/things", headers={"origin": EVIL})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


async def test_credentials_name_the_origin() -> None:
    app = guarded(cors_origins=[APP + "/"], cors_allow_credentials=True)
    response = await request(app, "GET", "/health", headers={"origin": APP})
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"cors_origins": ["*"], "cors_allow_credentials": True}, "credentials"),
        ({"cors_origins": ["null"]}, "null"),
        ({"cors_origins": ["https://app.example.com/path"]}, "scheme://host"),
        ({"cors_origins": ["app.example.com"]}, "scheme://host"),
        ({"allowed_hosts": []}, "empty"),
        ({"allowed_hosts": ["localhost:8000"]}, "port"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, Any], needle: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=needle):
        msgspec.convert({"http": settings}, HttpSettingsSection)


def test_origin_entries_are_spelled_as_browsers_send_them() -> None:
    assert origin_entry("HTTPS://App.Example.com:443/") == "https://app.example.com"
    assert origin_entry("http://localhost:5173") == "http://localhost:5173"
    assert origin_entry("tauri://localhost") == "tauri://localhost"


class HttpSettingsSection(msgspec.Struct):
    http: HttpSettings


# -- WebSockets ---------------------------------------------------------------------------------


def connect(app: Litestar, headers: dict[str, str]) -> str:
    """Open ``/v1/ws`` and read its first message."""
    with (
        TestClient(app, base_url="http://127.0.0.1:8000") as test_client,
        test_client.websocket_connect("/v1/ws", headers=headers) as ws,
    ):
        return str(ws.receive_text())


def test_a_websocket_from_a_foreign_origin_is_closed_before_it_opens() -> None:
    with pytest.raises(WebSocketDisconnect) as closed:
        connect(guarded(), {"origin": EVIL})
    assert closed.value.code == 1008


def test_a_websocket_under_a_rebinding_host_is_closed_before_it_opens() -> None:
    with pytest.raises(WebSocketDisconnect) as closed:
        connect(guarded(), {"host": "evil.example:8000"})
    assert closed.value.code == 1008


def test_websockets_from_the_servers_own_or_an_allowed_origin_open() -> None:
    assert connect(guarded(), {"origin": "http://127.0.0.1:8000"}) == "hello"
    assert connect(guarded(cors_origins=[APP]), {"origin": APP}) == "hello"
    assert connect(guarded(), {}) == "hello"  # not a browser
