"""Remote mode against a third-party upstream: llama-cpp-python's own OpenAI server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from aiplatform.engines.llm.gguf import resolve_model_path
from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess, llama_cpp_server

pytestmark = pytest.mark.slow

MODEL = "smollm2"
MESSAGES = [{"role": "user", "content": "Name a large animal."}]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    path = str(resolve_model_path("shipped:smollm2-135m-instruct"))
    with llama_cpp_server(path, MODEL) as url:
        yield url


@pytest.fixture(scope="module")
def gateway_and_monolith(llama_server: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    local_model = {"name": MODEL, "path": "shipped:smollm2-135m-instruct", "context_length": 1024}
    env = {**FAKE_EMBEDDINGS_ENV, "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps([local_model])}
    gateway = ServerProcess([], {**env, "AIPLATFORM_ENGINES__LLM__URL": llama_server})
    monolith = ServerProcess([], env)
    gateway.start(wait_ready=False)
    monolith.start()
    try:
        yield gateway, monolith
    finally:
        gateway.stop()
        monolith.stop()


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def test_forwarded_chat_stream_and_models(
    gateway_and_monolith: tuple[ServerProcess, ServerProcess],
) -> None:
    gateway, monolith = gateway_and_monolith
    with sdk(gateway) as client, sdk(monolith) as local:
        whole = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            max_tokens=16,  # type: ignore[arg-type]
        )
        text = whole.choices[0].message.content
        assert text
        assert whole.usage is not None
        assert whole.usage.completion_tokens > 0
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                temperature=0,
                max_tokens=16,
                stream=True,  # type: ignore[arg-type]
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert MODEL in [model.id for model in client.models.list()]
        # greedy decoding of the same GGUF with the same template: the same words in-process
        ours = local.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            max_tokens=16,  # type: ignore[arg-type]
        )
        assert ours.choices[0].message.content == text
        assert ours.usage is not None
        assert ours.usage.prompt_tokens == whole.usage.prompt_tokens
