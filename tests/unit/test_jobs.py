"""The durable job runner: what it acknowledges survives a restart, a job whose engine is
unavailable waits and is retried, the queue is bounded, deadlines and cancellations stop jobs,
and a job that was running when the process stopped runs again."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from aiplatform.engines.jobs import FINISHED, Job, JobContext, JobRunner
from aiplatform.engines.jobs.store import MAX_ATTEMPTS, RETENTION_S
from aiplatform.errors import (
    EngineOverloadedError,
    EngineUnavailableError,
    NotFoundError,
    RateLimitError,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[JobContext], Awaitable[Any]]


def make_runner(path: Path, handler: Handler, **bounds: Any) -> JobRunner:
    options: dict[str, Any] = {"max_queued": 8, "timeout_s": 60.0, "retry_s": 0.01, **bounds}
    return JobRunner(path / "jobs.sqlite3", {"test.echo": handler}, **options)


@asynccontextmanager
async def serving(runner: JobRunner) -> AsyncIterator[JobRunner]:
    runner.open()
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(runner.serve)
            yield runner
            task_group.cancel_scope.cancel()  # a stop: running jobs are left as they are
    finally:
        runner.close()


async def wait_for(runner: JobRunner, job_id: str, *statuses: str, owner: str = "me") -> Job:
    with anyio.fail_after(10):
        while True:
            job = await runner.get(owner, job_id)
            if job.status in statuses:
                return job
            await anyio.sleep(0.01)


async def echo(context: JobContext) -> Any:
    return {"echo": msgspec.json.decode(context.payload), "attempt": context.job.attempts}


async def test_an_acknowledged_job_survives_a_restart_and_runs(tmp_path: Path) -> None:
    first = make_runner(tmp_path, echo)
    first.open()  # accepting jobs, not yet running them
    job = await first.submit(
        "test.echo", "me", msgspec.json.encode({"n": 7}), summary={"items": 1}, subject="s1"
    )
    first.close()
    async with serving(make_runner(tmp_path, echo)) as second:
        done = await wait_for(second, job.id, *FINISHED)
    assert done.status == "succeeded"
    assert done.result == {"echo": {"n": 7}, "attempt": 1}
    assert (done.summary, done.subject, done.progress) == ({"items": 1}, "s1", 1.0)
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at


async def test_jobs_are_found_only_through_their_owner(tmp_path: Path) -> None:
    async with serving(make_runner(tmp_path, echo)) as runner:
        job = await runner.submit("test.echo", "me", b"1")
        await wait_for(runner, job.id, "succeeded")
        with pytest.raises(NotFoundError) as refused:
            await runner.get("someone-else", job.id)
    assert (refused.value.status_code, refused.value.code) == (404, "job_not_found")


async def test_a_job_whose_engine_is_unavailable_is_deferred_then_retried(
    tmp_path: Path,
) -> None:
    outages = 3
    seen: list[int] = []

    async def flaky(context: JobContext) -> Any:
        seen.append(context.job.attempts)
        if len(seen) <= outages:
            raise EngineUnavailableError("Engine 'embeddings' is loading")
        return "stored"

    runner = make_runner(tmp_path, flaky, retry_s=3600.0)
    async with serving(runner):
        job = await runner.submit("test.echo", "me", b"{}")
        waiting = await wait_for(runner, job.id, "deferred", *FINISHED)
        assert waiting.status == "deferred"
        assert waiting.message == "Engine 'embeddings' is loading"
        assert waiting.not_before > waiting.created_at
        assert waiting.error is None
        runner.retry_s = 0.01  # for the retries to come; the hour-long wait stands
        assert await runner.retry_deferred() == 1
        done = await wait_for(runner, job.id, *FINISHED)
    assert (done.status, done.result, done.attempts) == ("succeeded", "stored", outages + 1)
    assert seen == [1, 2, 3, 4]


async def test_a_job_whose_engine_is_overloaded_is_deferred(tmp_path: Path) -> None:
    async def overloaded(context: JobContext) -> Any:
        raise EngineOverloadedError("Engine 'embeddings' is overloaded", retry_after_s=1.0)

    runner = make_runner(tmp_path, overloaded, retry_s=3600.0)
    async with serving(runner):
        job = await runner.submit("test.echo", "me", b"{}")
        waiting = await wait_for(runner, job.id, "deferred", *FINISHED)
    assert (waiting.status, waiting.error) == ("deferred", None)


async def test_the_queue_bound_refuses_with_429(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, echo, max_queued=2)
    runner.open()  # nothing runs: every job waits
    try:
        first = await runner.submit("test.echo", "me", b"1")
        await runner.submit("test.echo", "other", b"2")
        with pytest.raises(RateLimitError) as refused:
            await runner.submit("test.echo", "me", b"3")
        error = refused.value
        assert (error.status_code, error.error_type, error.code) == (
            429,
            "rate_limit_error",
            "too_many_jobs",
        )
        await runner.cancel("me", first.id)  # a place frees up
        await runner.submit("test.echo", "me", b"3")
    finally:
        runner.close()


async def test_a_running_job_past_its_deadline_fails(tmp_path: Path) -> None:
    stopped = anyio.Event()

    async def endless(context: JobContext) -> Any:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    async with serving(make_runner(tmp_path, endless)) as runner:
        job = await runner.submit("test.echo", "me", b"{}", timeout_s=0.2)
        done = await wait_for(runner, job.id, *FINISHED)
    assert stopped.is_set()
    assert done.status == "failed"
    assert done.error is not None
    assert (done.error["type"], done.error["code"]) == ("server_error", "job_deadline_exceeded")
    assert done.error["message"]


async def test_a_waiting_job_past_its_deadline_fails_without_running(tmp_path: Path) -> None:
    started: list[str] = []
    release = anyio.Event()

    async def blocking(context: JobContext) -> Any:
        started.append(context.job.id)
        await release.wait()

    async with serving(make_runner(tmp_path, blocking, max_running=1)) as runner:
        first = await runner.submit("test.echo", "me", b"{}")
        await wait_for(runner, first.id, "running")
        late = await runner.submit("test.echo", "me", b"{}", timeout_s=0.1)
        expired = await wait_for(runner, late.id, *FINISHED)
        release.set()
        await wait_for(runner, first.id, "succeeded")
    assert expired.status == "failed"
    assert expired.error is not None
    assert expired.error["code"] == "job_deadline_exceeded"
    assert (expired.attempts, started) == (0, [first.id])


async def test_a_cancelled_waiting_job_never_runs(tmp_path: Path) -> None:
    started: list[str] = []

    async def record(context: JobContext) -> Any:
        started.append(context.job.id)

    runner = make_runner(tmp_path, record)
    runner.open()
    cancelled = await runner.submit("test.echo", "me", b"{}")
    assert (await runner.cancel("me", cancelled.id)).status == "cancelled"
    runner.close()
    async with serving(make_runner(tmp_path, record)) as runner:
        kept = await runner.submit("test.echo", "me", b"{}")
        await wait_for(runner, kept.id, "succeeded")
        assert (await runner.get("me", cancelled.id)).status == "cancelled"
    assert started == [kept.id]


async def test_a_running_job_is_cancelled(tmp_path: Path) -> None:
    running = anyio.Event()
    interrupted = anyio.Event()

    async def endless(context: JobContext) -> Any:
        running.set()
        try:
            await anyio.sleep_forever()
        finally:
            interrupted.set()

    async with serving(make_runner(tmp_path, endless)) as runner:
        job = await runner.submit("test.echo", "me", b"{}")
        with anyio.fail_after(10):
            await running.wait()
        await runner.cancel("me", job.id)
        assert interrupted.is_set()  # cancel waits for the run to stop
        done = await runner.get("me", job.id)
    assert (done.status, done.error) == ("cancelled", None)


async def test_work_on_a_thread_stops_when_its_job_is_cancelled(tmp_path: Path) -> None:
    steps: list[int] = []
    going = threading.Event()
    finished_loop = threading.Event()

    def compute(context: JobContext) -> None:
        try:
            for step in range(1_000_000):
                steps.append(step)
                context.progress(step / 1_000_000, f"step {step}")
                going.set()
                time.sleep(0.001)
        finally:
            finished_loop.set()

    async def heavy(context: JobContext) -> Any:
        await anyio.to_thread.run_sync(compute, context)

    async with serving(make_runner(tmp_path, heavy)) as runner:
        job = await runner.submit("test.echo", "me", b"{}")
        assert await anyio.to_thread.run_sync(going.wait, 10)
        live = await runner.get("me", job.id)
        assert live.status == "running"
        assert (live.message or "").startswith("step ")
        await runner.cancel("me", job.id)
        assert await anyio.to_thread.run_sync(finished_loop.wait, 10)
        done = await runner.get("me", job.id)
    assert done.status == "cancelled"


async def test_a_job_running_when_the_process_stopped_runs_again(tmp_path: Path) -> None:
    reported = anyio.Event()

    async def first_run(context: JobContext) -> Any:
        await context.report(0.5, "half way", result={"done": 3})
        reported.set()
        await anyio.sleep_forever()

    first = make_runner(tmp_path, first_run)
    async with serving(first):
        job = await first.submit("test.echo", "me", b"{}")
        with anyio.fail_after(10):
            await reported.wait()
    # the process stopped mid-run: the file still says running

    resumed: list[Any] = []

    async def second_run(context: JobContext) -> Any:
        resumed.append((context.job.attempts, context.job.result, context.job.progress))
        return {"done": 6}

    second = make_runner(tmp_path, second_run)
    second.open()
    assert (await second.get("me", job.id)).status == "queued"
    second.close()
    async with serving(make_runner(tmp_path, second_run)) as third:
        done = await wait_for(third, job.id, *FINISHED)
    assert resumed == [(2, {"done": 3}, 0.5)]
    assert (done.status, done.result) == ("succeeded", {"done": 6})


async def test_forgetting_a_subject_drops_its_jobs_and_stops_the_running_one(
    tmp_path: Path,
) -> None:
    running = anyio.Event()
    interrupted = anyio.Event()

    async def endless(context: JobContext) -> Any:
        running.set()
        try:
            await anyio.sleep_forever()
        finally:
            interrupted.set()

    async with serving(make_runner(tmp_path, endless)) as runner:
        active = await runner.submit("test.echo", "me", b"{}", subject="col_1")
        waiting = await runner.submit("test.echo", "me", b"{}", subject="col_1")
        other = await runner.submit("test.echo", "me", b"{}", subject="col_2")
        with anyio.fail_after(10):
            await running.wait()
        await runner.forget("me", "col_1")
        with anyio.fail_after(10):
            await interrupted.wait()
        for gone in (active, waiting):
            with pytest.raises(NotFoundError):
                await runner.get("me", gone.id)
        assert (await runner.get("me", other.id)).status in ("queued", "running")


async def test_a_handler_error_fails_the_job_in_openai_shape(tmp_path: Path) -> None:
    async def broken(context: JobContext) -> Any:
        await context.report(0.25, result={"partial": True})
        raise ValueError("the table has no rows")

    async with serving(make_runner(tmp_path, broken)) as runner:
        job = await runner.submit("test.echo", "me", b"{}")
        done = await wait_for(runner, job.id, *FINISHED)
    assert done.status == "failed"
    assert done.error == {
        "message": "The job failed: the table has no rows",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert (done.result, done.progress) == ({"partial": True}, 0.25)


def stored(runner: JobRunner, job_id: str, column: str) -> Any:
    with sqlite3.connect(runner.store.path) as db:
        row = db.execute(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row[0]


async def test_a_finished_job_keeps_its_result_not_its_payload(tmp_path: Path) -> None:
    async with serving(make_runner(tmp_path, echo)) as runner:
        job = await runner.submit("test.echo", "me", msgspec.json.encode({"n": 7}))
        done = await wait_for(runner, job.id, *FINISHED)
    assert done.result == {"echo": {"n": 7}, "attempt": 1}
    assert stored(runner, job.id, "payload") == b""


async def test_finished_jobs_are_deleted_after_the_retention(tmp_path: Path) -> None:
    async with serving(make_runner(tmp_path, echo)) as runner:
        old = await runner.submit("test.echo", "me", b"{}")
        await wait_for(runner, old.id, *FINISHED)
    with sqlite3.connect(runner.store.path) as db:
        db.execute("UPDATE jobs SET finished_at = finished_at - ?", (RETENTION_S + 1,))
    async with serving(make_runner(tmp_path, echo)) as runner:
        with pytest.raises(NotFoundError):
            await runner.get("me", old.id)


async def test_a_job_that_keeps_stopping_the_process_is_not_run_again(tmp_path: Path) -> None:
    runs: list[int] = []

    async def hangs(context: JobContext) -> Any:
        runs.append(context.job.attempts)
        await anyio.sleep_forever()

    job_id = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        async with serving(make_runner(tmp_path, hangs)) as runner:
            if not job_id:
                job_id = (await runner.submit("test.echo", "me", b"{}")).id
            with anyio.fail_after(10):
                while len(runs) < attempt:  # noqa: ASYNC110 (the handler has started)
                    await anyio.sleep(0.01)
        # the process stopped mid-run, every time
    async with serving(make_runner(tmp_path, hangs)) as runner:
        failed = await runner.get("me", job_id)
    assert runs == list(range(1, MAX_ATTEMPTS + 1))
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["code"] == "job_crashed"
