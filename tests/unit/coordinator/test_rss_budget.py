"""Real models on CPU: two GGUF models in a budget that fits one keep the process's resident
memory under the budget (over what it held before any load) while requests alternate."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage, ModelStatesRequest
from aiplatform.coordinator.core import Coordinator
from aiplatform.coordinator.footprint import measured_unload, resident_bytes
from aiplatform.coordinator.leases import LocalLeaser
from aiplatform.engines.llm import CHAT, MODEL_STATES
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MIB = 2**20
#: SmolLM2-135M takes about 140 MiB loaded this way, Gemma 3 270M about 360: one fits, not both.
BUDGET_MIB = 420


def model(name: str, path: str, **options: object) -> LLMModelSettings:
    return LLMModelSettings(
        name=name, path=path, load="on_demand", slots=1, context_length=512, threads=2,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


class Sampler:
    """The process's resident memory, read every few milliseconds on a thread of its own."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            rss = resident_bytes()
            assert rss is not None
            self.peak = max(self.peak, rss)
            time.sleep(0.002)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


async def test_alternating_models_stay_within_the_budget() -> None:
    coordinator = Coordinator({"cpu": BUDGET_MIB * MIB}, check=True)
    settings = LLMSettings(
        models=[
            model("smol", "shipped:smollm2-135m-instruct"),
            model("gemma", "shipped:gemma3-270m", chat_template="gemma"),
        ]
    )
    engine = LocalLLMEngine(settings, leaser=LocalLeaser(coordinator, holder="test"))
    measured_unload("cpu", gc.collect)  # what earlier tests freed goes back first
    baseline = resident_bytes()
    assert baseline is not None
    sampler = Sampler()
    turns: list[set[str]] = []
    with sampler.sampling():
        async with engine:
            await engine.wait_loaded()
            for name in ("smol", "gemma", "smol", "gemma", "smol", "gemma"):
                request = ChatCompletionRequest(
                    model=name,
                    messages=[ChatMessage(role="user", content="Name a colour.")],
                    max_tokens=8,
                )
                reply = await engine.invoke(CHAT, request)
                assert reply.usage.completion_tokens > 0
                states = await engine.invoke(MODEL_STATES, ModelStatesRequest())
                turns.append({state.id for state in states.data if state.loaded})
                assert [lease.claim.model for lease in coordinator.leases()] == [name]
    assert turns == [{"smol"}, {"gemma"}] * 3
    sizes = {lease.model: lease.size_bytes for lease in coordinator.state().leases}
    assert sizes == {}
    over = (sampler.peak - baseline) / MIB
    assert over <= BUDGET_MIB, f"resident memory rose {over:.0f} MiB over {BUDGET_MIB} MiB"
    assert over > BUDGET_MIB / 4  # the models did load: the sampler saw them
