"""The LLM engine as a client of the coordinator: in-process, and as pods leasing over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import httpx
import pytest
from litestar import Litestar

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage, ModelStatesRequest
from aiplatform.coordinator.core import Coordinator, MemoryUnavailableError
from aiplatform.coordinator.leases import LocalLeaser, RemoteLeaser
from aiplatform.coordinator.routes import coordinator_routes
from aiplatform.engines.llm import CHAT, MODEL_STATES
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.errors import AIPlatformError
from aiplatform.server.errors import EXCEPTION_HANDLERS

pytestmark = pytest.mark.anyio

MIB = 2**20


def fake(name: str, *, mib: int = 60, priority: int = 0, **options: object) -> LLMModelSettings:
    options = {"load": "on_demand", **options}
    return LLMModelSettings(
        name=name, backend="fake", memory_mib=mib, priority=priority,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def ask(model: str, **options: object) -> ChatCompletionRequest:
    options = {"max_tokens": 3, **options}
    return ChatCompletionRequest(
        model=model,
        messages=[ChatMessage(role="user", content="hello")],
        **options,  # type: ignore[arg-type]
    )


async def loaded(engine: LocalLLMEngine) -> set[str]:
    states = await engine.invoke(MODEL_STATES, ModelStatesRequest())
    return {state.id for state in states.data if state.loaded}


def budget(mib: int, **options: float) -> Coordinator:
    return Coordinator({"cpu": mib * MIB}, check=True, **options)  # type: ignore[arg-type]


async def test_two_models_take_turns_in_a_budget_that_fits_one() -> None:
    coordinator = budget(100)
    engine = LocalLLMEngine(
        LLMSettings(models=[fake("a"), fake("b")]),
        leaser=LocalLeaser(coordinator, holder="here"),
    )
    async with engine:
        await engine.wait_loaded()
        assert await loaded(engine) == set()
        for model in ("a", "b", "a", "b"):
            reply = await engine.invoke(CHAT, ask(model))
            assert reply.usage.completion_tokens == 3
            assert await loaded(engine) == {model}
            state = coordinator.state()
            assert [(lease.model, lease.size_bytes) for lease in state.leases] == [
                (model, 60 * MIB)
            ]
            assert state.leases[0].holder == "here"
    assert coordinator.leases() == []  # leaving the engine released what it held


async def test_startup_models_lease_before_they_load_and_release_on_exit() -> None:
    coordinator = budget(100)
    settings = LLMSettings(models=[fake("eager", load="startup"), fake("lazy")])
    async with LocalLLMEngine(settings, leaser=LocalLeaser(coordinator, holder="h")) as engine:
        await engine.wait_loaded()
        assert await loaded(engine) == {"eager"}
        assert [lease.claim.model for lease in coordinator.leases()] == ["eager"]
    assert coordinator.leases() == []


async def test_a_high_priority_model_preempts_a_busy_one_at_its_next_safe_point() -> None:
    # the deadline only ends the wait of "low-again"; it leaves "high" ample time on a busy machine
    coordinator = budget(100, wait_timeout_s=3.0)
    settings = LLMSettings(models=[fake("low", fake_token_delay_ms=20), fake("high", priority=5)])
    engine = LocalLLMEngine(settings, leaser=LocalLeaser(coordinator, holder="h"))
    async with engine:
        await engine.wait_loaded()
        stream = engine.stream(CHAT, ask("low", stream=True, max_tokens=20))
        await anext(stream)  # a generation runs on "low"
        done: dict[str, object] = {}

        async def chat(name: str, model: str) -> None:
            try:
                done[name] = await engine.invoke(CHAT, ask(model))
            except AIPlatformError as exc:
                done[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(chat, "high", "high")
            await anyio.sleep(0.1)
            assert "high" not in done  # waits for the running generation
            assert await loaded(engine) == {"low"}
            tg.start_soon(chat, "low-again", "low")  # no new generation starts on "low"
            await anyio.sleep(0.1)
            async for _ in stream:  # the running generation finishes
                pass
        assert not isinstance(done["high"], Exception)
        # "high" stays (idle, but of higher priority): the new "low" request got no memory
        refused = done["low-again"]
        assert isinstance(refused, MemoryUnavailableError)
        assert refused.status_code == 503
        assert await loaded(engine) == {"high"}


async def test_a_load_that_fails_releases_its_lease() -> None:
    coordinator = budget(100)
    broken = LLMModelSettings(name="broken", path="/nonexistent/model.gguf", load="on_demand")
    engine = LocalLLMEngine(
        LLMSettings(models=[broken]), leaser=LocalLeaser(coordinator, holder="h")
    )
    async with engine:
        await engine.wait_loaded()
        with pytest.raises(Exception, match="does not exist"):
            await engine.invoke(CHAT, ask("broken"))
        assert coordinator.leases() == []
        assert coordinator.granted == 1


# -- pods leasing over HTTP ---------------------------------------------------------------------


def coordinator_service(coordinator: Coordinator) -> Litestar:
    return Litestar(
        route_handlers=coordinator_routes(coordinator, serve=True),
        exception_handlers=EXCEPTION_HANDLERS,
    )


@asynccontextmanager
async def pod(
    service: Litestar, name: str, models: list[LLMModelSettings], wait_s: float = 5.0
) -> AsyncIterator[LocalLLMEngine]:
    leaser = RemoteLeaser(
        "http://coordinator",
        holder=name,
        service_token=None,
        wait_timeout_s=wait_s,
        transport=httpx.ASGITransport(app=service),  # type: ignore[arg-type]
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(leaser)
        engine = await stack.enter_async_context(
            LocalLLMEngine(LLMSettings(models=models), leaser=leaser)
        )
        await engine.wait_loaded()
        yield engine


async def test_pods_take_turns_evicting_each_other_at_their_heartbeats() -> None:
    coordinator = budget(100, lease_ttl_s=0.4)  # heartbeats every 0.1 s
    service = coordinator_service(coordinator)
    with anyio.fail_after(30):
        async with (
            pod(service, "pod-a", [fake("a", load="startup")]) as pod_a,
            pod(service, "pod-b", [fake("b")]) as pod_b,
        ):
            assert await loaded(pod_a) == {"a"}
            assert [(lease.holder, lease.expires_in_s is not None)
                    for lease in coordinator.state().leases] == [("pod-a", True)]  # fmt: skip
            # pod-b's load waits until pod-a hears at its heartbeat that it must unload
            assert (await pod_b.invoke(CHAT, ask("b"))).usage.completion_tokens == 3
            assert await loaded(pod_a) == set()
            assert [lease.holder for lease in coordinator.state().leases] == ["pod-b"]
            assert (await pod_a.invoke(CHAT, ask("a"))).usage.completion_tokens == 3
            assert await loaded(pod_b) == set()
        assert coordinator.leases() == []  # the pods released their leases on the way out


async def test_a_pod_that_cannot_get_memory_in_time_gets_a_503_with_retry_after() -> None:
    coordinator = budget(100, lease_ttl_s=5)
    service = coordinator_service(coordinator)
    async with (
        pod(service, "vip", [fake("vip", priority=9, load="startup")]),
        pod(service, "other", [fake("other")], wait_s=0.3) as other,
    ):
        with pytest.raises(AIPlatformError) as refused:  # the coordinator's 503, over HTTP
            await other.invoke(CHAT, ask("other"))
        assert refused.value.status_code == 503
        assert refused.value.code == "memory_unavailable"
        assert refused.value.retry_after_s == 5.0


async def test_a_pod_whose_lease_expired_unloads_its_model() -> None:
    coordinator = budget(100, lease_ttl_s=0.3)
    service = coordinator_service(coordinator)
    async with pod(service, "p", [fake("m", load="startup")]) as engine:
        assert await loaded(engine) == {"m"}
        (lease,) = coordinator.leases()
        coordinator.release(lease.id)  # as if it had expired
        with anyio.fail_after(10):
            while await loaded(engine):  # noqa: ASYNC110 (polls the engine)
                await anyio.sleep(0.05)


async def test_a_pod_that_cannot_reach_the_coordinator_refuses_loads_with_a_503() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    leaser = RemoteLeaser(
        "http://coordinator:8000/v1",
        holder="p",
        service_token="token",
        wait_timeout_s=1,
        transport=httpx.MockTransport(unreachable),
    )
    async with leaser, LocalLLMEngine(LLMSettings(models=[fake("m")]), leaser=leaser) as engine:
        await engine.wait_loaded()
        with pytest.raises(AIPlatformError) as refused:
            await engine.invoke(CHAT, ask("m"))
        assert (refused.value.status_code, refused.value.code) == (503, "coordinator_unreachable")
        assert await loaded(engine) == set()
