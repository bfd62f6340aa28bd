"""WebSocket chat (``/v1/ws/chat``) on the app in-process: generations interleaved on one
connection, each streamed as the SSE route streams it; cancel stops the model; a bad request
costs its generation only; a slow reader holds the engine stream back instead of piling up
events, and one that never reads again is dropped; authentication, engine scopes and rate
limits apply as on ``POST /v1/chat/completions``.

The client is an ASGI driver (:class:`Client`) rather than a network socket, so that a client
that stops reading is exact: the app's send waits until the test reads again, as it does on a
real connection once the transport's buffer is full.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar import Litestar

from aiplatform.api.chat import ModelStatesRequest
from aiplatform.auth.settings import AuthSettings
from aiplatform.engines.base import Engine, Operation
from aiplatform.engines.llm import MODEL_STATES
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.settings import LLMSettings
from aiplatform.engines.wrapped import WrappedEngine
from aiplatform.errors import EngineUnavailableError, InternalError
from aiplatform.limits.settings import RateLimitSettings
from aiplatform.server import ws_chat
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_configured
from aiplatform.settings import ServerSettings, Settings
from aiplatform.testing import asgi_remote, fake_settings, normalized

pytestmark = pytest.mark.anyio

MODEL = "fake-llm"
#: A guard against a hang, never a speed check.
GUARD_S = 10.0
ADMIN_PASSWORD = "an-admin-password-long-enough"


def chat(content: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **fields}


# -- an in-process WebSocket client ------------------------------------------------------------


class Client:
    """One WebSocket connection to an ASGI app. :meth:`pause` makes it stop reading: the app's
    sends (and its close) wait until :meth:`resume`, as on a connection whose buffers are full.
    """

    def __init__(self) -> None:
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[dict[str, Any]](64)
        self._to_test, self._events = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        self._reading = anyio.Event()
        self._reading.set()
        self.accepted: dict[str, Any] | None = None
        #: The close the app sent (or began to send while the client was not reading).
        self.close: dict[str, Any] | None = None
        self.finished = anyio.Event()

    def close_streams(self) -> None:
        for stream in (self._to_app, self._app_inbox, self._to_test, self._events):
            stream.close()

    def pause(self) -> None:
        self._reading = anyio.Event()

    def resume(self) -> None:
        self._reading.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self._to_app.send({"type": "websocket.receive", "text": json.dumps(message)})

    async def send_raw(self, message: dict[str, Any]) -> None:
        await self._to_app.send(message)

    async def event(self) -> dict[str, Any]:
        """The next event the app sent; ``{"type": "closed", ...}`` once it closed."""
        with anyio.fail_after(GUARD_S):
            return await self._events.receive()

    async def events_until(
        self, done: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Events until ``done`` holds of those received so far."""
        events: list[dict[str, Any]] = []
        while not done(events):
            events.append(await self.event())
        return events

    # the app's side

    async def app_receive(self) -> dict[str, Any]:
        return await self._app_inbox.receive()

    async def app_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted = message
            return
        if message["type"] == "websocket.close":
            self.close = message
        await self._reading.wait()
        if message["type"] == "websocket.send":
            await self._to_test.send(json.loads(message["text"]))
        elif message["type"] == "websocket.close":
            await self._to_test.send({"type": "closed", "code": message.get("code", 1000)})


def ws_scope(headers: Iterable[tuple[str, str]] = (), subprotocols: Iterable[str] = ()) -> Any:
    offered = list(subprotocols)
    raw = [(b"host", b"127.0.0.1")] + [(k.encode(), v.encode()) for k, v in headers]
    if offered:
        raw.append((b"sec-websocket-protocol", ", ".join(offered).encode()))
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/v1/ws/chat",
        "raw_path": b"/v1/ws/chat",
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "subprotocols": offered,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
        "extensions": {},
    }


@asynccontextmanager
async def connect(
    app: Litestar, headers: Iterable[tuple[str, str]] = (), subprotocols: Iterable[str] = ()
) -> AsyncIterator[Client]:
    """A client connected to ``app`` (whose lifespan runs); on leaving, it disconnects and the
    app's handler must return."""
    client = Client()
    await client.send_raw({"type": "websocket.connect"})

    async def serve() -> None:
        try:
            await app(ws_scope(headers, subprotocols), client.app_receive, client.app_send)
        finally:
            client.finished.set()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            yield client
            client.resume()
            await client.send_raw({"type": "websocket.disconnect", "code": 1000})
            with anyio.fail_after(GUARD_S):
                await client.finished.wait()
    finally:
        client.close_streams()


# -- engines and the app -------------------------------------------------------------------------


class Counting(WrappedEngine):
    """Counts the chunks its engine streams have handed out: what a generation pulled."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.pulled = 0

    async def stream(self, op: Operation[Any, Any, Any], request: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        inner = self.inner.stream(op, request)
        try:
            async for chunk in inner:
                self.pulled += 1
                yield chunk
        finally:
            await inner.aclose()  # type: ignore[attr-defined]


class Failing(WrappedEngine):
    """Fails a request whose message is ``fail`` with ``error`` after its first chunk."""

    def __init__(self, inner: Engine, error: Exception) -> None:
        super().__init__(inner)
        self._error = error

    async def stream(self, op: Operation[Any, Any, Any], request: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        failing = request.messages[0].content == "fail"
        inner = self.inner.stream(op, request)
        try:
            async for chunk in inner:
                yield chunk
                if failing:
                    raise self._error
        finally:
            await inner.aclose()  # type: ignore[attr-defined]


def fake_llm(token_delay_s: float = 0.0, slots: int = 4) -> tuple[LocalLLMEngine, FakeLLM]:
    model = FakeLLM(MODEL, slots=slots, token_delay_s=token_delay_s)
    model.load()  # a model handed in is the caller's to load
    return LocalLLMEngine(LLMSettings(), models=[model]), model


@asynccontextmanager
async def serving(
    engine: Engine, settings: Settings | None = None, **others: Engine
) -> AsyncIterator[Litestar]:
    """The app serving ``engine`` as its LLM (and ``others``), its lifespan running."""
    app = create_app(settings or Settings(), engines={"llm": engine, **others})
    async with app.lifespan():
        yield app


def http(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://127.0.0.1",
    )


async def idle(engine: Engine) -> bool:
    """Whether no generation runs on ``engine``'s models."""
    states = await engine.invoke(MODEL_STATES, ModelStatesRequest())
    return sum(state.active for state in states.data) == 0


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for ``condition`` (polled: it watches counters other threads move)."""
    with anyio.fail_after(GUARD_S):
        while not await condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


def last_type(events: list[dict[str, Any]]) -> str | None:
    return events[-1]["type"] if events else None


def of(events: list[dict[str, Any]], ident: str) -> list[dict[str, Any]]:
    return [event for event in events if event.get("id") == ident]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if event["type"] == "chunk"
        for choice in event["chunk"]["choices"]
    )


def ended(*idents: str) -> Callable[[list[dict[str, Any]]], bool]:
    """Whether every generation named has had its last event."""
    last = {"done", "error", "cancelled"}
    return lambda events: all(
        any(e["type"] in last and e.get("id") == ident for e in events) for ident in idents
    )


async def sse_chunks(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    response = await client.post("/v1/chat/completions", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["local", "remote-asgi"])
async def test_two_conversations_on_one_socket_each_get_their_own_stream(mode: str) -> None:
    local, _ = fake_llm(token_delay_s=0.01)
    requests = {
        "a": chat("Tell me about foxes.", seed=1, stream_options={"include_usage": True}),
        "b": chat("And about cats?", seed=2, max_tokens=12),
    }
    async with AsyncExitStack() as stack:
        engine: Engine = local  # entered by the app
        if mode == "remote-asgi":  # the app enters the adapter; the pod's engine is ours
            await stack.enter_async_context(local)
            engine = asgi_remote(local, LLMSettings())
        async with serving(engine) as app, http(app) as client, connect(app) as socket:
            for ident, request in requests.items():
                await socket.send({"type": "chat", "id": ident, "request": request})
            events = await socket.events_until(ended("a", "b"))
            for ident, request in requests.items():
                mine = of(events, ident)
                answer = (await client.post("/v1/chat/completions", json=request)).json()
                assert [e["type"] for e in mine[-1:]] == ["done"]
                assert {e["type"] for e in mine[:-1]} == {"chunk"}
                assert text_of(mine) == answer["choices"][0]["message"]["content"]
                assert mine[-1]["usage"] == answer["usage"]
                # the very chunks the SSE stream of the same request carries, in order
                sse = await sse_chunks(client, request)
                assert normalized([e["chunk"] for e in mine[:-1]]) == normalized(sse)
    assert [e["chunk"]["usage"] for e in of(events, "a")[-2:-1]] == [of(events, "a")[-1]["usage"]]
    assert all(e["type"] != "chunk" or e["chunk"].get("usage") is None for e in of(events, "b"))


async def test_generations_interleave_on_one_socket() -> None:
    engine, _ = fake_llm(token_delay_s=0.01)  # 24 tokens each: both run at once
    async with serving(engine) as app, connect(app) as socket:
        await socket.send({"type": "chat", "id": "a", "request": chat("one")})
        await socket.send({"type": "chat", "id": "b", "request": chat("two")})
        events = await socket.events_until(ended("a", "b"))
    order = [e["id"] for e in events if e["type"] == "chunk"]
    first_b, last_a = order.index("b"), len(order) - 1 - order[::-1].index("a")
    assert first_b < last_a, "b's chunks came only after all of a's"


async def test_cancel_stops_the_generation_in_the_engine() -> None:
    engine, model = fake_llm(token_delay_s=0.1)  # 24 tokens: 2.4 s when left alone
    async with serving(engine) as app, connect(app) as socket:
        await socket.send({"type": "chat", "id": "long", "request": chat("everything")})
        await socket.events_until(lambda events: len(events) == 3)  # the role, two words
        await socket.send({"type": "cancel", "id": "long"})
        events = await socket.events_until(lambda events: last_type(events) not in {None, "chunk"})
        assert events[-1] == {"type": "cancelled", "id": "long"}
        await until(lambda: idle(engine))
        assert model.produced < 24  # stopped long before its end
        await socket.send({"type": "ping"})
        assert await socket.event() == {"type": "pong"}  # nothing more came for "long"
        # the id is free again
        await socket.send({"type": "chat", "id": "long", "request": chat("hi", max_tokens=2)})
        again = await socket.events_until(ended("long"))
        assert again[-1]["type"] == "done"
        assert again[-1]["usage"]["completion_tokens"] == 2


async def test_a_bad_request_costs_its_generation_only() -> None:
    engine, _ = fake_llm(token_delay_s=0.01)
    async with serving(engine) as app, connect(app) as socket:
        await socket.send({"type": "chat", "id": "good", "request": chat("hello")})
        await socket.send({"type": "chat", "id": "empty", "request": {"messages": []}})
        await socket.send({"type": "chat", "id": "typed", "request": chat("x", max_tokens="5")})
        await socket.send({"type": "chat", "id": "model", "request": chat("x", model="nope")})
        await socket.send({"type": "chat", "id": "no-request"})
        await socket.send_raw({"type": "websocket.receive", "text": "not json"})
        await socket.send_raw({"type": "websocket.receive", "bytes": b"\x00\x01"})
        await socket.send({"type": "shout", "id": "x"})
        events = await socket.events_until(ended("good", "empty", "typed", "model", "no-request"))
        errors = {e.get("id"): e["error"] for e in events if e["type"] == "error"}
        assert of(events, "good")[-1]["type"] == "done"
        assert errors["empty"]["param"] == "messages"
        assert errors["typed"]["param"] == "max_tokens"  # strict, as the POST route
        assert errors["model"]["code"] == "model_not_found"  # the engine's 4xx
        assert errors["no-request"]["param"] == "request"
        assert {e["type"] for e in errors.values()} == {"invalid_request_error"}
        await socket.send({"type": "ping"})
        rest = await socket.events_until(lambda events: events[-1:] == [{"type": "pong"}])
    anonymous = [e["error"] for e in events + rest if e["type"] == "error" and "id" not in e]
    assert len(anonymous) == 2  # the text that is not JSON, the binary message
    unknown = [e["error"] for e in events + rest if e.get("id") == "x"]
    assert [error["param"] for error in unknown] == ["type"]


async def test_generations_per_socket_are_bounded_and_ids_unique(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_chat, "MAX_GENERATIONS", 2)
    engine, _ = fake_llm(token_delay_s=0.1)
    async with serving(engine) as app, connect(app) as socket:
        for ident in ("a", "b", "c", "a"):
            await socket.send({"type": "chat", "id": ident, "request": chat(ident)})
        await socket.send({"type": "cancel", "id": "nobody"})
        await socket.send({"type": "chat", "id": "a"})  # unreadable, naming a running one
        errors = await socket.events_until(
            lambda events: len([e for e in events if e["type"] == "error"]) == 4
        )
        refused = [
            (e.get("id"), e["error"]["code"] or e["error"]["param"])
            for e in errors
            if e["type"] == "error"
        ]
        # an error naming a generation is its last event: "a" runs on, so none names it
        assert refused == [
            ("c", "too_many_generations"),
            (None, "duplicate_id"),
            ("nobody", "generation_not_active"),
            (None, "request"),
        ]
        assert [e["error"]["type"] for e in errors if e["type"] == "error"][:2] == [
            "rate_limit_error",
            "invalid_request_error",
        ]
        await socket.send({"type": "cancel", "id": "a"})
        await socket.events_until(lambda events: {"type": "cancelled", "id": "a"} in events)
        await socket.send({"type": "chat", "id": "c", "request": chat("c", max_tokens=1)})
        events = await socket.events_until(ended("c"))
        assert of(events, "c")[-1]["type"] == "done"


async def test_a_message_over_the_size_limit_closes_with_1009() -> None:
    engine, _ = fake_llm()
    settings = Settings(server=ServerSettings(max_body_bytes=1000))
    async with serving(engine, settings) as app, connect(app) as socket:
        await socket.send({"type": "chat", "id": "small", "request": chat("x" * 800)})
        events = await socket.events_until(ended("small"))
        assert events[-1]["type"] == "done"
        await socket.send({"type": "chat", "id": "big", "request": chat("x" * 1000)})
        error, closed = await socket.event(), await socket.event()
    assert error["error"]["code"] == "message_too_big"
    assert closed == {"type": "closed", "code": 1009}


@pytest.mark.parametrize("outbox", [3, ws_chat.OUTBOX_MESSAGES])
async def test_a_slow_reader_holds_back_the_engine_stream(
    monkeypatch: pytest.MonkeyPatch, outbox: int
) -> None:
    monkeypatch.setattr(ws_chat, "OUTBOX_MESSAGES", outbox)
    local, _ = fake_llm()  # no delay: unchecked, a generation streams whole at once
    engine = Counting(local)
    request = chat("a long story")
    async with serving(engine) as app, http(app) as client, connect(app) as socket:
        expected = await sse_chunks(client, request)
        engine.pulled = 0
        socket.pause()
        await socket.send({"type": "chat", "id": "story", "request": request})
        await until(lambda: _at_least(engine, outbox))
        await anyio.sleep(0.3)  # ample time for the rest of the stream, were it pulled
        # one event in the writer's hands, the outbox full, one waiting for room
        assert engine.pulled <= outbox + 2 < len(expected)
        socket.resume()
        events = await socket.events_until(ended("story"))
    assert events[-1] == {"type": "done", "id": "story", "usage": events[-1]["usage"]}
    assert normalized([e["chunk"] for e in events[:-1]]) == normalized(expected)
    assert engine.pulled == len(expected) + 1  # and the usage chunk the server asked for


async def _at_least(engine: Counting, count: int) -> bool:
    return engine.pulled >= count


async def test_a_reader_that_never_resumes_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_chat, "SEND_TIMEOUT_S", 0.3)
    monkeypatch.setattr(ws_chat, "CLOSE_TIMEOUT_S", 0.3)
    engine, model = fake_llm(token_delay_s=0.1)  # 24 tokens: 2.4 s when read
    async with serving(engine) as app, connect(app) as socket:
        socket.pause()
        await socket.send({"type": "chat", "id": "unread", "request": chat("tell me")})
        with anyio.fail_after(GUARD_S):
            await socket.finished.wait()  # the app gave up on the client without its help
        assert socket.close is not None
        assert socket.close["code"] == 1008
        await until(lambda: idle(engine))
        assert model.produced < 24


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InternalError("the model crashed"), 1011),
        (EngineUnavailableError("the pod is unreachable"), 1013),
    ],
)
async def test_an_engine_failure_ends_the_connection(error: Exception, code: int) -> None:
    local, _ = fake_llm(token_delay_s=0.1)
    async with serving(Failing(local, error)) as app, connect(app) as socket:
        await socket.send({"type": "chat", "id": "slow", "request": chat("long answer")})
        await socket.event()  # "slow" runs
        await socket.send({"type": "chat", "id": "bad", "request": chat("fail")})
        events = await socket.events_until(lambda events: last_type(events) == "closed")
    assert events[-1] == {"type": "closed", "code": code}
    assert [e["type"] for e in of(events, "bad")] == ["chunk", "error"]
    assert of(events, "bad")[-1]["error"]["message"] == str(error)
    assert [e["type"] for e in of(events, "slow")] == ["chunk"] * len(of(events, "slow"))
    await until(lambda: idle(local))


async def test_each_generation_is_rate_limited() -> None:
    engine, _ = fake_llm()
    settings = Settings(limits=RateLimitSettings(tenant_requests_per_minute=1))
    async with serving(engine, settings) as app, connect(app) as socket:
        await socket.send({"type": "chat", "id": "first", "request": chat("hi")})
        events = await socket.events_until(ended("first"))
        await socket.send({"type": "chat", "id": "second", "request": chat("hi")})
        events += await socket.events_until(ended("second"))
        await socket.send({"type": "ping"})
        assert await socket.event() == {"type": "pong"}
    assert of(events, "first")[-1]["type"] == "done"
    [refused] = of(events, "second")
    assert refused["error"]["code"] == "rate_limit_exceeded"


async def test_a_socket_needs_a_token_and_the_engine_in_its_scope(tmp_path: Path) -> None:
    engine, _ = fake_llm()
    embeddings = build_configured(fake_settings(tmp_path), "embeddings", served={})
    auth = AuthSettings(
        enabled=True,
        admin_password=ADMIN_PASSWORD,
        password_time_cost=1,
        password_memory_kib=8,
        data_dir=str(tmp_path / "auth"),
    )
    async with (
        serving(engine, Settings(auth=auth), embeddings=embeddings) as app,
        http(app) as client,
    ):
        login = await client.post(
            "/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        admin = {"authorization": f"Bearer {login.json()['access_token']}"}
        key = (await client.post("/v1/keys", json={"name": "all"}, headers=admin)).json()["key"]
        scoped = await client.post(
            "/v1/keys", json={"name": "embeddings", "engines": ["embeddings"]}, headers=admin
        )
        for refused in (
            connect(app),
            connect(app, subprotocols=["aiplatform", "bearer.aip_0.wrong"]),
            connect(app, subprotocols=["aiplatform", f"bearer.{scoped.json()['key']}"]),
        ):
            async with refused as socket:
                with anyio.fail_after(GUARD_S):
                    await socket.finished.wait()
                assert socket.accepted is None  # closed before it opened
                assert socket.close is not None
                assert socket.close["code"] == 1008
        async with connect(app, subprotocols=["aiplatform", f"bearer.{key}"]) as socket:
            await socket.send({"type": "chat", "id": "a", "request": chat("hi", max_tokens=3)})
            events = await socket.events_until(ended("a"))
        assert socket.accepted is not None
        assert socket.accepted.get("subprotocol") == "aiplatform"
        assert events[-1]["type"] == "done"
        async with connect(app, headers=[("authorization", f"Bearer {key}")]) as socket:
            await socket.send({"type": "ping"})
            assert await socket.event() == {"type": "pong"}
            # the key revoked while the socket is open: its next chat is refused, and it closes
            key_id = key.removeprefix("aip_").split(".")[0]
            assert (await client.delete(f"/v1/keys/{key_id}", headers=admin)).status_code == 200
            await socket.send({"type": "chat", "id": "b", "request": chat("hi", max_tokens=3)})
            refused_event = await socket.event()
            assert refused_event["type"] == "error"
            assert refused_event["error"]["code"] == "invalid_api_key"
            with anyio.fail_after(GUARD_S):
                await socket.finished.wait()
            assert socket.close is not None
            assert socket.close["code"] == 1008
