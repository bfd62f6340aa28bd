"""What a job is: its record, its statuses, and its error in OpenAI's shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiplatform.errors import AIPlatformError

__all__ = [
    "FINISHED",
    "WAITING",
    "Job",
    "JobCancelledError",
    "JobStatus",
    "error_object",
]

JobStatus = Literal["queued", "running", "deferred", "succeeded", "failed", "cancelled"]
#: Jobs waiting for a slot: queued, or deferred until a dependency is back.
WAITING: tuple[JobStatus, ...] = ("queued", "deferred")
#: Jobs that will not run again.
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


@dataclass(slots=True)
class Job:
    """One job as stored. Times are Unix seconds."""

    id: str
    #: The kind-defined type name (``rag.ingest``), which picks the handler.
    type: str
    #: The tenant that submitted it; a job is only ever found through its owner.
    owner: str
    status: JobStatus
    #: 0..1, as last reported by the handler.
    progress: float
    #: What the job is doing now (or why it waits, while deferred).
    message: str | None
    #: Small JSON given at submission and returned with the job (the large payload is read
    #: by the handler alone).
    summary: Any
    #: The handler's result, or what it reported so far while it runs.
    result: Any
    #: Why it failed, in OpenAI's error shape (``message``, ``type``, ``param``, ``code``).
    error: dict[str, Any] | None
    #: What the job works on (a collection, a data set): its jobs are dropped with it.
    subject: str | None
    #: Runs started (a job re-queued after a crash or deferred runs again).
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    #: Past this time the job fails, whether waiting or running.
    deadline_at: float
    #: A deferred job is not started again before this time.
    not_before: float


class JobCancelledError(Exception):
    """Raised in a handler that checks in (:meth:`JobContext.check`) once its job was
    cancelled or ran past its deadline."""


def error_object(error: AIPlatformError) -> dict[str, Any]:
    """``error`` as the ``error`` member of OpenAI's error response."""
    return {
        "message": error.message,
        "type": error.error_type,
        "param": error.param,
        "code": error.code,
    }
