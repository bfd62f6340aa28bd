"""The analytics section, ``[engines.analytics]``: one section for every analytic engine."""

from __future__ import annotations

import msgspec

from aiplatform.engines.settings import EngineSettings, PositiveFloat, PositiveInt

__all__ = ["AnalyticsSettings"]


class AnalyticsSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    """``url`` forwards every analytic engine (and ``/v1/jobs``) to an analytics pod;
    ``forward`` forwards single engines. Tables named by ``dataset`` are read through the
    datasets engine (``engines.datasets``: the one this server runs, or one built from that
    section)."""

    #: Computations that run at once, each in a worker process of its own.
    max_concurrency: PositiveInt = 2
    #: Whole-request deadline of a forwarded call (an analytic run can be long).
    timeout_s: PositiveFloat = 600.0
    #: **Forward** single engines, by name, to the analytics service at the URL:
    #: ``forward = { titan = "http://titan:8000" }``, or in the environment
    #: ``AIPLATFORM_ENGINES__ANALYTICS__FORWARD__TITAN=http://titan:8000``. The others run as
    #: the section says.
    forward: dict[str, str] = msgspec.field(default_factory=dict)
    #: Seconds a synchronous run may compute; past it, its worker is stopped and the call
    #: answers 504 ``analytics_timeout`` (use a job for longer runs).
    run_timeout_s: PositiveFloat = 300.0
    #: Longer tables are refused with 413 ``dataset_too_large``.
    max_rows: PositiveInt = 1_000_000
    #: Wider tables are refused with 413 ``dataset_too_large``.
    max_columns: PositiveInt = 1_000
    #: Jobs and their results are kept here; unset: ``<data dir>/analytics``.
    data_dir: str | None = None
    #: Jobs that run at once (each takes one of the ``max_concurrency`` workers).
    max_running_jobs: PositiveInt = 1
    #: Jobs that may wait; one more is refused with 429.
    max_queued_jobs: PositiveInt = 100
    #: Seconds a job may take from submission; past it, it fails with
    #: ``job_deadline_exceeded``.
    job_timeout_s: PositiveFloat = 6 * 3600.0
