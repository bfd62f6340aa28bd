"""Generations run side by side on slots, and a consumer that leaves frees its slot."""

from __future__ import annotations

import anyio
import pytest

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage
from aiplatform.engines.llm import CHAT
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.settings import LLMSettings

pytestmark = pytest.mark.anyio


def streaming(text: str) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        messages=[ChatMessage(role="user", content=text)], stream=True, temperature=0.0
    )


async def test_streams_interleave_instead_of_queueing() -> None:
    model = FakeLLM("m", slots=4, token_delay_s=0.01, answer_tokens=20)
    model.load()
    order: list[int] = []
    async with LocalLLMEngine(LLMSettings(), models=[model]) as engine:

        async def consume(index: int) -> None:
            async for chunk in engine.stream(CHAT, streaming(f"question {index}")):
                if chunk.choices and chunk.choices[0].delta.content:
                    order.append(index)

        async with anyio.create_task_group() as task_group:
            for index in range(4):
                task_group.start_soon(consume, index)
    assert sorted(set(order)) == [0, 1, 2, 3]
    # while the first stream to start was still producing, every other stream produced too
    last_of_first = max(pos for pos, index in enumerate(order) if index == order[0])
    assert set(order[:last_of_first]) == {0, 1, 2, 3}


async def test_leaving_a_stream_cancels_its_generation_and_frees_the_slot() -> None:
    model = FakeLLM("m", slots=1, token_delay_s=0.02, answer_tokens=200)
    model.load()
    async with LocalLLMEngine(LLMSettings(), models=[model]) as engine:
        stream = engine.stream(CHAT, streaming("a long answer please"))
        seen = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += 1
                if seen == 3:
                    break
        await stream.aclose()  # type: ignore[attr-defined]
        # the only slot is free again: a second generation runs to its end
        with anyio.fail_after(30):  # a guard against a hang, not a speed check
            whole = await engine.invoke(
                CHAT,
                ChatCompletionRequest(
                    messages=[ChatMessage(role="user", content="short")], max_tokens=2
                ),
            )
    assert whole.usage.completion_tokens == 2
    assert model.produced < 200  # the abandoned generation stopped early
