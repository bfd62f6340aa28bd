"""Unloading a model while chats arrive never fails a chat: each waits for the unload and loads
the model again, and no generation ever runs on a model being freed."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest

from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.residency import Resident
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.server.app import create_app
from aiplatform.settings import Settings

pytestmark = pytest.mark.anyio

CHATS = 100


def llm(**options: object) -> LocalLLMEngine:
    model = LLMModelSettings(
        name="m",
        backend="fake",
        slots=8,
        fake_token_delay_ms=1,
        **options,  # type: ignore[arg-type]
    )
    return LocalLLMEngine(LLMSettings(models=[model], max_queue=CHATS))


async def race(
    engine: LocalLLMEngine, *, unloads: bool, chats_count: int = CHATS
) -> tuple[list[int], list[int]]:
    """Statuses of concurrent chats sent in waves, and of the unloads sent among them."""
    chats: list[int] = []
    unloaded: list[int] = []
    app = create_app(Settings(), engines={"llm": engine})
    transport = httpx.ASGITransport(app=app)
    async with (
        engine,
        httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=60) as client,
    ):
        await engine.wait_loaded()

        async def chat(index: int) -> None:
            body = {
                "model": "m",
                "max_tokens": 3,
                "messages": [{"role": "user", "content": f"question {index}"}],
            }
            chats.append((await client.post("/v1/chat/completions", json=body)).status_code)

        async def unload() -> None:
            response = await client.post("/v1/llm/models/unload", json={"model": "m"})
            unloaded.append(response.status_code)

        async def chats_in_waves() -> None:
            async with anyio.create_task_group() as waves:
                for index in range(chats_count):
                    waves.start_soon(chat, index)
                    if index % 10 == 9:
                        await anyio.sleep(0.02 + index % 7 / 1000)  # gaps: the model is idle
            group.cancel_scope.cancel()

        async def unload_again_and_again() -> None:
            while True:
                await unload()

        with anyio.fail_after(60):  # a guard against a hang, not a speed check
            async with anyio.create_task_group() as group:
                group.start_soon(chats_in_waves)
                if unloads:
                    group.start_soon(unload_again_and_again)
    return chats, unloaded


async def test_chats_racing_unloads_never_fail() -> None:
    chats, unloaded = await race(llm(), unloads=True)
    assert chats == [200] * CHATS
    assert set(unloaded) <= {200, 409}
    assert 200 in unloaded  # some unloads did free the model while chats kept coming


async def test_chats_racing_idle_unloads_never_fail() -> None:
    chats, _ = await race(llm(idle_unload_s=0.001), unloads=False, chats_count=3 * CHATS)
    assert chats == [200] * 3 * CHATS


class SlowUnload(FakeLLM):
    """A fake whose unload waits until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__("slow-unload")
        self.unloading = threading.Event()
        self.finish_unload = threading.Event()

    def unload(self) -> None:
        self.unloading.set()
        self.finish_unload.wait(10)
        super().unload()


@pytest.mark.parametrize("how", ["explicit", "idle"])
async def test_a_generation_arriving_during_an_unload_waits_and_loads_again(how: str) -> None:
    model = SlowUnload()
    with ThreadPoolExecutor(2) as executor:
        resident = Resident(model, executor, idle_unload_s=0.001, manage=True)
        resident.load_now()
        await anyio.sleep(0.01)  # idle for longer than idle_unload_s
        acquired: list[bool] = []

        async def acquire() -> None:
            await resident.acquire()
            acquired.append(model.loaded)  # what a generation would now find
            resident.release()

        with anyio.fail_after(10):  # a guard against a hang, not a speed check
            async with anyio.create_task_group() as group:
                if how == "explicit":
                    group.start_soon(resident.unload)
                else:
                    group.start_soon(resident.unload_if_idle)
                await anyio.to_thread.run_sync(model.unloading.wait, 10)
                group.start_soon(acquire)
                await anyio.sleep(0.05)
                assert acquired == []  # waits for the unload rather than start on it
                model.finish_unload.set()
        assert acquired == [True]  # loaded again before the generation started
        assert (resident.loaded, resident.active) == (True, 0)


async def test_an_idle_unload_skips_a_model_that_became_busy() -> None:
    with ThreadPoolExecutor(1) as executor:
        resident = Resident(FakeLLM("m"), executor, idle_unload_s=0.001, manage=True)
        resident.load_now()
        await anyio.sleep(0.01)
        await resident.acquire()
        assert not await resident.unload_if_idle()  # busy: no error, no unload
        resident.release()
        assert resident.loaded


async def test_an_unload_waits_for_generation_threads_winding_down() -> None:
    threads = [1]
    with ThreadPoolExecutor(1) as executor:
        resident = Resident(
            FakeLLM("m"), executor, idle_unload_s=None, manage=True, running=lambda: threads[0]
        )
        resident.load_now()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(resident.unload)
                await anyio.sleep(0.05)
                assert resident.loaded  # a thread still generates: not freed under it
                threads[0] = 0
        assert not resident.loaded


class SlowLoad:
    """A model whose load waits for a gate, counting its loads."""

    name = "slow"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.loads = 0

    def load(self) -> None:
        self.gate.wait(10)
        self.loads += 1

    def unload(self) -> None:
        pass


async def test_a_load_whose_caller_is_cancelled_still_counts_once() -> None:
    """A client that leaves while the model loads (its task cancelled, as a disconnect does)
    must not leave the model loaded but marked unloaded: the next request would load it a
    second time, doubling its memory."""
    model = SlowLoad()
    with ThreadPoolExecutor(2) as executor:
        resident = Resident(model, executor, idle_unload_s=None, manage=True)  # type: ignore[arg-type]
        first = asyncio.ensure_future(resident.acquire())
        await anyio.sleep(0.05)
        first.cancel()  # the client left mid-load
        await anyio.sleep(0.05)
        model.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        await resident.acquire()
    assert (model.loads, resident.loaded) == (1, True)
