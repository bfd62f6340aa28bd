"""A client that leaves a stream frees its generation slot, in-process and through a gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess

SLOW_SINGLE_SLOT = {
    **FAKE_EMBEDDINGS_ENV,
    "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps(
        [{"name": "slow", "backend": "fake", "slots": 1, "fake_token_delay_ms": 300}]
    ),
}


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
                    break  # leave; the generation still has ~22 tokens (~6.6 s) to go
    # The single slot must be free again long before the abandoned answer would have ended.
    reply = httpx.post(url, json={"messages": messages, "max_tokens": 2}, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] == 2
