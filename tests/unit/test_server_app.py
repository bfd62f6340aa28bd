"""The app as a whole: OpenAPI, unknown-field logging, route ownership, the library entry point."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import msgspec
import pytest

from aiplatform import open_engine
from aiplatform.api.openai import EmbeddingRequest
from aiplatform.engines.embeddings import EMBED
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_engines
from aiplatform.settings import engine_names, load_settings
from tests.support import FAKE_AUDIO_ENV, FAKE_EMBEDDINGS_ENV, FAKE_LLM_ENV

pytestmark = pytest.mark.anyio

FAKE = {**FAKE_EMBEDDINGS_ENV, **FAKE_LLM_ENV, **FAKE_AUDIO_ENV}


@asynccontextmanager
async def client(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, its engines entered as the app's lifespan would enter them."""
    settings = load_settings(env=env)
    engines = build_engines(settings)
    app = create_app(settings, engines=engines)
    async with AsyncExitStack() as stack:
        for engine in engines.values():
            await stack.enter_async_context(engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http


async def test_openapi_documents_the_declared_operations() -> None:
    async with client(FAKE) as http:
        spec = (await http.get("/docs/openapi.json")).json()
    operation = spec["paths"]["/v1/embeddings"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "EmbeddingRequest"
    )
    assert "EmbeddingResponse" in str(operation["responses"]["200"])
    assert "ErrorResponse" in str(operation["responses"]["400"])
    assert {"/v1/models", "/health", "/ready"} <= set(spec["paths"])


async def test_unknown_fields_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    async with client(FAKE) as http:
        with caplog.at_level(logging.DEBUG, logger="aiplatform.server.routes"):
            response = await http.post("/v1/embeddings", json={"input": "a", "frobnicate": 1})
    assert response.status_code == 200
    assert "frobnicate" in caplog.text


async def test_disabled_engines_mount_no_routes() -> None:
    env = {
        **FAKE,
        **{f"AIPLATFORM_ENGINES__{name.upper()}__ENABLED": "false" for name in engine_names()},
    }
    async with client(env) as http:
        response = await http.post("/v1/embeddings", json={"input": "a"})
        models = (await http.get("/v1/models")).json()
        ready = await http.get("/ready")
    assert response.status_code == 404
    assert models == {"data": [], "object": "list"}
    assert ready.status_code == 200


async def test_open_engine_as_a_library() -> None:
    async with open_engine("embeddings", load_settings(env=FAKE)) as engine:
        response = await engine.invoke(EMBED, EmbeddingRequest(input=["hello", "world"]))
    assert len(response.data) == 2
    assert engine.mode == "local"
    remote = open_engine(
        "embeddings", load_settings(env={"AIPLATFORM_ENGINES__EMBEDDINGS__URL": "http://pod:1"})
    )
    assert remote.mode == "remote"


async def test_a_failed_load_is_503_with_the_reason() -> None:
    env = {**FAKE_LLM_ENV, "AIPLATFORM_ENGINES__EMBEDDINGS__PATH": "/nonexistent/model"}
    async with client(env) as http:
        response = await http.post("/v1/embeddings", json={"input": "a"})
        ready = await http.get("/ready")
    assert response.status_code == 503
    assert "/nonexistent/model" in response.json()["error"]["message"]
    assert ready.status_code == 503
    assert "failed to load" in msgspec.json.decode(ready.content)["engines"]["embeddings"]["detail"]


async def test_bad_audio_with_diarize_is_still_a_400(tmp_path: Path) -> None:
    env = {
        **FAKE,
        "AIPLATFORM_ENGINES__SPEAKERS__DATA_DIR": str(tmp_path),
        "AIPLATFORM_ENGINES__LLM__ENABLED": "false",
        "AIPLATFORM_ENGINES__EMBEDDINGS__ENABLED": "false",
    }
    async with client(env) as http:
        response = await http.post(
            "/v1/audio/transcriptions",
            files={"file": ("x.wav", b"not audio at all" * 20, "audio/wav")},
            data={"diarize": "true", "emotion": "true"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_audio"
