"""The analytics kind's operation table, made from the engines' declarations: one operation per
analytic engine (``POST /v1/analytics/<name>``), the engine listing, and ``/v1/jobs``.

A leaf: it imports the method modules (light by rule) and nothing of the engine.
"""

from __future__ import annotations

from typing import Any

from aiplatform.api.analytics import (
    AnalyticsJob,
    AnalyticsJobDeleted,
    AnalyticsJobList,
    EngineList,
    EngineListRequest,
    JobListRequest,
    JobRef,
    JobRequest,
    event_type,
    request_type,
    response_type,
)
from aiplatform.engines.analytics.method import Method
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.base import Example, ExampleContext, NoChunk, Operation

__all__ = [
    "CANCEL_JOB",
    "DELETE_JOB",
    "GET_JOB",
    "LIST_ENGINES",
    "LIST_JOBS",
    "METHOD_OPERATIONS",
    "OPERATIONS",
    "SUBMIT_JOB",
    "method_operation",
]


def _is_progress(event: Any) -> bool:
    return bool(event.object == "analytics.progress")


def method_operation(method: Method[Any, Any]) -> Operation[Any, Any, Any]:
    """The operation of one analytic engine."""
    request = request_type(method)
    return Operation(
        name=method.name,
        method="POST",
        path=f"/v1/analytics/{method.name}",
        request=request,
        response=response_type(method),
        chunk=event_type(method),
        progress_chunk=_is_progress,
        example=Example(request=request(data=method.example.data, params=method.example.params)),
        summary=method.summary,
        tags=("analytics",),
    )


#: Each analytic engine's operation, by engine name.
METHOD_OPERATIONS: dict[str, Operation[Any, Any, Any]] = {
    name: method_operation(method) for name, method in METHODS.items()
}

LIST_ENGINES: Operation[EngineListRequest, EngineList, NoChunk] = Operation(
    name="list_engines",
    method="GET",
    path="/v1/analytics/engines",
    request=EngineListRequest,
    response=EngineList,
    example=Example(request=EngineListRequest()),
    summary="The analytic engines: name, summary, params and result JSON schemas",
    tags=("analytics",),
)


def _example_job(context: ExampleContext) -> JobRequest:
    method = next(iter(METHODS.values()))
    import msgspec

    return JobRequest(
        engine=method.name,
        data=method.example.data,
        params=msgspec.to_builtins(method.example.params),
    )


def _submitted(context: ExampleContext) -> JobRef:
    job: AnalyticsJob = context.answers[0]
    return JobRef(job_id=job.id)


def _finished(job: AnalyticsJob) -> bool:
    return job.status in ("succeeded", "failed", "cancelled")


SUBMIT_JOB: Operation[JobRequest, AnalyticsJob, NoChunk] = Operation(
    name="submit_job",
    method="POST",
    path="/v1/jobs",
    request=JobRequest,
    response=AnalyticsJob,
    status_code=202,
    example=Example(request=_example_job),
    summary="Run an analytic engine in the background: 202 with the job",
    tags=("jobs",),
)

GET_JOB: Operation[JobRef, AnalyticsJob, NoChunk] = Operation(
    name="get_job",
    method="GET",
    path="/v1/jobs/{job_id}",
    request=JobRef,
    response=AnalyticsJob,
    example=Example(request=_submitted, setup=((SUBMIT_JOB, _example_job),), until=_finished),
    summary="A job: its status, progress, and result or error",
    tags=("jobs",),
)

LIST_JOBS: Operation[JobListRequest, AnalyticsJobList, NoChunk] = Operation(
    name="list_jobs",
    method="GET",
    path="/v1/jobs",
    request=JobListRequest,
    response=AnalyticsJobList,
    example=Example(request=JobListRequest(limit=1)),
    summary="The caller's jobs, newest first",
    tags=("jobs",),
)

CANCEL_JOB: Operation[JobRef, AnalyticsJob, NoChunk] = Operation(
    name="cancel_job",
    method="POST",
    path="/v1/jobs/{job_id}/cancel",
    request=JobRef,
    response=AnalyticsJob,
    example=Example(request=_submitted, setup=((SUBMIT_JOB, _example_job),)),
    summary="Cancel a job: a waiting one never starts, a running one's worker is stopped",
    tags=("jobs",),
)

DELETE_JOB: Operation[JobRef, AnalyticsJobDeleted, NoChunk] = Operation(
    name="delete_job",
    method="DELETE",
    path="/v1/jobs/{job_id}",
    request=JobRef,
    response=AnalyticsJobDeleted,
    example=Example(request=_submitted, setup=((SUBMIT_JOB, _example_job),)),
    summary="Delete a job (cancelled first if it waits or runs) and its result",
    tags=("jobs",),
)

#: Every operation of the kind.
OPERATIONS: tuple[Operation[Any, Any, Any], ...] = (
    LIST_ENGINES,
    *METHOD_OPERATIONS.values(),
    SUBMIT_JOB,
    GET_JOB,
    LIST_JOBS,
    CANCEL_JOB,
    DELETE_JOB,
)
