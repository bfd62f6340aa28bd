"""Remote mode against a third-party upstream: llama-cpp-python's own OpenAI server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from aiplatform.engines.llm.gguf import resolve_model_path
from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess, free_port

pytestmark = pytest.mark.slow

MODEL = "smollm2"
MESSAGES = [{"role": "user", "content": "Name a large animal."}]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(resolve_model_path("shipped:smollm2-135m-instruct")),
        "--model_alias",
        MODEL,
        "--n_ctx",
        "1024",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise TimeoutError("llama_cpp.server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


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
