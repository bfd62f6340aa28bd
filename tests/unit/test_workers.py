"""Worker processes: typed calls as msgspec bytes, errors that keep their status, a worker that
dies or is abandoned is stopped and replaced, and the queue in front of them is bounded."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import msgspec
import pytest

from aiplatform.engines.workers import WorkerPool
from aiplatform.errors import (
    EngineOverloadedError,
    InternalError,
    InvalidRequestError,
)

pytestmark = pytest.mark.anyio


class Job(msgspec.Struct, kw_only=True):
    numbers: list[int] = msgspec.field(default_factory=list)
    seconds: float = 0.0
    pid_file: str | None = None
    fail: str | None = None


class Done(msgspec.Struct, kw_only=True):
    total: int
    pid: int


def work(job: Job) -> Done:
    """Runs in a worker: burns CPU in pure Python for ``seconds``, then sums the numbers."""
    if job.pid_file is not None:
        Path(job.pid_file).write_text(str(os.getpid()))
    if job.fail == "exit":
        os._exit(3)
    if job.fail == "invalid":
        raise InvalidRequestError("numbers must not be empty", param="numbers")
    if job.fail == "bug":
        raise ZeroDivisionError("a bug")
    end = time.monotonic() + job.seconds
    spins = 0
    while time.monotonic() < end:
        spins += 1
    return Done(total=sum(job.numbers), pid=os.getpid())


def work_in_steps(job: Job, progress: Callable[[float, str], None]) -> Done:
    """Runs in a worker: reports each of five steps (a little over the report interval
    apart), then sums the numbers."""
    for step in range(5):
        progress(step / 5, f"step {step}")
        time.sleep(0.15)
    return Done(total=sum(job.numbers), pid=os.getpid())


def spam_progress(job: Job, progress: Callable[[float, str], None]) -> Done:
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < job.seconds:
        progress(elapsed / job.seconds, "spinning")
    return Done(total=0, pid=os.getpid())


@pytest.fixture
async def workers() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool("Engine 'test'", workers=1, max_queue=1, queue_timeout_s=None)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for_file(path: Path, timeout_s: float = 30.0) -> int:
    """The pid a worker wrote once its call started."""
    written = anyio.Path(path)
    with anyio.fail_after(timeout_s):
        while not (await written.exists() and await written.read_text()):  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return int(await written.read_text())


async def test_a_call_runs_in_another_process_with_typed_request_and_result(
    workers: WorkerPool,
) -> None:
    done = await workers.call(work, Job(numbers=[1, 2, 3]))
    assert isinstance(done, Done)
    assert done.total == 6
    assert done.pid != os.getpid()
    assert done.pid in workers.pids


async def test_a_call_reports_progress_while_it_runs(workers: WorkerPool) -> None:
    reports: list[tuple[float, str]] = []
    done = await workers.call(
        work_in_steps,
        Job(numbers=[1, 2]),
        progress=lambda fraction, stage: reports.append((fraction, stage)),
    )
    assert done.total == 3
    assert reports == [(step / 5, f"step {step}") for step in range(5)]


async def test_progress_reports_are_at_most_ten_a_second(workers: WorkerPool) -> None:
    reports: list[float] = []
    await workers.call(
        spam_progress, Job(seconds=0.5), progress=lambda fraction, _: reports.append(fraction)
    )
    assert 2 <= len(reports) <= 7  # 0.5 s of reports sent as fast as possible
    assert reports == sorted(reports)


async def test_errors_keep_their_status_and_a_bug_is_a_500(workers: WorkerPool) -> None:
    with pytest.raises(InvalidRequestError) as invalid:
        await workers.call(work, Job(fail="invalid"))
    assert (invalid.value.status_code, invalid.value.param) == (400, "numbers")
    with pytest.raises(InternalError) as bug:
        await workers.call(work, Job(fail="bug"))
    assert bug.value.code == "worker_error"
    assert "ZeroDivisionError" not in bug.value.message  # logged, not sent to the client
    assert (await workers.call(work, Job(numbers=[4]))).total == 4


async def test_a_worker_that_dies_fails_its_call_and_is_replaced(workers: WorkerPool) -> None:
    first = (await workers.call(work, Job())).pid
    with pytest.raises(InternalError) as died:
        await workers.call(work, Job(fail="exit"))
    assert died.value.status_code == 500
    assert died.value.code == "worker_died"
    # The exit code itself (3) is not asserted: when another part of the process reaps the
    # child first, asyncio can only report 255.
    assert "exited unexpectedly" in died.value.message
    after = await workers.call(work, Job(numbers=[5]))
    assert after.total == 5
    assert after.pid != first


async def test_a_cancelled_call_stops_its_worker(workers: WorkerPool, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(workers.call, work, Job(seconds=120, pid_file=str(pid_file)))
        pid = await wait_for_file(pid_file)
        assert alive(pid)
        task_group.cancel_scope.cancel()
    assert not alive(pid)  # killed and reaped, not left burning CPU
    assert pid not in workers.pids
    assert (await workers.call(work, Job(numbers=[7]))).total == 7


async def test_a_full_pool_refuses_at_once(workers: WorkerPool, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(workers.call, work, Job(seconds=120, pid_file=str(pid_file)))
        await wait_for_file(pid_file)
        task_group.start_soon(workers.call, work, Job())  # waits for the only worker
        with anyio.fail_after(10):
            while workers.queued < 1:  # noqa: ASYNC110 (polls the pool's counters)
                await anyio.sleep(0.01)
        assert workers.running == 1
        with pytest.raises(EngineOverloadedError) as refused:
            await workers.call(work, Job())
        assert refused.value.code == "engine_overloaded"
        task_group.cancel_scope.cancel()


async def test_a_call_that_waits_past_its_deadline_is_dropped(tmp_path: Path) -> None:
    pool = WorkerPool("Engine 'test'", workers=1, max_queue=4, queue_timeout_s=0.2)
    await pool.start()
    pid_file = tmp_path / "pid"
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(pool.call, work, Job(seconds=120, pid_file=str(pid_file)))
            await wait_for_file(pid_file)
            with pytest.raises(EngineOverloadedError) as dropped:
                await pool.call(work, Job(pid_file=str(tmp_path / "never")))
            assert dropped.value.code == "queue_timeout"
            task_group.cancel_scope.cancel()
    finally:
        await pool.close()
    assert not (tmp_path / "never").exists()


async def test_only_importable_functions_run_in_workers(workers: WorkerPool) -> None:
    def local(job: Job) -> Done:
        return Done(total=0, pid=0)

    with pytest.raises(TypeError, match="module-level"):
        await workers.call(local, Job())


async def test_closing_fails_running_and_waiting_calls_and_leaves_no_worker(
    tmp_path: Path,
) -> None:
    pool = WorkerPool("Engine 'test'", workers=1, max_queue=1, queue_timeout_s=None)
    await pool.start()
    errors: list[BaseException] = []

    async def call(job: Job) -> None:
        try:
            await pool.call(work, job)
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(call, Job(seconds=30, pid_file=str(tmp_path / "pid")))
        busy = await wait_for_file(tmp_path / "pid")
        task_group.start_soon(call, Job(numbers=[1]))  # waits for the only worker
        await anyio.sleep(0.2)
        await pool.close()
    assert [type(error).__name__ for error in errors] == ["EngineUnavailableError"] * 2
    assert all(error.status_code == 503 for error in errors)  # type: ignore[attr-defined]
    assert pool.pids == []
    assert not alive(busy)
