"""Bad requests get OpenAI-shaped 4xx answers and never disturb the good ones beside them."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.support import ServerProcess

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}

BAD_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("empty-string", b'{"input": ""}', 400, "empty"),
    ("empty-list", b'{"input": []}', 400, "input"),
    ("too-many", b'{"input": [' + b",".join([b'"x"'] * 2049) + b"]}", 400, "input"),
    ("wrong-type", b'{"input": 42}', 400, "input"),
    ("wrong-item-type", b'{"input": [{"a": 1}]}', 400, "input"),
    ("mixed", b'{"input": ["a", 1]}', 400, "mix"),
    ("bad-format", b'{"input": "a", "encoding_format": "hex"}', 400, "encoding_format"),
    ("bad-dimensions", b'{"input": "a", "dimensions": 0}', 400, "dimensions"),
    ("unknown-model", b'{"input": "a", "model": "gpt-9"}', 404, "gpt-9"),
    ("broken-json", b'{"input": "a"', 400, "not valid JSON"),
    ("not-an-object", b'["a"]', 400, "object"),
    ("empty-body", b"", 400, "empty"),
]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_request_is_openai_shaped(
    monolith: ServerProcess, body: bytes, status: int, needle: str
) -> None:
    async with httpx.AsyncClient(base_url=monolith.url) as client:
        response = await client.post("/v1/embeddings", content=body, headers=JSON)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert needle in error["message"]


async def test_oversized_body_is_413(monolith: ServerProcess) -> None:
    body = b'{"input": "' + b"a" * (17 * 1024 * 1024) + b'"}'
    async with httpx.AsyncClient(base_url=monolith.url, timeout=30) as client:
        response = await client.post("/v1/embeddings", content=body, headers=JSON)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


async def test_unknown_fields_are_accepted(monolith: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=monolith.url) as client:
        response = await client.post(
            "/v1/embeddings", json={"input": "hello", "user": "u1", "future_option": {"x": 1}}
        )
    assert response.status_code == 200


async def test_unknown_path_and_method(monolith: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=monolith.url) as client:
        missing = await client.post("/v1/nothing", json={})
        wrong = await client.get("/v1/embeddings")
    assert missing.status_code == 404
    assert "/v1/nothing" in missing.json()["error"]["message"]
    assert wrong.status_code == 405


async def test_bad_requests_do_not_disturb_good_ones(monolith: ServerProcess) -> None:
    outcomes: list[int] = []

    async def good(client: httpx.AsyncClient, i: int) -> None:
        response = await client.post("/v1/embeddings", json={"input": f"good request {i}"})
        outcomes.append(response.status_code)

    async def bad(client: httpx.AsyncClient, body: bytes) -> None:
        response = await client.post("/v1/embeddings", content=body, headers=JSON)
        assert 400 <= response.status_code < 500

    async with httpx.AsyncClient(base_url=monolith.url, timeout=30) as client:
        async with anyio.create_task_group() as task_group:
            for i in range(30):
                task_group.start_soon(good, client, i)
                _, body, _, _ = BAD_REQUESTS[i % len(BAD_REQUESTS)]
                task_group.start_soon(bad, client, body)
        health = await client.get("/health")
    assert outcomes == [200] * 30
    assert health.status_code == 200
