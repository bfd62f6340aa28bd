"""The analytics family: listing, inline and stored tables, streaming progress, forwarding one
engine, worker failures and cancellation, and jobs — on the in-process engine."""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from aiplatform.api.analytics import EngineListRequest, JobListRequest, JobRef, JobRequest
from aiplatform.api.datasets import DatasetUpload
from aiplatform.engines.analytics.engine import LocalAnalyticsEngine
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.operations import (
    CANCEL_JOB,
    DELETE_JOB,
    GET_JOB,
    LIST_ENGINES,
    LIST_JOBS,
    METHOD_OPERATIONS,
    SUBMIT_JOB,
)
from aiplatform.engines.analytics.settings import AnalyticsSettings
from aiplatform.engines.base import Engine
from aiplatform.engines.datasets.engine import LocalDatasetsEngine
from aiplatform.engines.datasets.operations import UPLOAD_DATASET
from aiplatform.engines.datasets.settings import DatasetsSettings
from aiplatform.errors import (
    AIPlatformError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
)
from aiplatform.forms import FilePart
from aiplatform.server.wiring import build_configured
from aiplatform.testing import asgi_remote, fake_settings
from tests.analytics import assert_valid_charts

pytestmark = pytest.mark.anyio

#: A quick engine whose example runs in well under a second.
QUICK = "galileo"


def _settings(folder: Path, **changes: Any) -> AnalyticsSettings:
    return AnalyticsSettings(data_dir=str(folder / "analytics"), **changes)


@pytest.fixture
async def datasets(tmp_path: Path) -> AsyncIterator[LocalDatasetsEngine]:
    settings = DatasetsSettings(data_dir=str(tmp_path / "datasets"), max_concurrency=1)
    async with LocalDatasetsEngine(settings) as engine:
        yield engine


@pytest.fixture
async def called(tmp_path: Path) -> AsyncIterator[dict[str, Engine]]:
    """The engines some analytic engines call, on their fake backends, as a monolith has
    them."""
    settings = fake_settings(tmp_path / "called")
    async with AsyncExitStack() as stack:
        engines: dict[str, Engine] = {}
        for kind in ("embeddings", "rag", "llm"):
            built = build_configured(settings, kind, served=engines)
            engines[kind] = await stack.enter_async_context(built)
        yield engines


@pytest.fixture
async def engine(
    tmp_path: Path, datasets: LocalDatasetsEngine, called: dict[str, Engine]
) -> AsyncIterator[LocalAnalyticsEngine]:
    async with LocalAnalyticsEngine(
        _settings(tmp_path), datasets=datasets, engines=called
    ) as engine:
        yield engine


def _example(name: str, **changes: Any) -> Any:
    request = METHOD_OPERATIONS[name].example
    assert request is not None
    return msgspec.structs.replace(request.request, **changes)  # type: ignore[type-var]


def _slow_titan(seconds: float) -> Any:
    """A titan run that searches for about ``seconds``."""
    rng = random.Random(1)
    rows = []
    for _ in range(2000):
        a, b, c = rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append({"a": a, "b": b, "c": c, "y": 2 * a - b + 0.1 * rng.gauss(0, 1)})
    return _example(
        "titan", data=rows, params=METHODS["titan"].params(target="y", time_budget_s=seconds)
    )


async def test_the_listing_names_every_engine_with_its_schemas(
    engine: LocalAnalyticsEngine,
) -> None:
    listed = await engine.invoke(LIST_ENGINES, EngineListRequest())
    assert [info.name for info in listed.data] == list(METHODS)
    for info in listed.data:
        assert info.path == f"/v1/analytics/{info.name}"
        assert info.summary
        assert "$ref" in info.params_schema or "properties" in info.params_schema
        assert "$ref" in info.result_schema or "properties" in info.result_schema


@pytest.mark.parametrize("name", sorted(METHODS))
async def test_every_example_answers_with_a_summary_and_valid_charts(
    engine: LocalAnalyticsEngine, name: str
) -> None:
    response = await engine.invoke(METHOD_OPERATIONS[name], _example(name))
    assert response.engine == name
    assert isinstance(response.result, METHODS[name].result)
    assert response.summary.strip()
    assert response.charts
    assert_valid_charts(response.charts)


async def test_a_streamed_run_reports_progress_then_the_same_result(
    engine: LocalAnalyticsEngine,
) -> None:
    op = METHOD_OPERATIONS["titan"]
    # a budget every candidate fits in, on any machine: the two runs must score the same models
    request = msgspec.structs.replace(
        _slow_titan(3),
        params=METHODS["titan"].params(target="y", time_budget_s=300, max_candidates=2),
    )
    answer = await engine.invoke(op, request)
    events = [
        event async for event in engine.stream(op, msgspec.structs.replace(request, stream=True))
    ]
    assert [event.object for event in events[:-1]] == ["analytics.progress"] * (len(events) - 1)
    fractions = [event.fraction for event in events[:-1]]
    assert fractions
    assert fractions == sorted(fractions)
    assert events[-1].object == "analytics.result"
    assert events[-1].response == answer


async def test_the_table_comes_inline_or_from_a_dataset_never_both(
    engine: LocalAnalyticsEngine, datasets: LocalDatasetsEngine
) -> None:
    op = METHOD_OPERATIONS[QUICK]
    example = _example(QUICK)
    lines = "\n".join(json.dumps(row) for row in example.data).encode()
    stored = await datasets.invoke(
        UPLOAD_DATASET, DatasetUpload(file=FilePart(filename="t.jsonl", data=lines))
    )
    from_dataset = await engine.invoke(op, _example(QUICK, data=None, dataset=stored.id))
    assert from_dataset == await engine.invoke(op, example)

    with pytest.raises(InvalidRequestError) as both:
        await engine.invoke(op, _example(QUICK, dataset=stored.id))
    assert both.value.code == "ambiguous_data"
    with pytest.raises(InvalidRequestError) as neither:
        await engine.invoke(op, _example(QUICK, data=None))
    assert neither.value.code == "missing_data"
    with pytest.raises(NotFoundError) as unknown:
        await engine.invoke(op, _example(QUICK, data=None, dataset="ds-nope"))
    assert unknown.value.param == "data"


async def test_one_engine_is_forwarded_while_the_others_compute_here(
    tmp_path: Path, datasets: LocalDatasetsEngine
) -> None:
    """The gateway allows one row only: an answer proves the pod computed it."""
    pod = LocalAnalyticsEngine(_settings(tmp_path / "pod", max_concurrency=1), datasets=datasets)
    remote = asgi_remote(pod, AnalyticsSettings())
    gateway = LocalAnalyticsEngine(
        _settings(tmp_path / "gateway", max_rows=1, max_concurrency=1),
        datasets=datasets,
        forwarded={QUICK: remote},
    )
    async with pod, gateway:
        forwarded = await gateway.invoke(METHOD_OPERATIONS[QUICK], _example(QUICK))
        assert forwarded == await pod.invoke(METHOD_OPERATIONS[QUICK], _example(QUICK))
        events = [
            event
            async for event in gateway.stream(
                METHOD_OPERATIONS[QUICK], _example(QUICK, stream=True)
            )
        ]
        assert events[-1].response == forwarded
        other = next(name for name in METHODS if name != QUICK)
        with pytest.raises(AIPlatformError) as local:
            await gateway.invoke(METHOD_OPERATIONS[other], _example(other))
        assert local.value.code == "dataset_too_large"


async def test_a_job_of_a_forwarded_engine_runs_on_its_pod(
    tmp_path: Path, datasets: LocalDatasetsEngine
) -> None:
    pod = LocalAnalyticsEngine(_settings(tmp_path / "pod", max_concurrency=1), datasets=datasets)
    remote = asgi_remote(pod, AnalyticsSettings())
    gateway = LocalAnalyticsEngine(
        _settings(tmp_path / "gateway", max_rows=1, max_concurrency=1),
        datasets=datasets,
        forwarded={QUICK: remote},
    )
    example = _example(QUICK)
    async with pod, gateway:
        submitted = await gateway.invoke(
            SUBMIT_JOB,
            JobRequest(engine=QUICK, data=example.data, params=msgspec.to_builtins(example.params)),
        )
        job = await _finished(gateway, submitted.id)
        assert job.status == "succeeded", job.error
        direct = await pod.invoke(METHOD_OPERATIONS[QUICK], example)
        assert job.result == msgspec.to_builtins(direct)


async def test_a_forwarded_job_that_outlasts_the_pod_fails_instead_of_waiting_again(
    tmp_path: Path, datasets: LocalDatasetsEngine
) -> None:
    pod = LocalAnalyticsEngine(
        _settings(tmp_path / "pod", max_concurrency=1, run_timeout_s=1.0), datasets=datasets
    )
    gateway = LocalAnalyticsEngine(
        _settings(tmp_path / "gateway", max_concurrency=1),
        datasets=datasets,
        forwarded={"titan": asgi_remote(pod, AnalyticsSettings())},
    )
    slow = _slow_titan(30)
    async with pod, gateway:
        submitted = await gateway.invoke(
            SUBMIT_JOB,
            JobRequest(engine="titan", data=slow.data, params=msgspec.to_builtins(slow.params)),
        )
        job = await _finished(gateway, submitted.id, timeout_s=60)
    assert job.status == "failed"
    assert job.error is not None
    assert job.error.code == "analytics_timeout"


@pytest.mark.parametrize("name", sorted(METHODS))
async def test_a_streamed_run_with_a_bad_column_is_refused_before_it_streams(
    engine: LocalAnalyticsEngine, name: str
) -> None:
    """The error comes as the first thing the stream yields, so the route answers with its
    status (400), not a 200 whose stream then carries the error."""
    from tests.unit.analytics.test_bad_input import MISSING, _column_param

    found = _column_param(METHODS[name])
    assert found is not None
    field, value = found
    request = _example(name, stream=True)
    request = msgspec.structs.replace(
        request, params=msgspec.structs.replace(request.params, **{field: value})
    )
    events = engine.stream(METHOD_OPERATIONS[name], request)
    with pytest.raises(InvalidRequestError) as refused:
        await anext(aiter(events))
    assert refused.value.code == "unknown_column"
    assert MISSING in refused.value.message


def test_forwarding_an_unknown_engine_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope"):
        LocalAnalyticsEngine(_settings(tmp_path, forward={"nope": "http://x"}))


async def _wait_for_workers_busy(engine: LocalAnalyticsEngine) -> list[int]:
    """The pids of the workers computing now (once one is)."""
    workers = engine._workers
    assert workers is not None
    with anyio.fail_after(30):
        while not workers._busy:  # noqa: ASYNC110  # polled: the pool has no event for it
            await anyio.sleep(0.02)
    busy = [worker.pid for worker in workers._busy]
    assert busy
    return busy


async def test_a_worker_that_dies_mid_run_fails_that_call_alone(
    engine: LocalAnalyticsEngine,
) -> None:
    op = METHOD_OPERATIONS["titan"]
    failure: list[BaseException] = []

    async def run() -> None:
        try:
            await engine.invoke(op, _slow_titan(20))
        except InternalError as exc:
            failure.append(exc)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run)
        busy = await _wait_for_workers_busy(engine)
        await anyio.sleep(1.0)
        # the other worker answers meanwhile
        beside = await engine.invoke(METHOD_OPERATIONS[QUICK], _example(QUICK))
        assert beside.engine == QUICK
        for pid in busy:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    assert failure
    assert isinstance(failure[0], InternalError)
    assert failure[0].code == "worker_died"
    again = await engine.invoke(METHOD_OPERATIONS[QUICK], _example(QUICK))
    assert again.engine == QUICK


async def test_a_cancelled_run_stops_its_worker_within_a_second(
    engine: LocalAnalyticsEngine,
) -> None:
    op = METHOD_OPERATIONS["titan"]
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(engine.invoke, op, _slow_titan(30))
        busy = await _wait_for_workers_busy(engine)
        await anyio.sleep(1.0)
        started = time.monotonic()
        task_group.cancel_scope.cancel()
    assert time.monotonic() - started < 1.0
    for pid in busy:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def _finished(engine: LocalAnalyticsEngine, job_id: str, timeout_s: float = 120) -> Any:
    with anyio.fail_after(timeout_s):
        while True:
            job = await engine.invoke(GET_JOB, JobRef(job_id=job_id))
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            await anyio.sleep(0.1)


async def test_a_job_runs_in_the_background_and_keeps_its_result(
    engine: LocalAnalyticsEngine, tmp_path: Path, datasets: LocalDatasetsEngine
) -> None:
    example = _example(QUICK)
    submitted = await engine.invoke(
        SUBMIT_JOB,
        JobRequest(engine=QUICK, data=example.data, params=msgspec.to_builtins(example.params)),
    )
    assert SUBMIT_JOB.status_code == 202
    assert submitted.status in ("queued", "running")
    job = await _finished(engine, submitted.id)
    assert job.status == "succeeded", job.error
    assert job.progress == 1.0
    direct = await engine.invoke(METHOD_OPERATIONS[QUICK], example)
    assert job.result == msgspec.to_builtins(direct)
    listed = await engine.invoke(LIST_JOBS, JobListRequest())
    assert [listed_job.id for listed_job in listed.data] == [submitted.id]
    await engine.invoke(DELETE_JOB, JobRef(job_id=submitted.id))
    with pytest.raises(NotFoundError):
        await engine.invoke(GET_JOB, JobRef(job_id=submitted.id))


async def test_a_job_reads_a_stored_dataset_and_an_unknown_one_is_refused_at_once(
    engine: LocalAnalyticsEngine, datasets: LocalDatasetsEngine
) -> None:
    example = _example(QUICK)
    lines = "\n".join(json.dumps(row) for row in example.data).encode()
    stored = await datasets.invoke(
        UPLOAD_DATASET, DatasetUpload(file=FilePart(filename="t.jsonl", data=lines))
    )
    params = msgspec.to_builtins(example.params)
    submitted = await engine.invoke(
        SUBMIT_JOB, JobRequest(engine=QUICK, dataset=stored.id, params=params)
    )
    job = await _finished(engine, submitted.id)
    assert job.status == "succeeded", job.error
    assert job.result == msgspec.to_builtins(await engine.invoke(METHOD_OPERATIONS[QUICK], example))
    with pytest.raises(NotFoundError) as unknown:
        await engine.invoke(SUBMIT_JOB, JobRequest(engine=QUICK, dataset="ds-nope", params=params))
    assert unknown.value.param == "data"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (JobRequest(engine="nope", data=[{"a": 1}]), "unknown_engine"),
        (JobRequest(engine=QUICK, data=[{"a": 1}], params={"bogus": 1}), None),
        (JobRequest(engine=QUICK), "missing_data"),
    ],
)
async def test_a_bad_job_is_refused_when_submitted(
    engine: LocalAnalyticsEngine, request_: JobRequest, code: str | None
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        await engine.invoke(SUBMIT_JOB, request_)
    assert refused.value.code == code
    assert (await engine.invoke(LIST_JOBS, JobListRequest())).data == []


async def test_a_cancelled_job_stops_its_worker_and_says_cancelled(
    engine: LocalAnalyticsEngine,
) -> None:
    slow = _slow_titan(30)
    submitted = await engine.invoke(
        SUBMIT_JOB,
        JobRequest(engine="titan", data=slow.data, params=msgspec.to_builtins(slow.params)),
    )
    busy = await _wait_for_workers_busy(engine)
    with anyio.fail_after(30):
        while (await engine.invoke(GET_JOB, JobRef(job_id=submitted.id))).progress == 0:  # noqa: ASYNC110
            await anyio.sleep(0.1)
    started = time.monotonic()
    cancelled = await engine.invoke(CANCEL_JOB, JobRef(job_id=submitted.id))
    assert cancelled.status == "cancelled"
    assert time.monotonic() - started < 1.0
    for pid in busy:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_job_running_when_the_engine_stops_is_failed_at_the_next_start(
    tmp_path: Path, datasets: LocalDatasetsEngine
) -> None:
    slow = _slow_titan(30)
    request = JobRequest(engine="titan", data=slow.data, params=msgspec.to_builtins(slow.params))
    async with LocalAnalyticsEngine(_settings(tmp_path), datasets=datasets) as engine:
        submitted = await engine.invoke(SUBMIT_JOB, request)
        await _wait_for_workers_busy(engine)
    async with LocalAnalyticsEngine(_settings(tmp_path), datasets=datasets) as engine:
        job = await engine.invoke(GET_JOB, JobRef(job_id=submitted.id))
    assert job.status == "failed"
    assert job.error is not None
    assert job.error.code == "job_interrupted"


def test_the_29_analytic_engines_are_registered() -> None:
    assert sorted(METHODS) == sorted(
        [
            *("anomaly", "chaos", "chronos", "clustering", "galileo", "mirror", "newton"),
            *("oracle", "scout", "statistical", "titan", "trend"),
            *("revenue_forecast", "cash_flow", "budget_variance", "profit_margin"),
            *("cost_optimization", "pricing_strategy", "customer_ltv", "market_basket"),
            *("spend_pattern", "inventory_optimization", "roi_prediction", "churn"),
            *("lead_scoring", "flash", "faiss_retrieval", "universal_graph", "rag_evaluation"),
        ]
    )
