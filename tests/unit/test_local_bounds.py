"""Bounded queues of in-process engines: refused at once past ``max_queue``, dropped at the
deadline before running, never refusing the engine's own background work; counted in status."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import anyio
import msgspec
import pytest

from aiplatform.api.openai import ModelCard
from aiplatform.engines import threads as threads_module
from aiplatform.engines.backlog import Backlog, background_work
from aiplatform.engines.base import EngineKind, Operation
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import EngineSettings
from aiplatform.engines.threads import BUFFERED_ITEMS, ThreadPool
from aiplatform.errors import (
    EngineOverloadedError,
    EngineUnavailableError,
    RateLimitError,
    RequestTimeoutError,
    status_for_type,
)

pytestmark = pytest.mark.anyio


class Gate:
    """A blocking call that holds its thread until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def __call__(self, value: int) -> int:
        self.calls.append(value)
        self.entered.set()
        self.opened.wait(10)
        return value * 2


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110 (polls counters that threads change)
            await anyio.sleep(0.005)


def pool(max_queue: int = 2, queue_timeout_s: float | None = None) -> ThreadPool:
    return ThreadPool(
        "Engine 'test'", workers=1, max_queue=max_queue, queue_timeout_s=queue_timeout_s
    )


def test_overload_error_is_a_429_with_retry_after() -> None:
    error = EngineOverloadedError("busy", retry_after_s=2.2)
    assert isinstance(error, RateLimitError)
    assert error.status_code == 429
    assert error.code == "engine_overloaded"
    assert status_for_type(error.error_type) == 429
    assert error.headers == {"Retry-After": "3"}
    assert EngineOverloadedError("busy", retry_after_s=0.01).headers == {"Retry-After": "1"}


def test_backlog_counts_free_workers_as_room() -> None:
    backlog = Backlog("Engine 'test'", workers=2, max_queue=1, queue_timeout_s=None)
    tickets = [backlog.admit() for _ in range(3)]  # two start at once, one waits
    with pytest.raises(EngineOverloadedError):
        backlog.admit()
    assert backlog.start(tickets[0])
    assert backlog.start(tickets[1])
    assert (backlog.queued, backlog.running) == (1, 2)
    with pytest.raises(EngineOverloadedError):
        backlog.admit()
    backlog.finish(tickets[0])
    backlog.admit()  # a worker is free again
    assert (backlog.queued, backlog.running) == (2, 1)


async def test_a_full_pool_refuses_at_once_and_serves_what_it_admitted() -> None:
    threads, gate = pool(max_queue=2), Gate()
    results: list[int] = []

    async def call(value: int) -> None:
        results.append(await threads.run(gate, value))

    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(call, 1)
            await wait_until(gate.entered.is_set)
            task_group.start_soon(call, 2)
            task_group.start_soon(call, 3)
            await wait_until(lambda: threads.queued == 2)
            assert threads.running == 1
            with pytest.raises(EngineOverloadedError) as refused:
                await threads.run(gate, 4)
            assert refused.value.code == "engine_overloaded"
            assert refused.value.retry_after_s is not None
            assert refused.value.retry_after_s >= 1
            gate.opened.set()
    finally:
        threads.shutdown()
    assert sorted(results) == [2, 4, 6]
    assert 4 not in gate.calls
    assert (threads.queued, threads.running) == (0, 0)


async def test_a_call_that_waits_past_its_deadline_is_dropped_before_it_runs() -> None:
    threads, gate = pool(queue_timeout_s=0.1), Gate()
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(threads.run, gate, 1)
            await wait_until(gate.entered.is_set)
            with pytest.raises(EngineOverloadedError) as dropped:
                await threads.run(gate, 2)
            assert dropped.value.code == "queue_timeout"
            assert dropped.value.status_code == 429
            assert threads.queued == 0
            gate.opened.set()
        assert await threads.run(gate, 3) == 6  # the pool still serves
    finally:
        threads.shutdown()
    assert gate.calls == [1, 3]


async def test_a_caller_that_leaves_takes_its_call_off_the_queue() -> None:
    threads, gate = pool(max_queue=1), Gate()
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(threads.run, gate, 1)
            await wait_until(gate.entered.is_set)
            with anyio.move_on_after(0.05):
                await threads.run(gate, 2)
            assert threads.queued == 0
            task_group.start_soon(threads.run, gate, 3)  # the place it left is free again
            await wait_until(lambda: threads.queued == 1)
            gate.opened.set()
    finally:
        threads.shutdown()
    assert gate.calls == [1, 3]


async def test_iterators_are_bounded_and_have_a_deadline() -> None:
    threads, gate = pool(max_queue=1, queue_timeout_s=0.1), Gate()

    def count(cancelled: threading.Event) -> Iterator[int]:
        yield from range(3)

    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(threads.run, gate, 1)
            await wait_until(gate.entered.is_set)
            with pytest.raises(EngineOverloadedError) as dropped:
                async for _ in threads.iterate(count):
                    pass
            assert dropped.value.code == "queue_timeout"
            gate.opened.set()
        assert [item async for item in threads.iterate(count)] == [0, 1, 2]
        assert (threads.queued, threads.running) == (0, 0)
    finally:
        threads.shutdown()


async def test_an_iterator_runs_only_a_bounded_way_ahead_of_a_slow_consumer() -> None:
    threads = pool(max_queue=1, queue_timeout_s=None)
    produced: list[int] = []
    stopped = threading.Event()

    def endless(cancelled: threading.Event) -> Iterator[int]:
        try:
            for number in range(10 * BUFFERED_ITEMS):
                produced.append(number)
                yield number
        finally:
            stopped.set()

    try:
        async with aclosing(threads.iterate(endless)) as items:
            assert await anext(items) == 0
            await anyio.sleep(0.3)  # the consumer reads nothing: the producer must wait
            assert len(produced) <= BUFFERED_ITEMS + 2
            assert [await anext(items) for _ in range(5)] == [1, 2, 3, 4, 5]
        # leaving early frees the waiting producer (and its thread) at once
        await wait_until(stopped.is_set)
        assert len(produced) < 10 * BUFFERED_ITEMS
        assert (threads.queued, threads.running) == (0, 0)
    finally:
        threads.shutdown()


async def test_a_reader_that_takes_nothing_for_too_long_ends_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads_module, "READER_STALL_S", 0.3)
    threads = pool(max_queue=1, queue_timeout_s=None)

    def endless(cancelled: threading.Event) -> Iterator[int]:
        yield from range(10 * BUFFERED_ITEMS)

    try:
        async with aclosing(threads.iterate(endless)) as items:
            assert await anext(items) == 0
            await anyio.sleep(0.8)  # connected, reading nothing
            # the thread (and its slot) was freed; the reader gets what was made, then an error
            await wait_until(lambda: threads.running == 0)
            with pytest.raises(RequestTimeoutError) as stalled:
                async for _ in items:
                    pass
        assert stalled.value.code == "reader_stalled"
    finally:
        threads.shutdown()


async def test_background_work_is_never_refused_nor_dropped() -> None:
    threads, gate = pool(max_queue=1, queue_timeout_s=0.05), Gate()
    results: list[int] = []

    async def background_call(value: int) -> None:
        with background_work():
            results.append(await threads.run(gate, value))

    try:
        async with anyio.create_task_group() as task_group:
            for value in range(4):
                task_group.start_soon(background_call, value)
            await wait_until(lambda: threads.queued == 3)
            await anyio.sleep(0.1)  # past the deadline requests would have
            gate.opened.set()
    finally:
        threads.shutdown()
    assert sorted(results) == [0, 2, 4, 6]


# -- an engine's status ------------------------------------------------------------------------


class Ping(msgspec.Struct):
    value: int


PING: Operation[Ping, Ping, Any] = Operation(
    name="ping", method="POST", path="/v1/test/ping", request=Ping, response=Ping
)


class GatedEngine(LocalEngine):
    def __init__(self, gate: Gate, settings: EngineSettings) -> None:
        super().__init__(GATED, settings=settings)
        self._gate = gate
        self.bind(PING, self.ping)

    def load(self) -> None:
        pass

    async def list_models(self) -> list[ModelCard]:
        return []

    async def ping(self, request: Ping) -> Ping:
        return Ping(value=await self.run_blocking(self._gate, request.value))


GATED: EngineKind[EngineSettings] = EngineKind(
    name="gated",
    summary="a test engine whose calls wait for a gate",
    operations=(PING,),
    settings_type=EngineSettings,
    build_local=lambda settings, _: GatedEngine(Gate(), settings),
)


async def test_status_shows_queued_and_running_calls() -> None:
    gate = Gate()
    engine = GatedEngine(gate, EngineSettings(max_queue=2, queue_timeout_s=None))
    async with engine, anyio.create_task_group() as task_group:
        await engine.wait_loaded()
        idle = await engine.status()
        assert (idle.ready, idle.queued, idle.running) == (True, 0, 0)
        for value in range(3):
            task_group.start_soon(engine.invoke, PING, Ping(value=value))
        await wait_until(lambda: engine._threads is not None and engine._threads.queued == 2)
        busy = await engine.status()
        assert (busy.queued, busy.running) == (2, 1)
        with pytest.raises(EngineOverloadedError):
            await engine.invoke(PING, Ping(value=9))
        gate.opened.set()
    assert 9 not in gate.calls


class SlowLoading(GatedEngine):
    def load(self) -> None:
        self._gate.opened.wait(10)


async def test_a_request_waits_for_a_load_no_longer_than_its_deadline() -> None:
    gate = Gate()
    engine = SlowLoading(gate, EngineSettings(queue_timeout_s=0.2))
    try:
        async with engine:
            with pytest.raises(EngineUnavailableError) as loading:
                await engine.invoke(PING, Ping(value=1))
            assert (loading.value.status_code, loading.value.code) == (503, "engine_loading")
            assert loading.value.headers == {"Retry-After": "5"}
            gate.opened.set()
            await engine.wait_loaded()
            assert (await engine.invoke(PING, Ping(value=2))).value == 4
    finally:
        gate.opened.set()


async def test_an_iterator_that_fails_or_is_left_frees_its_place() -> None:
    threads = pool(max_queue=1)

    def broken(cancelled: threading.Event) -> Iterator[int]:
        raise ValueError("no model")

    def endless(cancelled: threading.Event) -> Iterator[int]:
        count = 0
        while not cancelled.is_set():
            yield count
            count += 1

    try:
        with pytest.raises(ValueError, match="no model"):
            async for _ in threads.iterate(broken):
                pass
        async for item in threads.iterate(endless):
            if item == 3:
                break
        await wait_until(lambda: threads.running == 0)
        assert threads.queued == 0
    finally:
        threads.shutdown()


class Upload:
    """Stands in for a large argument, such as an upload's audio."""


async def test_a_call_dropped_from_the_queue_lets_go_of_its_arguments() -> None:
    threads, gate = pool(queue_timeout_s=0.1), Gate()
    upload = Upload()
    held = weakref.ref(upload)
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(threads.run, gate, 1)
            await wait_until(gate.entered.is_set)
            refused = False
            try:
                await threads.run(lambda _: None, upload)
            except EngineOverloadedError:  # its traceback holds the call's frame: not kept
                refused = True
            assert refused
            del upload
            gc.collect()
            # the only thread is still busy: the dropped call's work item is still queued
            assert held() is None
            gate.opened.set()
    finally:
        threads.shutdown()


async def test_calls_waiting_when_the_pool_shuts_down_fail_with_503() -> None:
    threads, gate = pool(max_queue=2), Gate()

    def count(cancelled: threading.Event) -> Iterator[int]:
        yield from range(3)

    async def iterate() -> list[int]:
        return [item async for item in threads.iterate(count)]

    errors: list[BaseException] = []

    async def expect_failure(call: Any, *args: Any) -> None:
        try:
            await call(*args)
        except Exception as exc:
            errors.append(exc)

    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(threads.run, gate, 1)
            await wait_until(gate.entered.is_set)
            task_group.start_soon(expect_failure, threads.run, gate, 2)
            task_group.start_soon(expect_failure, iterate)
            await wait_until(lambda: threads.queued == 2)
            threads.shutdown()
            gate.opened.set()
            with anyio.fail_after(10):  # neither waits for ever
                await wait_until(lambda: len(errors) == 2)
    finally:
        gate.opened.set()
    assert sorted(type(error).__name__ for error in errors) == ["EngineUnavailableError"] * 2
    assert gate.calls == [1]
