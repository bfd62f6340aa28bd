"""The LLM engine answers the same in every mode: chat, streaming, completions, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator

import msgspec
import pytest

from aiplatform.api.chat import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    FunctionDefinition,
    JsonSchemaFormat,
    ResponseFormat,
    StreamOptions,
    Tool,
)
from aiplatform.engines.base import Engine
from aiplatform.engines.llm import CHAT, COMPLETE
from aiplatform.engines.llm.engine import LocalLLMEngine, make_model
from aiplatform.engines.llm.generation import LLMModel
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.errors import InvalidRequestError, NotFoundError
from aiplatform.testing import MODES, in_mode
from tests.models import tiny_causal_lm
from tests.support import ServerProcess

pytestmark = pytest.mark.anyio

LLM_BACKENDS = [
    "fake",
    pytest.param("llama_cpp", marks=pytest.mark.slow),
    pytest.param("llama_cpp_batched", marks=pytest.mark.slow),
    pytest.param("transformers", marks=pytest.mark.slow),
]
MODEL = "test-llm"


@pytest.fixture(scope="session", params=LLM_BACKENDS)
def llm_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def model_settings(llm_backend: str, tmp_path_factory: pytest.TempPathFactory) -> LLMModelSettings:
    common: dict[str, object] = {"name": MODEL, "context_length": 512, "slots": 2}
    if llm_backend == "fake":
        return LLMModelSettings(backend="fake", **common)  # type: ignore[arg-type]
    if llm_backend == "transformers":
        folder = tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))
        return LLMModelSettings(backend="transformers", path=str(folder), **common)  # type: ignore[arg-type]
    batched = llm_backend == "llama_cpp_batched"
    return LLMModelSettings(
        path="shipped:smollm2-135m-instruct",
        batched_decoding=batched,
        **common,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def llm_settings(model_settings: LLMModelSettings) -> LLMSettings:
    return LLMSettings(models=[model_settings])


@pytest.fixture(scope="session")
def shared_model(model_settings: LLMModelSettings) -> Iterator[LLMModel]:
    model = make_model(model_settings)
    model.load()
    yield model
    model.unload()


@pytest.fixture(scope="session")
def llm_pod(
    model_settings: LLMModelSettings, pod_auth_env: Callable[[], dict[str, str]]
) -> Iterator[ServerProcess]:
    models = json.dumps([msgspec.to_builtins(model_settings)])
    env = {**pod_auth_env(), "AIPLATFORM_ENGINES__LLM__MODELS": models}
    server = ServerProcess(["--engines", "llm"], env)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def reference(llm_settings: LLMSettings, shared_model: LLMModel) -> AsyncIterator[Engine]:
    async with LocalLLMEngine(llm_settings, models=[shared_model]) as engine:
        yield engine


@pytest.fixture(params=MODES)
async def llm(
    request: pytest.FixtureRequest, llm_settings: LLMSettings, shared_model: LLMModel
) -> AsyncIterator[Engine]:
    local = LocalLLMEngine(llm_settings, models=[shared_model])
    pod = lambda: request.getfixturevalue("llm_pod")  # noqa: E731 (started on demand)
    async with in_mode(request.param, local, llm_settings, pod) as engine:
        yield engine


def ask(text: str, **options: object) -> ChatCompletionRequest:
    defaults: dict[str, object] = {"temperature": 0.0, "seed": 7, "max_tokens": 24}
    return ChatCompletionRequest(
        messages=[ChatMessage(role="user", content=text)],
        **(defaults | options),  # type: ignore[arg-type]
    )


async def test_chat_matches_reference(llm: Engine, reference: Engine) -> None:
    request = ask("What is the capital of France?")
    got, want = await llm.invoke(CHAT, request), await reference.invoke(CHAT, request)
    assert got.choices[0].message.content == want.choices[0].message.content
    assert got.choices[0].message.content
    assert got.usage == want.usage
    assert got.usage.total_tokens == got.usage.prompt_tokens + got.usage.completion_tokens
    assert got.model == MODEL
    assert got.choices[0].finish_reason in ("stop", "length")


async def test_stream_equals_non_stream(llm: Engine) -> None:
    request = ask("Name three colours.")
    whole = await llm.invoke(CHAT, request)
    streamed = msgspec.structs.replace(
        request, stream=True, stream_options=StreamOptions(include_usage=True)
    )
    chunks = [chunk async for chunk in llm.stream(CHAT, streamed)]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage
    assert len({chunk.id for chunk in chunks}) == 1


async def test_max_tokens_and_stop(llm: Engine) -> None:
    short = await llm.invoke(CHAT, ask("Tell me a long story about a fox.", max_tokens=3))
    assert short.usage.completion_tokens <= 3
    assert short.choices[0].finish_reason == "length"
    full = (await llm.invoke(CHAT, ask("Tell me a long story about a fox."))).choices[0]
    text = full.message.content or ""
    assert len(text) >= 8
    stop = text[5:8]
    cut = await llm.invoke(CHAT, ask("Tell me a long story about a fox.", stop=[stop]))
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def grammar_or_refusal(backend: str) -> bool:
    """Grammar-held output needs llama.cpp (the fake imitates it); transformers refuses it."""
    return backend != "transformers"


async def test_json_schema_output_is_valid(llm: Engine, llm_backend: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    request = ask(
        "Give a city and its population as JSON.",
        max_tokens=60,
        response_format=ResponseFormat(
            type="json_schema", json_schema=JsonSchemaFormat(name="city", json_schema=schema)
        ),
    )
    if not grammar_or_refusal(llm_backend):
        with pytest.raises(InvalidRequestError, match="llama_cpp"):
            await llm.invoke(CHAT, request)
        return
    answer = json.loads((await llm.invoke(CHAT, request)).choices[0].message.content or "")
    assert isinstance(answer["city"], str)
    assert isinstance(answer["population"], int)


async def test_required_tool_call_is_parsed(llm: Engine, llm_backend: str) -> None:
    tool = Tool(
        function=FunctionDefinition(
            name="get_weather",
            description="Current weather in a city",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        )
    )
    request = ask(
        "What is the weather in Paris?", max_tokens=60, tools=[tool], tool_choice="required"
    )
    if not grammar_or_refusal(llm_backend):
        with pytest.raises(InvalidRequestError, match="llama_cpp"):
            await llm.invoke(CHAT, request)
        return
    choice = (await llm.invoke(CHAT, request)).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


async def test_completions(llm: Engine, reference: Engine) -> None:
    request = CompletionRequest(prompt="Once upon a time", max_tokens=8, temperature=0.0, seed=1)
    got, want = await llm.invoke(COMPLETE, request), await reference.invoke(COMPLETE, request)
    assert got.choices[0].text == want.choices[0].text
    assert got.usage == want.usage
    assert got.usage.completion_tokens <= 8
    streamed = msgspec.structs.replace(request, stream=True)
    text = "".join([c.choices[0].text async for c in llm.stream(COMPLETE, streamed)])
    assert text == got.choices[0].text


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (ask("hi", max_tokens=100_000), "context"),
        (ask("word " * 600), "context"),
        (ask("hi", n=2), "n=2"),
        (ask("", max_tokens=4), "no content"),
        (ask("hi", stop=[""]), "stop"),
        (ask("hi", tool_choice="required"), "no tools"),
        (
            ask(
                "hi",
                response_format=ResponseFormat(
                    type="json_schema",
                    json_schema=JsonSchemaFormat(
                        json_schema={"type": "object", "properties": {"a": {"type": "integr"}}}
                    ),
                ),
            ),
            "invalid at properties/a/type",
        ),
        (
            ask(
                "hi",
                tools=[Tool(function=FunctionDefinition(name="f", parameters={"type": 5}))],
            ),
            "JSON schema is invalid",
        ),
    ],
    ids=[
        "max-tokens-too-large",
        "prompt-too-long",
        "n",
        "empty-content",
        "empty-stop",
        "tool-choice",
        "invalid-schema",
        "invalid-tool-schema",
    ],
)
async def test_bad_requests(llm: Engine, request_: ChatCompletionRequest, needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        await llm.invoke(CHAT, request_)


async def test_context_overflow_names_the_numbers(llm: Engine) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await llm.invoke(CHAT, ask("hi", max_tokens=100_000))
    assert caught.value.code == "context_length_exceeded"
    assert "512" in caught.value.message
    assert "100000" in caught.value.message


async def test_unknown_model(llm: Engine) -> None:
    with pytest.raises(NotFoundError):
        await llm.invoke(CHAT, ask("hi", model="gpt-17"))


async def test_models(llm: Engine) -> None:
    assert [card.id for card in await llm.list_models()] == [MODEL]


async def test_chat_logprobs(llm: Engine, reference: Engine) -> None:
    request = ask("Count to five.", max_tokens=6, logprobs=True, top_logprobs=2)
    got, want = await llm.invoke(CHAT, request), await reference.invoke(CHAT, request)
    content = got.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None
    assert len(content) == got.usage.completion_tokens
    if "\ufffd" not in (got.choices[0].message.content or ""):
        assert "".join(item.token for item in content) == got.choices[0].message.content
    for item in content:
        assert item.logprob <= 0.0
        assert len(item.top_logprobs) == 2
        assert item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob
    # greedy: the chosen token is the likeliest one
    assert all(item.logprob == pytest.approx(item.top_logprobs[0].logprob) for item in content)
    assert got.choices[0].logprobs == want.choices[0].logprobs
    streamed = msgspec.structs.replace(request, stream=True)
    chunks = [c async for c in llm.stream(CHAT, streamed)]
    tokens = [
        item.token
        for c in chunks
        if c.choices and c.choices[0].logprobs is not None
        for item in c.choices[0].logprobs.content or ()
    ]
    assert tokens == [item.token for item in content]


async def test_completion_logprobs(llm: Engine) -> None:
    request = CompletionRequest(prompt="One, two,", max_tokens=5, temperature=0.0, logprobs=3)
    result = await llm.invoke(COMPLETE, request)
    logprobs = result.choices[0].logprobs
    assert logprobs is not None
    assert len(logprobs.tokens) == result.usage.completion_tokens
    if "\ufffd" not in result.choices[0].text:  # no character split over tokens
        assert "".join(logprobs.tokens) == result.choices[0].text
    assert all(len(top) <= 3 for top in logprobs.top_logprobs)
    assert logprobs.text_offset[0] == 0
