"""JSON nested deeper than the decoder follows is a 400 on every route, never a 500: in the
body itself, and wherever else a recursion runs out of stack on the request's behalf."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from litestar import Litestar, post

from aiplatform.engines.base import Operation
from aiplatform.server.app import create_app
from aiplatform.server.errors import EXCEPTION_HANDLERS
from aiplatform.server.wiring import build_engines
from aiplatform.settings import load_settings
from tests.support import FAKE_AUDIO_ENV, FAKE_EMBEDDINGS_ENV, FAKE_LLM_ENV

pytestmark = pytest.mark.anyio

FAKE = {**FAKE_EMBEDDINGS_ENV, **FAKE_LLM_ENV, **FAKE_AUDIO_ENV}
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, list[Operation[Any, Any, Any]]]]:
    settings = load_settings(env=FAKE)
    engines = build_engines(settings)
    app = create_app(settings, engines=engines)
    operations = [
        op for engine in engines.values() for op in engine.kind.operations if op.body == "json"
    ]
    async with AsyncExitStack() as stack:
        for engine in engines.values():
            await stack.enter_async_context(engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client, operations


def _assert_400(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert "deep" in error["message"]


async def test_a_body_nested_5000_deep_is_a_400_on_every_json_route(
    http: tuple[httpx.AsyncClient, list[Operation[Any, Any, Any]]],
) -> None:
    client, operations = http
    assert len(operations) > 5
    for op in operations:
        path = op.path_with(lambda _: "x")
        body = b'{"unknown_field": ' + DEEP + b"}"
        response = await client.request(
            op.method, path, content=body, headers={"content-type": "application/json"}
        )
        _assert_400(response)
        assert response.json()["error"]["code"] == "nested_too_deeply", op.name


async def test_a_deep_response_format_schema_is_a_400_naming_it(
    http: tuple[httpx.AsyncClient, list[Operation[Any, Any, Any]]],
) -> None:
    client, _ = http
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(100):
        schema = {"type": "object", "properties": {"a": schema}}
    response = await client.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "response_format"


async def test_a_recursion_error_anywhere_in_a_request_is_a_400() -> None:
    """Whatever reads the input (a decoder, a validator) and runs out of stack doing it."""

    @post("/deep", sync_to_thread=False)
    def deep() -> None:
        raise RecursionError("maximum recursion depth exceeded while deserializing an object")

    app = Litestar([deep], exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.post("/deep", json={})
    _assert_400(response)
    assert response.json()["error"]["code"] == "nested_too_deeply"
