"""The job runner: durable background jobs for any engine kind.

A job is stored (payload included) before :meth:`JobRunner.submit` returns, so an acknowledged
job is never lost. A scheduler task starts the oldest waiting jobs, at most ``max_running`` at
once, each in its own cancel scope bounded by the job's deadline. A handler that raises
:class:`~aiplatform.errors.EngineUnavailableError` (an engine it needs is loading or
unreachable) or a :class:`~aiplatform.errors.RateLimitError` (it is overloaded) has its job
deferred and retried after ``retry_s``, not failed; any other error
fails the job with that error in OpenAI's shape. Jobs that were running when the process
stopped are queued again when the runner opens, so handlers must be able to resume (skip work
already done, read what they reported so far from ``context.job.result``).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc

from aiplatform.engines.jobs.model import Job, JobCancelledError, error_object
from aiplatform.engines.jobs.store import JobStore
from aiplatform.errors import (
    AIPlatformError,
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    RateLimitError,
)

__all__ = ["Handler", "JobContext", "JobRunner"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest wait for a cancelled run to stop before :meth:`JobRunner.cancel` answers.
CANCEL_WAIT_S = 10.0
_KEEP: Any = object()


class JobContext:
    """What a handler gets: its job, the payload, and ways to report progress and to notice
    that it should stop."""

    def __init__(self, runner: JobRunner, job: Job, payload: bytes) -> None:
        self.job = job
        self.payload = payload
        self._runner = runner
        self._stop = threading.Event()

    @property
    def stopping(self) -> bool:
        """Whether the job was cancelled or its deadline has passed."""
        return self._stop.is_set() or time.time() >= self.job.deadline_at

    def check(self) -> None:
        """Raise :class:`JobCancelledError` once the job should stop. Thread-safe: long
        computations on worker threads call it between steps."""
        if self.stopping:
            raise JobCancelledError(self.job.id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Note progress in memory (seen by :meth:`JobRunner.get` at once, stored with the
        next :meth:`report` or at the end), then :meth:`check`. Thread-safe."""
        self.job.progress = min(max(float(fraction), 0.0), 1.0)
        self.job.message = message
        self.check()

    async def report(
        self, fraction: float, message: str | None = None, *, result: Any = _KEEP
    ) -> None:
        """Store progress (and, when given, the result so far: what a resumed run reads back)."""
        self.progress(fraction, message)
        if result is not _KEEP:
            self.job.result = result
        await self._runner.blocking(self._runner.store.report, self.job)


Handler = Callable[[JobContext], Awaitable[Any]]


@dataclass(slots=True)
class _Run:
    job: Job
    context: JobContext | None = None
    scope: anyio.CancelScope | None = None
    cancelled: bool = False
    done: anyio.Event = field(default_factory=anyio.Event)

    def cancel(self) -> None:
        self.cancelled = True
        if self.context is not None:
            self.context._stop.set()
        if self.scope is not None:
            self.scope.cancel()


class JobRunner:
    """Durable jobs in one SQLite file. :meth:`open` (blocking) before :meth:`serve`;
    :meth:`close` (blocking) after it returns."""

    def __init__(
        self,
        path: str | Path,
        handlers: Mapping[str, Handler],
        *,
        max_queued: int,
        max_running: int = 1,
        timeout_s: float,
        retry_s: float = 5.0,
        resume_interrupted: bool = True,
        storage_key: str | None = None,
    ) -> None:
        """``resume_interrupted=False`` fails the jobs a stopped process left running
        (``job_interrupted``) instead of running them again: for handlers that cannot pick up
        where they stopped. ``storage_key``: the key the job file is encrypted with (None:
        plain SQLite)."""
        if max_queued < 1 or max_running < 1 or timeout_s <= 0 or retry_s < 0:
            raise ValueError("job runner bounds must be positive")
        self.store = JobStore(path, key=storage_key)
        self._handlers = dict(handlers)
        self.max_queued = max_queued
        self.max_running = max_running
        self.timeout_s = timeout_s
        #: Seconds a deferred job waits before it is tried again.
        self.retry_s = retry_s
        self.resume_interrupted = resume_interrupted
        self._runs: dict[str, _Run] = {}
        self._wakeup: anyio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        requeued = self.store.open(resume=self.resume_interrupted)
        if requeued:
            logger.info("queued again %d job(s) interrupted by a stop", len(requeued))

    def close(self) -> None:
        self.store.close()

    async def serve(self) -> None:
        """Start jobs as slots free up, until cancelled (jobs running then are left running
        in the file and queued again by the next :meth:`open`)."""
        async with anyio.create_task_group() as task_group:
            while True:
                self._wakeup = anyio.Event()
                try:
                    delay = await self._schedule(task_group)
                except Exception:  # the file is unreadable for now: look again in a while
                    logger.exception("the job runner could not read its jobs")
                    delay = max(self.retry_s, 1.0)
                with anyio.move_on_after(delay):
                    await self._wakeup.wait()

    async def _schedule(self, task_group: anyio.abc.TaskGroup) -> float:
        """Fail the waiting jobs past their deadline, start those that may start; the seconds
        until the next look."""
        now = time.time()
        for job_id in await self.blocking(self.store.expire, now, _deadline_error()):
            logger.warning("job %s passed its deadline before it could run", job_id)
        while len(self._runs) < self.max_running:
            job = await self.blocking(self.store.claim, now)
            if job is None:
                break
            self._runs[job.id] = run = _Run(job)
            task_group.start_soon(self._run, run)
        wake_at = await self.blocking(self.store.next_wake, now)
        return math.inf if wake_at is None else max(0.0, wake_at - time.time())

    # -- the API engines call ------------------------------------------------------------------

    async def submit(
        self,
        type_name: str,
        owner: str,
        payload: bytes,
        *,
        summary: Any = None,
        subject: str | None = None,
        timeout_s: float | None = None,
    ) -> Job:
        """Store a job and queue it; it is durable when this returns. A 429 when
        ``max_queued`` jobs already wait; a 400 for a type with no handler."""
        if type_name not in self._handlers:
            raise InvalidRequestError(f"No job type '{type_name}' is served here.")
        job = await self.blocking(
            functools.partial(
                self.store.insert,
                type_name,
                owner,
                payload,
                summary=summary,
                subject=subject,
                timeout_s=timeout_s if timeout_s is not None else self.timeout_s,
                max_waiting=self.max_queued,
            )
        )
        self._wake()
        return job

    async def get(self, owner: str, job_id: str) -> Job:
        """The owner's job (404 ``job_not_found`` otherwise), with the latest progress of a
        run in this process."""
        return self._live(await self.blocking(self.store.get, owner, job_id))

    async def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel the owner's job: a waiting one never starts, a running one is stopped (this
        waits a little for it). A finished job is returned unchanged."""
        job = await self.blocking(self.store.cancel, owner, job_id, time.time())
        run = self._runs.get(job_id)
        if run is not None:
            run.cancel()
            with anyio.move_on_after(CANCEL_WAIT_S):
                await run.done.wait()
        self._wake()
        return job

    async def owned(self, owner: str, *, limit: int = 100) -> list[Job]:
        """The owner's jobs, newest first (running ones with their latest progress)."""
        return [self._live(job) for job in await self.blocking(self.store.owned, owner, limit)]

    def _live(self, job: Job) -> Job:
        """``job`` with the progress its run in this process has noted but not yet stored."""
        run = self._runs.get(job.id)
        if job.status == "running" and run is not None and run.context is not None:
            job.progress = run.context.job.progress
            job.message = run.context.job.message
        return job

    async def delete(self, owner: str, job_id: str) -> Job:
        """Cancel the owner's job if it waits or runs, then drop it; the job as it ended."""
        job = await self.cancel(owner, job_id)
        await self.blocking(self.store.delete, owner, job_id)
        return job

    async def forget(self, owner: str, subject: str) -> None:
        """Drop every job of ``subject`` (say, a collection about to be deleted), stopping those
        that run (this waits a little for them, as :meth:`cancel` does)."""
        runs = [
            run
            for job_id in await self.blocking(self.store.delete_subject, owner, subject)
            if (run := self._runs.get(job_id)) is not None
        ]
        for run in runs:
            run.cancel()
        with anyio.move_on_after(CANCEL_WAIT_S):
            for run in runs:
                await run.done.wait()
        self._wake()

    async def retry_deferred(self) -> int:
        """Try the deferred jobs now, not when their wait is over (say, once the engine they
        wait for is back). How many there were."""
        count = await self.blocking(self.store.retry_deferred)
        self._wake()
        return count

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """A call to the job file, off the event loop."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    # -- runs ----------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self, run: _Run) -> None:
        job = run.job
        try:
            payload = await self.blocking(self.store.payload, job.id)
            if payload is None or run.cancelled:
                return  # cancelled or dropped while it was being started
            run.context = JobContext(self, job, payload)
            await self._outcome(run, run.context)
            job.finished_at = None if job.status == "deferred" else time.time()
            await self.blocking(self.store.finish, job)
            logger.info("job %s (%s) %s", job.id, job.type, job.status)
        except Exception:
            # left running in the file: the next start queues it again
            logger.exception("job %s: how its run ended could not be stored", job.id)
        finally:
            del self._runs[job.id]
            run.done.set()
            self._wake()

    async def _outcome(self, run: _Run, context: JobContext) -> None:
        """Run the handler and set ``run.job``'s status (and result or error) from how it
        ended."""
        job = run.job
        handler = self._handlers.get(job.type)
        if handler is None:
            job.status = "failed"
            job.error = error_object(InternalError(f"No job type '{job.type}' is served here."))
            return
        remaining = max(0.0, job.deadline_at - time.time())
        run.scope = scope = anyio.CancelScope(deadline=anyio.current_time() + remaining)
        try:
            with scope:
                result = await handler(context)
                job.status = "succeeded"
                job.progress = 1.0
                if result is not None:
                    job.result = result
                return
        except (EngineUnavailableError, RateLimitError) as exc:
            logger.warning("job %s waits: %s", job.id, exc.message)
            job.status = "deferred"
            job.message = exc.message
            job.not_before = time.time() + self.retry_s
            return
        except JobCancelledError:
            pass
        except AIPlatformError as exc:
            job.status = "failed"
            job.error = error_object(exc)
            return
        except Exception as exc:
            logger.exception("job %s failed", job.id)
            job.status = "failed"
            job.error = error_object(InternalError(f"The job failed: {exc}"))
            return
        # stopped: by a cancellation, or by the deadline
        if run.cancelled:
            job.status = "cancelled"
        else:
            job.status = "failed"
            job.error = _deadline_error()


def _deadline_error() -> dict[str, Any]:
    # The job's own time ran out, not an upstream's: a server error with the 504 status.
    return error_object(
        InternalError(
            "The job did not finish before its deadline.",
            code="job_deadline_exceeded",
            status_code=504,
        )
    )
