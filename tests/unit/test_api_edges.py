"""The API's edges: ids that could change a route, JSON read with its own types, numbers that
do not fit float32, and bodies that are not what the route takes. Each is a 400 in OpenAI's
shape that names what to change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiplatform.api.ids import check_id, path_segment
from aiplatform.errors import InvalidRequestError
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_engines
from aiplatform.testing import fake_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Every kind on its fake backend, over ASGI."""
    settings = fake_settings(tmp_path)
    engines = build_engines(settings)
    app = create_app(settings, engines=engines)
    async with AsyncExitStack() as stack:
        for engine in engines.values():
            await stack.enter_async_context(engine)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


def assert_refused(response: httpx.Response, param: str | None, needle: str = "") -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert needle in error["message"], error


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".", "..", "a/b", "", "a\n", "x" * 201, "\x00"])
def test_a_path_segment_that_is_not_an_id_is_refused(value: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_id("document_id", value)
    assert caught.value.param == "document_id"


@pytest.mark.parametrize("value", ["...", ".env", "a.b", "a b", "é", "%2E%2E", "a?b#c", "a\\b"])
def test_ids_that_look_odd_but_are_one_segment_are_kept(value: str) -> None:
    assert check_id("id", value) == value
    encoded = path_segment(value)
    assert not {"/", ".", "?", "#"} & set(encoded)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/rag/collections", {"name": "a/b"}, "name"),
        ("/v1/rag/collections", {"name": ".."}, "name"),
        (
            "/v1/rag/collections/c1/documents",
            {"documents": [{"id": "..", "text": "x"}]},
            "documents",
        ),
        ("/v1/rag/collections/c1/jobs", {"documents": [{"id": "a/b", "text": "x"}]}, "documents"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "rag": {"collection": "."}},
            "rag.collection",
        ),
    ],
)
async def test_ids_are_refused_where_things_are_created(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    response = await http.post(path, json=body)
    assert_refused(response, param, "not '.' or '..'")


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("DELETE", "/v1/rag/collections/c1/documents/%2E%2E", "document_id"),
        ("GET", "/v1/rag/collections/%2E", "collection_id"),
        ("POST", "/v1/rag/conversations/%2E%2E/search", "conversation_id"),
        ("DELETE", "/v1/speakers/%2E%2E", "speaker_id"),
        ("GET", "/v1/rag/jobs/%2E", "job_id"),
    ],
)
async def test_dot_segments_in_a_path_are_refused(
    http: httpx.AsyncClient, method: str, path: str, param: str
) -> None:
    body = {"query": "x"} if method == "POST" else None
    response = await http.request(method, path, json=body)
    assert_refused(response, param)


# -- strict JSON ---------------------------------------------------------------------------------

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {**CHAT, "stream": "true"}, "stream"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": "5"}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "temperature": "0.5"}, "temperature"),
        ("/v1/completions", {"prompt": "a", "echo": 1}, "echo"),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["a"], "return_documents": 0},
            "return_documents",
        ),
        ("/v1/embeddings", {"input": "a", "dimensions": "8"}, "dimensions"),
    ],
)
async def test_json_bodies_keep_their_types(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    response = await http.post(path, json=body)
    assert_refused(response, param, "Expected")


async def test_json_typed_right_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5})
    assert response.status_code == 200, response.text


async def test_query_parameters_still_read_numbers_from_text(http: httpx.AsyncClient) -> None:
    await http.post("/v1/rag/collections", json={"name": "q"})
    response = await http.get("/v1/rag/collections/q/documents", params={"limit": "5"})
    assert response.status_code == 200, response.text
    refused = await http.get("/v1/rag/collections/q/documents", params={"limit": "five"})
    assert_refused(refused, "limit")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"name": "a"', "not valid JSON"),
        (b'["a"]', "object"),
        (b'{"name": "a", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}", "too deeply"),
    ],
)
async def test_bodies_that_are_not_the_request_are_400(
    http: httpx.AsyncClient, body: bytes, needle: str
) -> None:
    response = await http.post(
        "/v1/rag/collections", content=body, headers={"content-type": "application/json"}
    )
    assert_refused(response, None, needle)


# -- numbers that do not fit float32 ---------------------------------------------------------------


async def test_identify_refuses_an_embedding_beyond_float32(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/speakers/identify", json={"embeddings": [[1e308, 0.5]]})
    assert_refused(response, "embeddings", "finite")


async def test_emotion_timeline_refuses_times_beyond_float32(http: httpx.AsyncClient) -> None:
    segments = [
        {"start": 0, "end": 1e308, "text": "great"},
        {"start": 1e308, "end": 1e308, "text": "x"},
    ]
    response = await http.post("/v1/emotion", json={"segments": segments})
    assert_refused(response, "segments", "finite")


async def test_search_refuses_a_vector_beyond_float32(http: httpx.AsyncClient) -> None:
    created = await http.post("/v1/rag/collections", json={"name": "v", "dimension": 4})
    assert created.status_code == 200, created.text
    dimension = created.json()["dimension"]
    vector = [1e39] + [0.0] * (dimension - 1)
    response = await http.post(
        "/v1/rag/collections/v/search", json={"vector": vector, "mode": "vector"}
    )
    assert_refused(response, "vector", "finite")


# -- forms -----------------------------------------------------------------------------------------


async def test_multipart_without_a_boundary_says_so(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/speakers/embeddings",
        content=b"--x\r\n\r\n",
        headers={"content-type": "multipart/form-data"},
    )
    assert_refused(response, None, "multipart/form-data body")
    assert "JSON" not in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [("[" * 5000 + "]" * 5000, "nested too deeply"), ("{", "not valid JSON"), ("[1]", "object")],
)
async def test_upload_metadata_that_is_not_an_object_is_400(
    http: httpx.AsyncClient, metadata: str, needle: str
) -> None:
    await http.post("/v1/rag/collections", json={"name": "files"})
    response = await http.post(
        "/v1/rag/collections/files/files",
        files={"file": ("a.txt", b"Some text to keep.", "text/plain")},
        data={"metadata": metadata},
    )
    assert_refused(response, "metadata", needle)
