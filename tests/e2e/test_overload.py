"""Overload: ten times more concurrent requests than the queues hold. Every answer is a 200 or a
fast 429 in OpenAI's shape with Retry-After; none is a 5xx or hangs, ``/health`` answers
throughout, and the server's memory stays bounded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess

pytestmark = pytest.mark.anyio

MAX_QUEUE = 4
CONCURRENT = 10 * MAX_QUEUE

OVERLOADABLE = {
    **FAKE_EMBEDDINGS_ENV,
    "AIPLATFORM_ENGINES__EMBEDDINGS__FAKE_LATENCY_MS": "300",
    "AIPLATFORM_ENGINES__EMBEDDINGS__MAX_BATCH_SIZE": "2",
    "AIPLATFORM_ENGINES__EMBEDDINGS__MAX_QUEUE": str(MAX_QUEUE),
    "AIPLATFORM_ENGINES__LLM__MAX_QUEUE": str(MAX_QUEUE),
    "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps(
        [{"name": FAKE_LLM_MODEL, "backend": "fake", "slots": 1, "fake_token_delay_ms": 20}]
    ),
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(["--engines", "embeddings,llm"], OVERLOADABLE)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def rss_bytes(server: ServerProcess) -> int:
    assert server._proc is not None
    for line in Path(f"/proc/{server._proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class HealthWatch:
    """Polls ``/health`` on a thread of its own while the load runs."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.answers: list[int | str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    self.answers.append(client.get(self._url + "/health").status_code)
                except httpx.HTTPError as exc:
                    self.answers.append(type(exc).__name__)
                self._stop.wait(0.05)


def request(index: int) -> tuple[str, dict[str, Any]]:
    """An embeddings request, a chat completion, or a streamed one, in turn."""
    if index % 3 == 0:
        return "/v1/embeddings", {"input": [f"text {index}", f"more {index}"]}
    chat = {"messages": [{"role": "user", "content": f"hello {index}"}], "max_tokens": 8}
    return "/v1/chat/completions", {**chat, "stream": index % 3 == 2}


async def flood(url: str) -> list[tuple[str, httpx.Response]]:
    """One burst: CONCURRENT requests to each engine at once; each answer read to the end."""
    answers: list[tuple[str, httpx.Response]] = []
    limits = httpx.Limits(max_connections=4 * CONCURRENT)

    async def one(client: httpx.AsyncClient, index: int) -> None:
        path, body = request(index)
        response = await client.post(url + path, json=body)
        answers.append((path, response))

    async with (
        httpx.AsyncClient(timeout=60, limits=limits) as client,
        anyio.create_task_group() as task_group,
    ):
        for index in range(3 * CONCURRENT):
            task_group.start_soon(one, client, index)
    return answers


def check_refusal(response: httpx.Response) -> None:
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == "rate_limit_error"
    assert error["code"] in ("engine_overloaded", "queue_timeout")
    assert error["message"]


async def test_ten_times_the_queue_gets_200s_and_fast_429s(server: ServerProcess) -> None:
    await flood(server.url)  # warm up: imports, buffers and caches the server keeps anyway
    before = rss_bytes(server)
    with HealthWatch(server.url) as health:
        bursts = [await flood(server.url) for _ in range(3)]
    after = rss_bytes(server)

    answers = [answer for burst in bursts for answer in burst]
    assert len(answers) == 3 * 3 * CONCURRENT  # none hung past the client's timeout
    statuses = {(path, response.status_code) for path, response in answers}
    assert {status for _, status in statuses} <= {200, 429}, statuses
    for path in ("/v1/embeddings", "/v1/chat/completions"):
        assert (path, 200) in statuses
        assert (path, 429) in statuses  # the bound holds: the excess was refused
    for _, response in answers:
        if response.status_code == 429:
            check_refusal(response)
        elif response.headers["content-type"].startswith("text/event-stream"):
            assert response.text.rstrip().endswith("data: [DONE]")
            assert '"error"' not in response.text

    assert health.answers
    assert set(health.answers) == {200}, health.answers
    assert after - before < 100 * 1024 * 1024, (before, after)

    async with httpx.AsyncClient(timeout=5) as client:
        status = (await client.get(server.url + "/ready")).json()
    for name in ("embeddings", "llm"):
        assert status["engines"][name]["queued"] == 0
        assert status["engines"][name]["running"] == 0
