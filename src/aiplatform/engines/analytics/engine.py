"""The in-process analytics engine: every analytic engine's computation in worker processes, and
the jobs that run them in the background.

Each run is one call to :func:`~aiplatform.engines.analytics.worker.run_method` in the engine's
worker pool (``max_concurrency`` processes behind a bounded queue), so no fit ever holds the
server's GIL; a caller that leaves stops its worker. Engines named in ``forward`` are called
on their own service instead, through the remote adapter, for runs and jobs alike: a job
consumes the engine's event stream whichever side computes it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AsyncExitStack, aclosing
from functools import cache, partial
from pathlib import Path
from typing import Any, Self, cast

import anyio
import anyio.abc
import msgspec

from aiplatform.api.analytics import (
    AnalyticsJob,
    AnalyticsJobDeleted,
    AnalyticsJobList,
    EngineInfo,
    EngineList,
    EngineListRequest,
    JobListRequest,
    JobRef,
    JobRequest,
    event_type,
    request_type,
    response_type,
)
from aiplatform.api.datasets import DatasetRef
from aiplatform.api.openai import ErrorBody
from aiplatform.engines.analytics.kind import ANALYTICS
from aiplatform.engines.analytics.method import Method
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
from aiplatform.engines.analytics.preparation import MethodPreparation, require_engine
from aiplatform.engines.analytics.settings import AnalyticsSettings
from aiplatform.engines.analytics.worker import MethodCall, MethodOutput, TableData, run_method
from aiplatform.engines.base import Engine, Operation
from aiplatform.engines.datasets.operations import DATASET_TABLE, GET_DATASET
from aiplatform.engines.jobs import Job, JobContext, JobRunner
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import default_data_dir
from aiplatform.errors import (
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    RequestTooLargeError,
    UpstreamTimeoutError,
)
from aiplatform.tenant import acting_as, current_tenant

__all__ = ["LocalAnalyticsEngine"]

#: The job type of an analytic run.
JOB_TYPE = "analytics.run"


class LocalAnalyticsEngine(LocalEngine):
    def __init__(
        self,
        settings: AnalyticsSettings,
        *,
        datasets: Engine | None = None,
        engines: Mapping[str, Engine] | None = None,
        forwarded: Mapping[str, Engine] | None = None,
        storage_key: str | None = None,
        service_token: str | None = None,
    ) -> None:
        """``engines``: the engines of other kinds that analytic engines call (by kind), those
        the server has. ``forwarded`` engines (by analytic engine name) replace the remote
        engines built from ``settings.forward`` (which present ``service_token`` to their
        pods).
        ``storage_key``: the key the job file is encrypted with (None: plain SQLite)."""
        super().__init__(ANALYTICS, settings=settings, executor="processes")
        self._settings = settings
        self._datasets = datasets
        self._engines = dict(engines or {})
        unknown = set(settings.forward) - set(METHODS)
        if unknown:
            raise ValueError(
                f"engines.analytics.forward names unknown engines: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(METHODS)})"
            )
        self._forwarded: dict[str, Engine] = (
            dict(forwarded) if forwarded is not None else _remote_engines(settings, service_token)
        )
        self._remote_stack: AsyncExitStack | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        folder = Path(settings.data_dir or Path(default_data_dir()) / "analytics")
        self._runner = JobRunner(
            folder / "jobs.sqlite3",
            {JOB_TYPE: self._run_job},
            max_queued=settings.max_queued_jobs,
            max_running=settings.max_running_jobs,
            timeout_s=settings.job_timeout_s,
            resume_interrupted=False,
            storage_key=storage_key,
        )
        for name, method in METHODS.items():
            op = METHOD_OPERATIONS[name]
            self.bind(op, partial(self._invoke, method))
            self.bind_stream(op, partial(self._stream, method))
        self.bind(LIST_ENGINES, self.list_engines)
        self.bind(SUBMIT_JOB, self.submit_job)
        self.bind(GET_JOB, self.get_job)
        self.bind(LIST_JOBS, self.list_jobs)
        self.bind(CANCEL_JOB, self.cancel_job)
        self.bind(DELETE_JOB, self.delete_job)

    @property
    def called_kinds(self) -> tuple[str, ...]:
        """The kinds of the engines of other kinds its analytic engines may call here."""
        return tuple(self._engines)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            # The job file opens before the scheduler (a background task) can read it.
            await anyio.to_thread.run_sync(self._runner.open)
            stack.callback(self._runner.close)
            for engine in self._forwarded.values():
                await stack.enter_async_context(engine)
            await super().__aenter__()
            self._remote_stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            self._task_group = None
            stack, self._remote_stack = self._remote_stack, None
            if stack is not None:
                await stack.aclose()

    def load(self) -> None:
        """Nothing to load: each run imports what it computes with in its worker."""

    async def start_background(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        task_group.start_soon(self._runner.serve)

    # -- runs ----------------------------------------------------------------------------------

    async def list_engines(self, request: EngineListRequest) -> EngineList:
        return _engine_list()

    async def _invoke(self, method: Method[Any, Any], request: Any) -> Any:
        forwarded = self._forwarded.get(method.name)
        if forwarded is not None:
            return await forwarded.invoke(METHOD_OPERATIONS[method.name], request)
        # one deadline for the prepare step (engine calls) and the computation
        with anyio.move_on_after(self._settings.run_timeout_s) as scope:
            call = await self._method_call(method, request)
            output = await self.call(run_method, call)
        if scope.cancelled_caught:
            raise _run_timeout(self._settings.run_timeout_s)
        return _response(method, output)

    async def _stream(self, method: Method[Any, Any], request: Any) -> AsyncIterator[Any]:
        async with aclosing(self._events(method, request, self._settings.run_timeout_s)) as events:
            async for event in events:
                yield event

    async def _events(
        self, method: Method[Any, Any], request: Any, timeout_s: float | None
    ) -> AsyncGenerator[Any, None]:
        """Progress events while the run computes, then its result event."""
        forwarded = self._forwarded.get(method.name)
        if forwarded is not None:  # a job's request may not ask for a stream itself
            streamed = msgspec.structs.replace(request, stream=True)
            op = METHOD_OPERATIONS[method.name]
            stream = cast(AsyncGenerator[Any, None], forwarded.stream(op, streamed))
            async with aclosing(stream) as events:
                async for forwarded_event in events:
                    yield forwarded_event
            return
        event = event_type(method)
        if self._task_group is None:
            raise EngineUnavailableError("The analytics engine has not been started.")
        call = await self._bounded_call(method, request, timeout_s)
        progress = _LatestProgress()
        outcome: list[MethodOutput] = []
        failure: list[BaseException] = []
        scope = anyio.CancelScope()
        finished = anyio.Event()

        async def compute() -> None:
            try:
                with scope:
                    with anyio.move_on_after(timeout_s or math.inf) as deadline:
                        outcome.append(await self.call(run_method, call, progress=progress.put))
                    if deadline.cancelled_caught:
                        failure.append(_run_timeout(timeout_s or math.inf))
            except Exception as exc:  # re-raised by the reader
                failure.append(exc)
            finally:
                progress.close()
                finished.set()

        # The computation runs in the engine's task group, not in this generator: a stream is
        # read across tasks (its first event in one, the rest in another), which a task group
        # inside a generator does not allow.
        self._task_group.start_soon(compute)
        try:
            # The first report is not sent: a computation reports its start before it checks
            # its column roles, and a stream that has begun can no longer answer with the
            # error's own status (a 400 for an unknown column, not a 200 and an error event).
            seen = 0
            while (report := await progress.get()) is not None:
                seen += 1
                if seen > 1:
                    yield event(object="analytics.progress", fraction=report[0], stage=report[1])
        finally:
            if not finished.is_set():  # the reader left: stop the run (its worker is killed)
                scope.cancel()
                with anyio.CancelScope(shield=True):
                    await finished.wait()
        if failure:
            raise failure[0]
        if not outcome:
            raise EngineUnavailableError("The analytics engine stopped during the run.")
        yield event(object="analytics.result", response=_response(method, outcome[0]))

    async def _bounded_call(
        self, method: Method[Any, Any], request: Any, timeout_s: float | None
    ) -> MethodCall:
        """:meth:`_method_call`, its prepare step's engine calls bounded by the run's
        deadline."""
        with anyio.move_on_after(timeout_s or math.inf):
            return await self._method_call(method, request)
        raise _run_timeout(timeout_s or math.inf)

    async def _method_call(self, method: Method[Any, Any], request: Any) -> MethodCall:
        """The worker's call: the tables resolved (inline, or read from the datasets engine),
        sizes checked before anything crosses to a worker."""
        _check_one_table(request)
        self._check_called(method, request.params)
        params = request.params
        tables: dict[str, TableData] = {}
        for name in method.tables:
            value = getattr(params, name)
            if value is not None:
                tables[name] = await self._table(value, f"params.{name}")
        if tables:  # the tables travel once, as tables, not again inside the params
            params = msgspec.structs.replace(params, **dict.fromkeys(tables))
        table = await self._table(
            request.data if request.data is not None else request.dataset, "data"
        )
        prepared, warnings = b"", []
        if method.prepare is not None:
            preparation = MethodPreparation(method, self._engines, table, seed=request.seed)
            prepared = msgspec.msgpack.encode(await method.prepare(request.params, preparation))
            warnings = preparation.warnings
        return MethodCall(
            method=method.name,
            params=msgspec.msgpack.encode(params),
            seed=request.seed,
            table=table,
            tables=tables,
            max_rows=self._settings.max_rows,
            max_columns=self._settings.max_columns,
            prepared=prepared,
            warnings=warnings,
        )

    def _check_called(self, method: Method[Any, Any], params: Any) -> None:
        """403 or 503 for an engine a request with ``params`` calls (see
        :func:`require_engine`)."""
        for kind in method.called(params):
            require_engine(method, self._engines, kind)

    async def _table(self, value: list[Any] | str, where: str) -> TableData:
        if isinstance(value, list):
            if len(value) > self._settings.max_rows:
                raise _too_large(where, len(value), self._settings.max_rows)
            return TableData(records=value)
        table = await self._dataset(DATASET_TABLE, value, where)
        return TableData(parquet=table.parquet)

    async def _check_tables(self, method: Method[Any, Any], request: Any) -> None:
        """What :meth:`_method_call` refuses, without reading a stored table: a job is
        checked when it is submitted and reads its tables once, when it runs."""
        _check_one_table(request)
        values = [getattr(request.params, name) for name in method.tables]
        values.append(request.data if request.data is not None else request.dataset)
        wheres = [f"params.{name}" for name in method.tables] + ["data"]
        for value, where in zip(values, wheres, strict=True):
            if isinstance(value, list) and len(value) > self._settings.max_rows:
                raise _too_large(where, len(value), self._settings.max_rows)
            if isinstance(value, str):
                await self._dataset(GET_DATASET, value, where)

    async def _dataset(
        self, op: Operation[DatasetRef, Any, Any], dataset_id: str, where: str
    ) -> Any:
        """A stored dataset's description or table, within ``max_rows`` (404 names
        ``where``)."""
        if self._datasets is None:
            raise EngineUnavailableError("No datasets engine is configured.", param=where)
        try:
            found = await self._datasets.invoke(op, DatasetRef(dataset_id=dataset_id))
        except NotFoundError as exc:
            raise NotFoundError(exc.message, param=where, code=exc.code) from None
        if found.rows > self._settings.max_rows:
            raise _too_large(where, found.rows, self._settings.max_rows)
        return found

    # -- jobs ----------------------------------------------------------------------------------

    async def submit_job(self, request: JobRequest) -> AnalyticsJob:
        method = METHODS.get(request.engine)
        if method is None:
            raise InvalidRequestError(
                f"No analytic engine '{request.engine[:64]}'; known: {', '.join(METHODS)}.",
                param="engine",
                code="unknown_engine",
            )
        fields: dict[str, Any] = {"params": request.params, "seed": request.seed}
        if request.data is not None:
            fields["data"] = request.data
        if request.dataset is not None:
            fields["dataset"] = request.dataset
        try:
            run = msgspec.convert(fields, request_type(method))
        except msgspec.ValidationError as exc:
            raise InvalidRequestError(
                f"Invalid request for engine '{method.name}': {exc}", param="params"
            ) from None
        if method.name in self._forwarded:  # the pod reads and checks the tables itself
            _check_one_table(run)
        else:
            # refuse now, not in the job: bad tables, and engines it calls that the server
            # lacks or the caller's key may not use (the job runs without the caller's key)
            self._check_called(method, cast(Any, run).params)
            await self._check_tables(method, run)
        job = await self._runner.submit(
            JOB_TYPE,
            current_tenant(),
            msgspec.json.encode(run),
            summary={"engine": method.name},
        )
        return _public_job(job)

    async def get_job(self, request: JobRef) -> AnalyticsJob:
        return _public_job(await self._runner.get(current_tenant(), request.job_id))

    async def list_jobs(self, request: JobListRequest) -> AnalyticsJobList:
        jobs = await self._runner.owned(current_tenant(), limit=request.limit)
        # Results can be large (rows, charts): a listing leaves them out; GET /v1/jobs/{id}
        # returns one.
        return AnalyticsJobList(
            data=[
                msgspec.structs.replace(_public_job(job), result=None)
                for job in jobs
                if job.type == JOB_TYPE
            ]
        )

    async def cancel_job(self, request: JobRef) -> AnalyticsJob:
        return _public_job(await self._runner.cancel(current_tenant(), request.job_id))

    async def delete_job(self, request: JobRef) -> AnalyticsJobDeleted:
        await self._runner.delete(current_tenant(), request.job_id)
        return AnalyticsJobDeleted(id=request.job_id)

    async def _run_job(self, context: JobContext) -> Any:
        method = METHODS[context.job.summary["engine"]]
        request = msgspec.json.decode(context.payload, type=request_type(method))
        response = None
        with acting_as(context.job.owner):
            try:
                async with aclosing(self._events(method, request, timeout_s=None)) as events:
                    async for event in events:
                        if event.object == "analytics.progress":
                            context.progress(event.fraction or 0.0, event.stage)
                        else:
                            response = event.response
            except UpstreamTimeoutError as exc:
                if method.name not in self._forwarded:
                    raise  # an engine its prepare step called: not the run's own deadline
                # A forwarded run that outlasts the pod's run_timeout_s or this section's
                # timeout_s would do so again: it fails (the runner would defer and retry an
                # unavailable engine).
                raise InternalError(
                    f"The forwarded run did not finish in time: {exc.message} Raise the pod's "
                    "engines.analytics.run_timeout_s and this server's engines.analytics."
                    "timeout_s for longer jobs.",
                    code="analytics_timeout",
                    status_code=504,
                ) from None
        if response is None:
            raise InternalError("The run ended without a result.")
        return msgspec.to_builtins(response)


class _LatestProgress:
    """The newest progress report of a run, for one reader: reports that arrive faster than
    they are read replace each other (memory stays bounded whatever the reader's pace)."""

    def __init__(self) -> None:
        self._report: tuple[float, str] | None = None
        self._closed = False
        self._changed = anyio.Event()

    def put(self, fraction: float, stage: str) -> None:
        self._report = (fraction, stage)
        self._changed.set()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def get(self) -> tuple[float, str] | None:
        """The next report; None once the run is over."""
        while self._report is None and not self._closed:
            await self._changed.wait()
            self._changed = anyio.Event()
        report, self._report = self._report, None
        return report


@cache
def _engine_list() -> EngineList:
    """The listing, made once: the registered engines and their schemas do not change."""
    return EngineList(
        data=[
            EngineInfo(
                name=name,
                summary=method.summary,
                path=METHOD_OPERATIONS[name].path,
                params_schema=msgspec.json.schema(method.params),
                result_schema=msgspec.json.schema(method.result),
            )
            for name, method in METHODS.items()
        ]
    )


def _check_one_table(request: Any) -> None:
    if (request.data is None) == (request.dataset is None):
        raise InvalidRequestError(
            "Send the table as either 'data' (a list of records) or 'dataset' (a dataset "
            "id), not both and not neither.",
            param="data",
            code="missing_data" if request.data is None else "ambiguous_data",
        )


def _remote_engines(settings: AnalyticsSettings, service_token: str | None) -> dict[str, Engine]:
    from aiplatform.remote.client import RemoteEngine

    return {
        name: RemoteEngine(
            ANALYTICS,
            msgspec.structs.replace(settings, url=url, forward={}),
            name=f"{ANALYTICS.name}/{name}",
            service_token=service_token,
        )
        for name, url in settings.forward.items()
    }


def _response(method: Method[Any, Any], output: MethodOutput) -> Any:
    return response_type(method)(
        engine=method.name,
        result=msgspec.msgpack.decode(output.result, type=method.result),
        summary=output.summary,
        charts=output.charts,
        warnings=output.warnings,
    )


def _public_job(job: Job) -> AnalyticsJob:
    status = "queued" if job.status == "deferred" else job.status
    return AnalyticsJob(
        id=job.id,
        engine=str((job.summary or {}).get("engine", "")),
        status=status,
        progress=job.progress,
        stage=job.message if status in ("queued", "running") else None,
        created_at=int(job.created_at),
        started_at=int(job.started_at) if job.started_at is not None else None,
        finished_at=int(job.finished_at) if job.finished_at is not None else None,
        result=job.result if job.status == "succeeded" else None,
        error=msgspec.convert(job.error, ErrorBody) if job.error is not None else None,
    )


def _too_large(where: str, rows: int, limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The table in '{where}' has {rows} rows; the limit is {limit} rows.",
        param=where,
        code="dataset_too_large",
    )


def _run_timeout(seconds: float) -> InternalError:
    return InternalError(
        f"The run did not finish within {seconds:g}s; submit it as a job (POST /v1/jobs).",
        code="analytics_timeout",
        status_code=504,
    )
