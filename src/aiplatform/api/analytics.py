"""Wire shapes of the analytic engines: each engine's request, response and progress event
(made from its declared params and result), the engine listing, and ``/v1/jobs``."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.api.ids import Id
from aiplatform.api.openai import ErrorBody
from aiplatform.api.tables import Records, Seed

if TYPE_CHECKING:
    from aiplatform.engines.analytics.method import Method

__all__ = [
    "AnalyticsJob",
    "AnalyticsJobDeleted",
    "AnalyticsJobList",
    "EngineInfo",
    "EngineList",
    "EngineListRequest",
    "JobListRequest",
    "JobRef",
    "JobRequest",
    "JobStatus",
    "event_type",
    "request_type",
    "response_type",
]

#: A job as the API reports it (a job waiting for an engine that is back soon is ``queued``).
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


@cache
def request_type(method: Method[Any, Any]) -> type[msgspec.Struct]:
    """``POST /v1/analytics/<name>``: the table (inline ``data`` or a stored ``dataset``), the
    params, the seed, and whether to stream progress."""
    try:
        method.params()
        params: tuple[str, Any, Any] = (
            "params",
            method.params,
            msgspec.field(default_factory=method.params),
        )
    except TypeError:  # a required param: the params object is required too
        params = ("params", method.params, msgspec.NODEFAULT)
    fields = [
        ("data", Records | None, None),
        ("dataset", Id | None, None),
        params,
        ("seed", Seed, 0),
        ("stream", bool, False),
    ]
    made = msgspec.defstruct(
        f"{_camel(method.name)}Request",
        [field if field[2] is not msgspec.NODEFAULT else field[:2] for field in fields],
        kw_only=True,
        omit_defaults=True,
        module=__name__,
    )
    made.__doc__ = (
        f"A {method.name} run: ``data`` (inline records) or ``dataset`` (a stored dataset's "
        "id), ``params``, and ``seed`` (the same seed gives the same result)."
    )
    return made


@cache
def response_type(method: Method[Any, Any]) -> type[msgspec.Struct]:
    """What ``POST /v1/analytics/<name>`` answers."""
    made = msgspec.defstruct(
        f"{_camel(method.name)}Response",
        [
            ("engine", str),
            ("result", method.result),
            ("summary", str),
            ("charts", list[dict[str, Any]]),
            ("warnings", list[str]),
            ("object", Literal["analytics.result"], "analytics.result"),
        ],
        kw_only=True,
        module=__name__,
    )
    made.__doc__ = (
        f"The {method.name} result, a summary in plain sentences, Vega-Lite charts with inline "
        "data, and warnings."
    )
    return made


@cache
def event_type(method: Method[Any, Any]) -> type[msgspec.Struct]:
    """An event of a streamed run: progress (``fraction``, ``stage``), then the result."""
    made = msgspec.defstruct(
        f"{_camel(method.name)}Event",
        [
            ("object", Literal["analytics.progress", "analytics.result"]),
            ("fraction", float | None, None),
            ("stage", str | None, None),
            ("response", response_type(method) | None, None),
        ],
        kw_only=True,
        omit_defaults=True,
        module=__name__,
    )
    made.__doc__ = (
        "``analytics.progress`` events with the fraction done and the stage, then one "
        "``analytics.result`` event with the response."
    )
    return made


class EngineListRequest(msgspec.Struct, kw_only=True):
    """``GET /v1/analytics/engines``."""


class EngineInfo(msgspec.Struct, kw_only=True):
    name: str
    summary: str
    #: Where it is called: ``POST <path>``.
    path: str
    #: JSON Schema of ``params``.
    params_schema: dict[str, Any]
    #: JSON Schema of ``result``.
    result_schema: dict[str, Any]
    object: Literal["analytics.engine"] = "analytics.engine"


class EngineList(msgspec.Struct, kw_only=True):
    data: list[EngineInfo]
    object: Literal["list"] = "list"


class JobRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/jobs``: an analytic run in the background."""

    #: The analytic engine (``GET /v1/analytics/engines`` lists them).
    engine: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    data: Records | None = None
    dataset: Id | None = None
    #: The engine's params (as for ``POST /v1/analytics/<engine>``).
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: Seed = 0


class JobRef(msgspec.Struct, kw_only=True):
    #: From the path (so a POST body may leave it out).
    job_id: Id = ""


class JobListRequest(msgspec.Struct, kw_only=True):
    """``GET /v1/jobs``: the caller's jobs, newest first."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class AnalyticsJob(msgspec.Struct, kw_only=True):
    id: str
    engine: str
    status: JobStatus
    #: 0..1
    progress: float
    #: What the run does now (or why it waits).
    stage: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    #: The engine's response, once the job succeeded.
    result: dict[str, Any] | None
    #: Why it failed, in OpenAI's error shape.
    error: ErrorBody | None
    object: Literal["analytics.job"] = "analytics.job"


class AnalyticsJobList(msgspec.Struct, kw_only=True):
    data: list[AnalyticsJob]
    object: Literal["list"] = "list"


class AnalyticsJobDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["analytics.job.deleted"] = "analytics.job.deleted"
