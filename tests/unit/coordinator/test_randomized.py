"""Many tasks chat with, load and unload models at random in a budget that fits a few of them.

Checked on every schedule (each seed is one):

- no device ever holds more than its budget: the coordinator's own checker after every step,
  and a ledger of the models *actually* loaded (the fake backend's load and unload), so a load
  without a lease would be caught as well;
- every grant went to the first load in line (no higher-priority load was waiting for it);
- every eviction asked only models it may (idle ones of priority at most the load's, busy ones
  of lower priority), idle ones before busy ones, and among idle ones of one priority the least
  recently used first;
- no deadlock: every task finishes within a deadline. A request may be refused (503 when no
  memory came free in time, 409 for an unload while generating), never fail otherwise.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import anyio
import pytest

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage, ModelLoadRequest
from aiplatform.coordinator.core import Coordinator, Decision
from aiplatform.coordinator.leases import LocalLeaser
from aiplatform.coordinator.policy import evictable
from aiplatform.engines.llm import CHAT, LOAD_MODEL, UNLOAD_MODEL
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.errors import AIPlatformError

pytestmark = pytest.mark.anyio

MIB = 2**20
BUDGET_MIB = 100
#: name: (MiB, priority)
MODELS = {
    "a": (20, 0), "b": (25, 0), "c": (30, 0), "d": (35, 0), "e": (40, 1), "f": (30, 2),
}  # fmt: skip
TASKS = 16
STEPS = 10


class Ledger:
    """The models loaded for real: the fake backend's loads and unloads report here."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: set[str] = set()
        self.peak = 0

    def load(self, name: str) -> None:
        with self.lock:
            self.loaded.add(name)
            held = sum(MODELS[model][0] for model in self.loaded)
            self.peak = max(self.peak, held)
            assert held <= BUDGET_MIB, f"{sorted(self.loaded)} hold {held} MiB"

    def unload(self, name: str) -> None:
        with self.lock:
            self.loaded.discard(name)


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Ledger:
    ledger = Ledger()
    real_load, real_unload = FakeLLM.load, FakeLLM.unload

    def load(self: FakeLLM) -> None:
        ledger.load(self.name)
        real_load(self)

    def unload(self: FakeLLM) -> None:
        real_unload(self)
        ledger.unload(self.name)

    monkeypatch.setattr(FakeLLM, "load", load)
    monkeypatch.setattr(FakeLLM, "unload", unload)
    return ledger


def check_decision(decision: Decision) -> None:
    """The properties every grant and eviction must have, checked from what it saw."""
    claim = decision.claim
    if decision.kind == "grant":
        assert decision.budget is not None
        assert decision.used + decision.size <= decision.budget
        assert all(claim.priority >= waiting.priority for waiting in decision.waiting), decision
        return
    chosen = {victim.id for victim in decision.chosen}
    others = [c for c in decision.candidates if c.id not in chosen and c.model != claim.model]
    for victim in decision.chosen:
        assert evictable(victim, claim.priority), decision
        if victim.active:  # busy ones only when no idle one was left
            assert not any(not c.active and evictable(c, claim.priority) for c in others)
        else:  # least recently used first, within a priority
            assert all(
                victim.last_used <= c.last_used
                for c in others
                if not c.active and c.priority == victim.priority
            ), decision


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_schedules_keep_the_budget_and_the_rules(seed: int, ledger: Ledger) -> None:
    decisions: list[Decision] = []
    coordinator = Coordinator(
        {"cpu": BUDGET_MIB * MIB},
        wait_timeout_s=0.3,
        max_waiting=TASKS,
        check=True,
        observer=decisions.append,
    )
    models = [
        LLMModelSettings(
            name=name, backend="fake", memory_mib=mib, priority=priority, load="on_demand",
            slots=2, fake_token_delay_ms=1,
        )
        for name, (mib, priority) in MODELS.items()
    ]  # fmt: skip
    engine = LocalLLMEngine(
        LLMSettings(models=models, max_queue=TASKS * 2),
        leaser=LocalLeaser(coordinator, holder="test"),
    )
    outcomes: Counter[str] = Counter()
    names = list(MODELS)

    async def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        for _ in range(STEPS):
            name = rng.choice(names)
            try:
                roll = rng.random()
                if roll < 0.1:
                    await engine.invoke(UNLOAD_MODEL, ModelLoadRequest(model=name))
                elif roll < 0.15:
                    await engine.invoke(LOAD_MODEL, ModelLoadRequest(model=name))
                else:
                    request = ChatCompletionRequest(
                        model=name,
                        messages=[ChatMessage(role="user", content=f"task {number}")],
                        max_tokens=rng.randint(1, 8),
                    )
                    await engine.invoke(CHAT, request)
                outcomes["ok"] += 1
            except AIPlatformError as exc:
                outcomes[str(exc.status_code)] += 1
            await anyio.sleep(rng.random() * 0.01)

    async with engine:
        await engine.wait_loaded()
        with anyio.fail_after(120):  # no deadlock: every task ends
            async with anyio.create_task_group() as tg:
                for number in range(TASKS):
                    tg.start_soon(client, number)
    for decision in decisions:
        check_decision(decision)
    assert coordinator.leases() == []
    assert ledger.loaded == set()
    assert set(outcomes) <= {"ok", "409", "503"}, outcomes
    assert outcomes["ok"] > TASKS * STEPS // 2, outcomes
    evictions = [d for d in decisions if d.kind == "evict"]
    assert evictions, "the schedule never needed an eviction"
    assert ledger.peak > BUDGET_MIB // 2
