"""The micro-batcher merges concurrent requests, keeps each one's slice, isolates failures,
and bounds its queue: past ``max_queue`` a request is refused at once, past its deadline it is
dropped before it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import anyio
import pytest

from aiplatform.engines.backlog import background_work
from aiplatform.engines.batching import MicroBatcher
from aiplatform.errors import EngineOverloadedError, EngineUnavailableError

pytestmark = pytest.mark.anyio


class Recorder:
    """A model stand-in: doubles numbers, remembers every batch, can be told to fail."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [item * 2 for item in items]


@asynccontextmanager
async def running(batcher: MicroBatcher[int, int]) -> AsyncIterator[None]:
    async with anyio.create_task_group() as task_group:
        await task_group.start(batcher.run)
        yield
        task_group.cancel_scope.cancel()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(delay_s=0.01)


async def submit_all(batcher: MicroBatcher[int, int], requests: list[list[int]]) -> list[object]:
    results: list[object] = [None] * len(requests)

    async def one(index: int) -> None:
        try:
            results[index] = await batcher.submit(requests[index])
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as task_group:
        for index in range(len(requests)):
            task_group.start_soon(one, index)
    return results


async def test_concurrent_submits_share_batches(recorder: Recorder) -> None:
    batcher = MicroBatcher(recorder, max_batch_size=8, max_wait_s=0.02)
    async with running(batcher):
        results = await submit_all(batcher, [[i] for i in range(20)])
    assert results == [[i * 2] for i in range(20)]
    assert len(recorder.batches) < 20  # merged
    assert all(len(batch) <= 8 for batch in recorder.batches)
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(20))


async def test_large_request_is_split_and_reassembled(recorder: Recorder) -> None:
    batcher = MicroBatcher(recorder, max_batch_size=4, max_wait_s=0.0)
    async with running(batcher):
        result = await batcher.submit(list(range(11)))
    assert result == [i * 2 for i in range(11)]
    assert all(len(batch) <= 4 for batch in recorder.batches)


async def test_a_failing_request_fails_alone(recorder: Recorder) -> None:
    batcher = MicroBatcher(recorder, max_batch_size=16, max_wait_s=0.02)
    async with running(batcher):
        results = await submit_all(batcher, [[1], [-1], [3]])
    assert results[0] == [2]
    assert isinstance(results[1], ValueError)
    assert results[2] == [6]


async def test_cancelled_request_is_skipped() -> None:
    slow = Recorder(delay_s=0.2)
    batcher = MicroBatcher(slow, max_batch_size=1, max_wait_s=0.0)
    async with running(batcher), anyio.create_task_group() as task_group:
        task_group.start_soon(batcher.submit, [1])  # occupies the model
        await anyio.sleep(0.05)
        with anyio.move_on_after(0.01):
            await batcher.submit([99])  # gives up while queued
        assert await batcher.submit([2]) == [4]
    assert [99] not in slow.batches


async def test_batches_form_while_the_model_is_busy() -> None:
    slow = Recorder(delay_s=0.1)
    batcher = MicroBatcher(slow, max_batch_size=32, max_wait_s=0.0)
    async with running(batcher):
        results = await submit_all(batcher, [[i] for i in range(10)])
    assert results == [[i * 2] for i in range(10)]
    # the first request runs alone; the nine that queued behind it run together
    assert len(slow.batches) <= 3


async def test_submit_before_run_is_unavailable(recorder: Recorder) -> None:
    batcher = MicroBatcher(recorder, max_batch_size=4, max_wait_s=0.0)
    with pytest.raises(EngineUnavailableError):
        await batcher.submit([1])


async def test_pending_requests_fail_cleanly_on_shutdown() -> None:
    slow = Recorder(delay_s=5.0)
    batcher = MicroBatcher(slow, max_batch_size=1, max_wait_s=0.0)
    outcomes: list[BaseException] = []

    async def waiter(item: int) -> None:
        try:
            await batcher.submit([item])
        except EngineUnavailableError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as outer, anyio.create_task_group() as inner:
        await inner.start(batcher.run)
        outer.start_soon(waiter, 1)
        outer.start_soon(waiter, 2)
        await anyio.sleep(0.05)
        inner.cancel_scope.cancel()
    assert len(outcomes) == 2


def test_batch_size_must_be_positive(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(recorder, max_batch_size=0, max_wait_s=0.0)


# -- bounds ------------------------------------------------------------------------------------


async def test_a_full_queue_refuses_at_once_with_retry_after() -> None:
    slow = Recorder(delay_s=0.3)
    batcher = MicroBatcher(slow, max_batch_size=1, max_wait_s=0.0, max_queue=2)
    async with running(batcher), anyio.create_task_group() as task_group:
        task_group.start_soon(batcher.submit, [1])  # runs
        await wait_until(lambda: batcher.running == 1)
        task_group.start_soon(batcher.submit, [2])  # these two wait
        task_group.start_soon(batcher.submit, [3])
        await wait_until(lambda: batcher.queued == 2)
        with pytest.raises(EngineOverloadedError) as refused:
            await batcher.submit([4])
        assert refused.value.status_code == 429
        assert refused.value.code == "engine_overloaded"
        assert refused.value.headers["Retry-After"].isdigit()
    assert [4] not in slow.batches
    assert sorted(item for batch in slow.batches for item in batch) == [1, 2, 3]


async def test_a_large_request_counts_once_against_the_bound(recorder: Recorder) -> None:
    batcher = MicroBatcher(recorder, max_batch_size=2, max_wait_s=0.0, max_queue=1)
    async with running(batcher):
        assert await batcher.submit(list(range(9))) == [i * 2 for i in range(9)]


async def test_a_request_past_its_deadline_is_dropped_before_it_runs() -> None:
    slow = Recorder(delay_s=0.4)
    batcher = MicroBatcher(slow, max_batch_size=1, max_wait_s=0.0, queue_timeout_s=0.1)
    async with running(batcher), anyio.create_task_group() as task_group:
        task_group.start_soon(batcher.submit, [1])
        await wait_until(lambda: batcher.running == 1)
        with pytest.raises(EngineOverloadedError) as dropped:
            await batcher.submit([2])
        assert dropped.value.code == "queue_timeout"
        assert batcher.queued == 0
    assert [2] not in slow.batches


async def test_the_engines_own_work_is_never_refused() -> None:
    slow = Recorder(delay_s=0.05)
    batcher = MicroBatcher(slow, max_batch_size=1, max_wait_s=0.0, max_queue=1)

    async def own_work(item: int) -> list[int]:
        with background_work():
            return await batcher.submit([item])

    async with running(batcher):
        results = await gather_all([partial(own_work, i) for i in range(6)])
    assert results == [[i * 2] for i in range(6)]


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110 (polls the batcher's counters)
            await anyio.sleep(0.005)


async def gather_all(calls: list[Callable[[], Awaitable[list[int]]]]) -> list[list[int]]:
    results: list[list[int]] = [[] for _ in calls]

    async def one(index: int) -> None:
        results[index] = await calls[index]()

    async with anyio.create_task_group() as task_group:
        for index in range(len(calls)):
            task_group.start_soon(one, index)
    return results
