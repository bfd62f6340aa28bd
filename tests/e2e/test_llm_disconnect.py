"""A client that leaves frees its generation slot, in-process and through a gateway: a stream
at once, and a non-streamed request before its answer is ready (the gateway's cancelled
upstream call makes the pod cancel too)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess

#: One slot; an answer takes 24 tokens x 1 s, far longer than any wait below.
SLOW_SINGLE_SLOT = {
    **FAKE_EMBEDDINGS_ENV,
    "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps(
        [{"name": "slow", "backend": "fake", "slots": 1, "fake_token_delay_ms": 1000}]
    ),
}
#: A guard against waiting for the abandoned answer to end on its own (24 s), not a speed check.
GUARD_S = 12.0


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    pod = ServerProcess(["--engines", "llm"], SLOW_SINGLE_SLOT)
    pod.start()
    gateway = ServerProcess([], {**SLOW_SINGLE_SLOT, "AIPLATFORM_ENGINES__LLM__URL": pod.url})
    try:
        gateway.start()
        yield {"pod": pod, "gateway": gateway}
    finally:
        gateway.stop()
        pod.stop()


def active(server: ServerProcess) -> int:
    states = httpx.get(f"{server.url}/v1/llm/models", timeout=5).json()["data"]
    return int(sum(state["active"] for state in states))


def wait_for_active(server: ServerProcess, wanted: int) -> None:
    deadline = time.monotonic() + GUARD_S
    while (now := active(server)) != wanted:
        assert time.monotonic() < deadline, f"{now} generation(s) active, expected {wanted}"
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize("name", ["pod", "gateway"])
def test_leaving_a_non_streamed_request_frees_the_only_slot(
    servers: dict[str, ServerProcess], name: str, path: str
) -> None:
    server, pod = servers[name], servers["pod"]
    wait_for_active(pod, 0)  # the previous case's generation has ended
    if path == "/v1/chat/completions":
        body: dict[str, object] = {"messages": [{"role": "user", "content": "tell me all"}]}
    else:
        body = {"prompt": "tell me all"}
    payload = json.dumps({**body, "max_tokens": 24}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(head + payload)
        wait_for_active(pod, 1)  # the generation runs on the pod
    # The client has gone: the generation stops and the slot is free long before its 24 s end.
    wait_for_active(pod, 0)
    reply = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        timeout=GUARD_S,
    )
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 1


@pytest.mark.parametrize("name", ["pod", "gateway"])
def test_leaving_a_stream_frees_the_only_slot(servers: dict[str, ServerProcess], name: str) -> None:
    url = f"{servers[name].url}/v1/chat/completions"
    messages = [{"role": "user", "content": "tell me everything"}]
    body = {"messages": messages, "stream": True, "max_tokens": 24}
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                seen += 1
                if seen == 2:
                    break  # leave; the generation still has ~22 tokens (~22 s) to go
    # The single slot must be free again long before the abandoned answer would have ended.
    reply = httpx.post(url, json={"messages": messages, "max_tokens": 2}, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 2
