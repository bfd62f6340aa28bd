"""Durable background jobs any engine kind can run (RAG's ingest, long CPU-bound runs): stored
before they are acknowledged, run by a bounded scheduler, deferred while an engine they need
is unavailable, cancellable, bounded by a deadline, and resumed after a crash."""

from aiplatform.engines.jobs.model import (
    FINISHED,
    WAITING,
    Job,
    JobCancelledError,
    JobStatus,
    error_object,
)
from aiplatform.engines.jobs.runner import Handler, JobContext, JobRunner

__all__ = [
    "FINISHED",
    "WAITING",
    "Handler",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobRunner",
    "JobStatus",
    "error_object",
]
