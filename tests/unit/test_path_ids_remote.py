"""Forwarded calls reach the pod on exactly the route they were asked on, whatever the ids.

Every operation with a path parameter, of every registered kind, is called through the remote
adapter on a pod served in-process; the pod records the path and the route each request
reached. Ids that would be dot segments or span segments are refused with a 400 naming the
field, by the adapter before anything is sent and by the pod when a client sends one itself.
The network wire sends paths exactly as encoded too (a raw socket records its request line).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
import msgspec
import pytest
from anyio.abc import SocketStream

from aiplatform.engines.base import ExampleContext, Operation, build_request
from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import AIPlatformError, InvalidRequestError
from aiplatform.forms import encode_form
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import AiohttpWire, HttpxWire
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_configured
from aiplatform.settings import Settings
from aiplatform.testing import fake_settings

pytestmark = pytest.mark.anyio

PATH_OPERATIONS = [
    (name, op) for name, kind in ENGINE_KINDS.items() for op in kind.operations if op.path_params
]
#: Ids that are one path segment however odd they look.
KEPT = ["...", ".env", "a b", "%2E%2E", "é", "a?b#c", "a\\b", "a;b=c"]
#: Values that would be a dot segment or more than one segment.
REFUSED = [".", "..", "a/b"]


def test_every_kind_with_path_parameters_is_covered() -> None:
    assert {name for name, _ in PATH_OPERATIONS} >= {"rag", "speakers"}


@dataclass
class Received:
    method: str
    path: str
    raw_path: bytes
    route: str | None


class Recorder:
    """An ASGI app in front of the pod's, keeping what each HTTP request reached."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received: list[Received] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            handler = scope.get("route_handler")
            self.received.append(
                Received(
                    scope["method"],
                    scope["path"],
                    scope.get("raw_path", b""),
                    getattr(handler, "name", None),
                )
            )


def request_for(op: Operation[Any, Any, Any], ids: dict[str, str]) -> Any:
    """The operation's example request with ``ids`` in its path fields."""
    assert op.example is not None
    made = SimpleNamespace(id="made", embedding=[0.1] * 4)
    request = build_request(op.example.request, ExampleContext(model=None, answers=(made,) * 8))
    return msgspec.structs.replace(request, **ids)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def pods(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, tuple[RemoteEngine, Recorder, httpx.AsyncClient]]]:
    """Per kind: a remote adapter to a pod in this process, its recorder, and a plain client
    to the same pod."""
    settings = fake_settings(tmp_path_factory.mktemp("pods"))
    out: dict[str, tuple[RemoteEngine, Recorder, httpx.AsyncClient]] = {}
    async with anyio.create_task_group() as group:
        stop = anyio.Event()

        async def serve(name: str, ready: anyio.Event) -> None:
            local = build_configured(settings, name, served={})
            section: EngineSettings = settings.engine(name)
            async with local:
                recorder = Recorder(create_app(Settings(), engines={name: local}))
                transport = httpx.ASGITransport(app=recorder)
                remote_settings = msgspec.structs.replace(section, url="http://localhost")
                remote = RemoteEngine(local.kind, remote_settings, wire=HttpxWire(transport))
                async with (
                    remote,
                    httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
                ):
                    out[name] = (remote, recorder, client)
                    ready.set()
                    await stop.wait()

        for name in sorted({name for name, _ in PATH_OPERATIONS}):
            ready = anyio.Event()
            group.start_soon(serve, name, ready)
            await ready.wait()
        yield out
        stop.set()


@pytest.mark.parametrize(("kind", "op"), PATH_OPERATIONS, ids=lambda v: getattr(v, "name", v))
async def test_the_pod_receives_the_route_asked_for(
    pods: dict[str, tuple[RemoteEngine, Recorder, httpx.AsyncClient]],
    kind: str,
    op: Operation[Any, Any, Any],
) -> None:
    remote, recorder, _ = pods[kind]
    for value in KEPT:
        ids = {name: f"{value}{index}" for index, name in enumerate(op.path_params)}
        recorder.received.clear()
        status = 200
        try:
            await remote.invoke(op, request_for(op, ids))
        except AIPlatformError as exc:  # most ids name nothing: a 404 from the right route
            status = exc.status_code
        assert status in (200, 400, 404)
        assert len(recorder.received) == 1, recorder.received
        received = recorder.received[0]
        assert received.method == op.method
        assert received.path == op.path_with(ids.__getitem__)
        assert unquote(received.raw_path.decode()) == received.path
        assert received.route == f"{kind}.{op.name}"


@pytest.mark.parametrize(("kind", "op"), PATH_OPERATIONS, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("value", REFUSED)
async def test_the_adapter_refuses_ids_that_would_change_the_route(
    pods: dict[str, tuple[RemoteEngine, Recorder, httpx.AsyncClient]],
    kind: str,
    op: Operation[Any, Any, Any],
    value: str,
) -> None:
    remote, recorder, _ = pods[kind]
    name = op.path_params[-1]
    ids = dict.fromkeys(op.path_params, "ok") | {name: value}
    recorder.received.clear()
    with pytest.raises(InvalidRequestError) as caught:
        await remote.invoke(op, request_for(op, ids))
    assert caught.value.status_code == 400
    assert caught.value.param == name
    assert recorder.received == []


@pytest.mark.parametrize(("kind", "op"), PATH_OPERATIONS, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("encoded", ["%2E", "%2E%2E"])
async def test_the_pod_refuses_dot_segments_sent_to_it(
    pods: dict[str, tuple[RemoteEngine, Recorder, httpx.AsyncClient]],
    kind: str,
    op: Operation[Any, Any, Any],
    encoded: str,
) -> None:
    _, _, client = pods[kind]
    name = op.path_params[-1]
    path = op.path_with(lambda param: encoded if param == name else "ok")
    request = request_for(op, dict.fromkeys(op.path_params, "ok"))  # a body that decodes
    if op.body == "form":
        body, content_type = encode_form(request)
        response = await client.request(
            op.method, path, content=body, headers={"content-type": content_type}
        )
    elif op.body == "json":
        response = await client.request(op.method, path, json=msgspec.to_builtins(request))
    else:
        response = await client.request(op.method, path)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == name


async def test_the_network_wire_sends_the_path_as_encoded(tmp_path: Path) -> None:
    """yarl would decode ``%2E`` and resolve dot segments; the aiohttp wire must not."""
    lines: list[bytes] = []

    async def answer(stream: SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            lines.append(data.split(b"\r\n", 1)[0])
            body = b'{"error": {"message": "no", "type": "invalid_request_error"}}'
            await stream.send(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                b"content-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    rag = ENGINE_KINDS["rag"]
    delete = next(op for op in rag.operations if op.name == "delete_document")
    settings = msgspec.structs.replace(
        fake_settings(tmp_path).engine("rag"), url=f"http://127.0.0.1:{port}/v1"
    )
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer)
        async with RemoteEngine(rag, settings, wire=AiohttpWire()) as remote:
            request = delete.request(collection_id="c1", document_id="...")
            with pytest.raises(AIPlatformError):
                await remote.invoke(delete, request)
        group.cancel_scope.cancel()
    assert lines == [b"DELETE /v1/rag/collections/c1/documents/%2E%2E%2E HTTP/1.1"]
