"""The official ``openai`` SDK, unmodified: chat, streaming, JSON schema, tools and completions,
against a live monolith and a live split deployment (LLM in its own pod), with equal answers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess

LLM_BACKENDS = ["fake", pytest.param("llama_cpp", marks=pytest.mark.slow)]
MODEL = "chat-model"


def llm_env(backend: str) -> dict[str, str]:
    model = {"name": MODEL, "backend": backend, "context_length": 1024, "slots": 2}
    if backend == "llama_cpp":
        model["path"] = "shipped:smollm2-135m-instruct"
    return {**FAKE_EMBEDDINGS_ENV, "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps([model])}


@pytest.fixture(scope="module", params=LLM_BACKENDS)
def servers(request: pytest.FixtureRequest) -> Iterator[dict[str, ServerProcess]]:
    env = llm_env(request.param)
    monolith = ServerProcess([], env)
    pod = ServerProcess(["--engines", "llm"], env)
    started = [monolith, pod]
    try:
        monolith.start()
        pod.start()
        gateway = ServerProcess([], {**env, "AIPLATFORM_ENGINES__LLM__URL": pod.url})
        started.append(gateway)
        gateway.start()
        yield {"monolith": monolith, "split": gateway}
    finally:
        for server in started:
            server.stop()


def each(servers: dict[str, ServerProcess]) -> Iterator[openai.OpenAI]:
    for server in servers.values():
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk:
            yield sdk


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_same_in_both_modes(servers: dict[str, ServerProcess]) -> None:
    answers = []
    for sdk in each(servers):
        result = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            seed=3,
            max_tokens=20,  # type: ignore[arg-type]
        )
        assert result.choices[0].message.role == "assistant"
        assert result.usage is not None
        assert result.usage.completion_tokens > 0
        answers.append((result.choices[0].message.content, result.usage.total_tokens))
    assert answers[0] == answers[1]
    assert answers[0][0]


def test_streaming_same_as_whole(servers: dict[str, ServerProcess]) -> None:
    texts = []
    for sdk in each(servers):
        whole = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            seed=3,
            max_tokens=20,  # type: ignore[arg-type]
        )
        stream = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            seed=3,
            max_tokens=20,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole.choices[0].message.content
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]
        texts.append(text)
    assert texts[0] == texts[1]


def test_json_schema_and_tools(servers: dict[str, ServerProcess]) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confident": {"type": "boolean"}},
        "required": ["answer", "confident"],
    }
    tool = {
        "type": "function",
        "function": {
            "name": "lookup_capital",
            "parameters": {
                "type": "object",
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
            },
        },
    }
    outputs = []
    for sdk in each(servers):
        structured = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            max_tokens=60,  # type: ignore[arg-type]
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        )
        value = json.loads(structured.choices[0].message.content or "")
        assert isinstance(value["answer"], str)
        assert isinstance(value["confident"], bool)
        called = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            max_tokens=60,  # type: ignore[arg-type]
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "lookup_capital"}},  # type: ignore[list-item]
        )
        call = called.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert called.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "lookup_capital"  # type: ignore[union-attr]
        assert "country" in json.loads(call.function.arguments)  # type: ignore[union-attr]
        outputs.append((value, call.function.arguments))  # type: ignore[union-attr]
    assert outputs[0] == outputs[1]


def test_completions(servers: dict[str, ServerProcess]) -> None:
    texts = []
    for sdk in each(servers):
        result = sdk.completions.create(
            model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
        )
        assert result.choices[0].finish_reason in ("stop", "length")
        texts.append(result.choices[0].text)
        streamed = sdk.completions.create(
            model=MODEL,
            prompt="The capital of France is",
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        assert "".join(chunk.choices[0].text for chunk in streamed) == result.choices[0].text
    assert texts[0] == texts[1]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6}, 400, "1024"),
        ({"messages": [{"role": "user", "content": "x"}], "model": "nope"}, 404, "nope"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 5}, 400, "temperature"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "a"}},
            },
            400,
            "schema",
        ),
    ],
    ids=[
        "empty-messages",
        "unknown-role",
        "context-overflow",
        "unknown-model",
        "temperature",
        "schema-missing",
    ],
)
def test_bad_input_in_both_modes(
    servers: dict[str, ServerProcess], body: dict[str, object], status: int, needle: str
) -> None:
    import httpx

    for server in servers.values():
        response = httpx.post(f"{server.url}/v1/chat/completions", json={"model": MODEL} | body)
        assert response.status_code == status, response.text
        assert needle in response.json()["error"]["message"]
