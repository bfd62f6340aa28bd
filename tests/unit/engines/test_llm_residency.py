"""Models load at startup or on demand, unload on request or when idle, and load again."""

from __future__ import annotations

import anyio
import httpx
import pytest

from aiplatform.api.chat import (
    ChatCompletionRequest,
    ChatMessage,
    ModelLoadRequest,
    ModelStatesRequest,
)
from aiplatform.engines.base import Engine
from aiplatform.engines.llm import CHAT, LLM, LOAD_MODEL, MODEL_STATES, UNLOAD_MODEL
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.errors import ConflictError, NotFoundError
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire
from aiplatform.server.app import create_app
from aiplatform.settings import Settings

pytestmark = pytest.mark.anyio


def settings(**options: object) -> LLMSettings:
    return LLMSettings(
        models=[
            LLMModelSettings(name="eager", backend="fake"),
            LLMModelSettings(name="lazy", backend="fake", load="on_demand", **options),  # type: ignore[arg-type]
        ]
    )


async def loaded(engine: Engine) -> dict[str, bool]:
    states = await engine.invoke(MODEL_STATES, ModelStatesRequest())
    return {state.id: state.loaded for state in states.data}


def ask(model: str, **options: object) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=model,
        messages=[ChatMessage(role="user", content="hello")],
        **options,  # type: ignore[arg-type]
    )


async def test_on_demand_model_loads_at_first_use_and_unloads_on_request() -> None:
    engine = LocalLLMEngine(settings())
    async with engine:
        await engine.wait_loaded()
        assert [card.id for card in await engine.list_models()] == ["eager", "lazy"]
        state = await engine.invoke(UNLOAD_MODEL, ModelLoadRequest(model="lazy"))
        assert not state.loaded  # never loaded yet
        reply = await engine.invoke(CHAT, ask("lazy", max_tokens=3))
        assert reply.usage.completion_tokens == 3
        assert (await engine.invoke(LOAD_MODEL, ModelLoadRequest(model="lazy"))).loaded
        state = await engine.invoke(UNLOAD_MODEL, ModelLoadRequest(model="lazy"))
        assert not state.loaded
        assert (await engine.invoke(CHAT, ask("lazy", max_tokens=2))).usage.completion_tokens == 2
        with pytest.raises(NotFoundError):
            await engine.invoke(LOAD_MODEL, ModelLoadRequest(model="missing"))


async def test_unload_is_refused_while_generating() -> None:
    engine = LocalLLMEngine(
        LLMSettings(models=[LLMModelSettings(name="m", backend="fake", fake_token_delay_ms=20)])
    )
    async with engine:
        stream = engine.stream(CHAT, ask("m", stream=True))
        await anext(stream)  # the generation is running
        with pytest.raises(ConflictError, match="running"):
            await engine.invoke(UNLOAD_MODEL, ModelLoadRequest(model="m"))
        await stream.aclose()  # type: ignore[attr-defined]


async def test_idle_model_is_unloaded_and_comes_back() -> None:
    engine = LocalLLMEngine(settings(idle_unload_s=0.1))
    async with engine:
        await engine.invoke(CHAT, ask("lazy", max_tokens=2))
        assert await loaded(engine) == {"eager": True, "lazy": True}
        with anyio.fail_after(10):  # a guard against a hang, not a speed check
            while (await loaded(engine))["lazy"]:  # noqa: ASYNC110 (polls the engine)
                await anyio.sleep(0.05)
        assert (await loaded(engine))["eager"]  # no idle limit: stays
        reply = await engine.invoke(CHAT, ask("lazy", max_tokens=2))
        assert reply.usage.completion_tokens == 2


async def test_load_and_unload_through_a_pod() -> None:
    async with LocalLLMEngine(settings()) as local:
        pod = create_app(Settings(), engines={"llm": local})
        remote = RemoteEngine(
            LLM,
            LLMSettings(url="http://localhost"),
            wire=HttpxWire(httpx.ASGITransport(app=pod)),
        )
        async with remote:
            assert (await remote.invoke(LOAD_MODEL, ModelLoadRequest(model="lazy"))).loaded
            assert await loaded(remote) == {"eager": True, "lazy": True}
            assert not (await remote.invoke(UNLOAD_MODEL, ModelLoadRequest(model="lazy"))).loaded
            assert await loaded(remote) == {"eager": True, "lazy": False}
            with pytest.raises(NotFoundError):
                await remote.invoke(UNLOAD_MODEL, ModelLoadRequest(model="missing"))
