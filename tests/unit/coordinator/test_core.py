"""The coordinator's rules, one at a time: budgets, LRU eviction, priorities, deadlines, TTLs."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from aiplatform.coordinator.core import (
    BudgetExceededError,
    Claim,
    Coordinator,
    InvariantError,
    LeaseRecord,
    MemoryUnavailableError,
)
from aiplatform.errors import EngineOverloadedError, NotFoundError

pytestmark = pytest.mark.anyio

MIB = 2**20


def claim(model: str, mib: int, *, priority: int = 0, measured: bool = True) -> Claim:
    return Claim(
        holder="test", model=model, device="cpu", size=mib * MIB, measured=measured,
        priority=priority,
    )  # fmt: skip


def coordinator(budget_mib: int | None = 100, **options: float) -> Coordinator:
    return Coordinator({"cpu": None if budget_mib is None else budget_mib * MIB}, check=True,
                       **options)  # type: ignore[arg-type]  # fmt: skip


class Asked:
    """Records which models were asked to unload."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def callback(self, model: str) -> Callable[[], None]:
        return lambda: self.models.append(model)


def used_mib(c: Coordinator) -> float:
    (cpu,) = [d for d in c.state().devices if d.device == "cpu"]
    return cpu.used_bytes / MIB


async def test_grants_within_the_budget_and_records_devices_without_one() -> None:
    c = coordinator()
    a = await c.acquire(claim("a", 60))
    gpu = await c.acquire(Claim("test", "g", "cuda:0", 10**12, measured=True))
    assert used_mib(c) == 60
    state = c.state()
    assert {lease.model for lease in state.leases} == {"a", "g"}
    assert state.loaded_models == ["a", "g"]
    assert [d.budget_bytes for d in state.devices if d.device == "cuda:0"] == [None]
    assert c.release(a.id)
    assert c.release(gpu.id)
    assert not c.release(a.id)
    assert used_mib(c) == 0


async def test_idle_models_are_asked_to_unload_least_recently_used_first() -> None:
    c, asked = coordinator(), Asked()
    leases: dict[str, LeaseRecord] = {}
    for name in ("a", "b", "c"):
        leases[name] = await c.acquire(claim(name, 30), on_release=asked.callback(name))
    for name in ("b", "a", "c"):  # b is now the least recently used, then a
        c.touch(leases[name].id, active=1)
        c.touch(leases[name].id, active=0)
        await anyio.sleep(0.01)

    async def release_when_asked() -> None:
        while True:
            for name in list(asked.models):
                if leases[name].id in {lease.id for lease in c.leases()}:
                    c.release(leases[name].id)
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_when_asked)
        await c.acquire(claim("d", 40))  # needs 30 more: one model
        assert asked.models == ["b"]
        await c.acquire(claim("e", 50))  # needs 50 more: two models
        assert asked.models == ["b", "a", "c"]
        tg.cancel_scope.cancel()


async def test_a_higher_priority_load_preempts_a_busy_model_once_its_requests_end() -> None:
    c, asked = coordinator(), Asked()
    low = await c.acquire(claim("low", 80), on_release=asked.callback("low"))
    c.touch(low.id, active=1)  # a request runs on it
    granted: list[str] = []

    async def load(name: str, mib: int, priority: int) -> None:
        await c.acquire(claim(name, mib, priority=priority))
        granted.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(load, "high", 80, 5)
        await anyio.sleep(0.05)
        assert asked.models == ["low"]  # asked at once, unloads when its request ends
        tg.start_soon(load, "small", 10, 0)  # fits in what is free, but the high load is first
        await anyio.sleep(0.05)
        assert granted == []
        c.touch(low.id, active=0)
        c.release(low.id)  # the holder unloaded it
    assert granted == ["high", "small"]


async def test_a_busy_model_of_equal_priority_is_not_preempted() -> None:
    c, asked = coordinator(wait_timeout_s=0.2), Asked()
    busy = await c.acquire(claim("busy", 80), on_release=asked.callback("busy"))
    c.touch(busy.id, active=1)
    with pytest.raises(MemoryUnavailableError) as refused:
        await c.acquire(claim("other", 80))
    assert refused.value.status_code == 503
    assert refused.value.headers["Retry-After"] == "5"
    assert asked.models == []
    assert c.state().waiting == []


async def test_an_idle_model_of_higher_priority_stays_for_a_lower_one() -> None:
    c, asked = coordinator(), Asked()
    await c.acquire(claim("vip", 80, priority=5), on_release=asked.callback("vip"))
    with pytest.raises(MemoryUnavailableError):
        await c.acquire(claim("other", 80), wait_s=0.1)
    assert asked.models == []


async def test_waiting_is_bounded() -> None:
    c = coordinator(max_waiting=2, wait_timeout_s=5)
    await c.acquire(claim("held", 100))
    async with anyio.create_task_group() as tg:
        for name in ("w1", "w2"):
            tg.start_soon(lambda n=name: c.acquire(claim(n, 50), wait_s=5))  # type: ignore[misc]
        await anyio.sleep(0.05)
        assert [w.model for w in c.state().waiting] == ["w1", "w2"]
        with pytest.raises(EngineOverloadedError) as refused:
            await c.acquire(claim("w3", 50))
        assert refused.value.status_code == 429
        assert refused.value.code == "memory_queue_full"
        tg.cancel_scope.cancel()
    assert c.state().waiting == []


async def test_a_model_larger_than_the_budget_is_refused_at_once() -> None:
    with pytest.raises(BudgetExceededError) as refused:
        await coordinator().acquire(claim("huge", 101))
    assert refused.value.status_code == 503
    assert refused.value.code == "memory_budget_exceeded"


async def test_an_estimate_is_granted_with_headroom_until_measured() -> None:
    c = coordinator(1000, estimate_headroom=2.0)
    lease = await c.acquire(claim("m", 100, measured=False))
    assert lease.size == 200 * MIB
    c.resize(lease.id, 150 * MIB)
    assert used_mib(c) == 150
    assert c.state().leases[0].measured
    clamped = await coordinator(300).acquire(claim("big", 200, measured=False))
    assert clamped.size == 300 * MIB  # at most the whole budget


async def test_a_load_measured_over_its_grant_makes_idle_models_unload() -> None:
    c, asked = coordinator(estimate_headroom=1.0), Asked()
    other = await c.acquire(claim("other", 50), on_release=asked.callback("other"))
    grown = await c.acquire(claim("grown", 40, measured=False))
    c.resize(grown.id, 70 * MIB)  # 120 MiB in a budget of 100: over it until "other" unloads
    assert asked.models == ["other"]
    with pytest.raises(MemoryUnavailableError):  # nothing is granted while over
        await c.acquire(claim("tiny", 1), wait_s=0.1)
    c.release(other.id)
    await c.acquire(claim("tiny", 1), wait_s=0.1)


async def test_a_remote_lease_expires_without_heartbeats() -> None:
    c = coordinator()
    held = await c.acquire(claim("pod", 100), ttl_s=0.3)
    c.touch(held.id, active=1)  # busy: a load of equal priority does not evict it
    waited = anyio.Event()

    async def wait_for_it() -> None:
        await c.acquire(claim("next", 100), wait_s=5)
        waited.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_it)
        for _ in range(3):  # heartbeats keep it well past its ttl
            await anyio.sleep(0.15)
            assert not c.heartbeat(held.id, size=None, active=1, idle_s=0).releasing
        assert not waited.is_set()
        with anyio.fail_after(5):
            await waited.wait()  # heartbeats stopped: it expired, and the waiter got the memory
    assert c.find(held.id) is None
    with pytest.raises(NotFoundError):
        c.heartbeat(held.id, size=None, active=0, idle_s=0)


async def test_a_remote_holder_learns_at_its_heartbeat_that_it_must_release() -> None:
    c = coordinator()
    held = await c.acquire(claim("pod", 100), ttl_s=10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: c.acquire(claim("next", 100), wait_s=5))
        await anyio.sleep(0.05)
        reply = c.heartbeat(held.id, size=90 * MIB, active=0, idle_s=3)
        assert reply.releasing
        assert reply.size == 90 * MIB
        assert [w.model for w in c.state().waiting] == ["next"]
        c.release(held.id)
    assert [lease.model for lease in c.state().leases] == ["next"]


async def test_the_checker_catches_a_device_over_its_budget() -> None:
    c = coordinator()
    lease = await c.acquire(claim("a", 60))
    other = await c.acquire(claim("b", 10))
    lease.size = 120 * MIB  # as a bug in the accounting would
    with pytest.raises(InvariantError):
        c.release(other.id)
