"""The server-process step of an analytic engine that calls other engines: what its
``prepare`` gets (:class:`~aiplatform.engines.analytics.method.Preparation`).

It runs before the computation, on the event loop: it may only await (engines, a column read on
a thread); what it computes with numbers belongs in ``compute``, in a worker process.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from aiplatform.auth.scope import check_engine_scope
from aiplatform.errors import AIPlatformError, EngineUnavailableError, InvalidRequestError

if TYPE_CHECKING:
    from aiplatform.engines.analytics.method import Cell, Method
    from aiplatform.engines.analytics.worker import TableData
    from aiplatform.engines.base import Engine

__all__ = ["MethodPreparation", "map_bounded", "require_engine"]

T = TypeVar("T")
U = TypeVar("U")


class MethodPreparation:
    """One request's preparation: the engines the server has, and the request's table."""

    def __init__(
        self,
        method: Method[Any, Any],
        engines: Mapping[str, Engine],
        table: TableData,
        *,
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self._method = method
        self._engines = engines
        self._table = table
        self.warnings: list[str] = []

    def engine(self, kind: str) -> Engine:
        if kind not in self._method.calls:
            raise ValueError(f"{self._method.name} does not declare that it calls {kind}")
        return require_engine(self._method, self._engines, kind)

    async def column(self, name: str, role: str) -> list[Cell]:
        if self._table.parquet is not None:
            parquet = self._table.parquet
            values = await anyio.to_thread.run_sync(lambda: _parquet_column(parquet, name))
        else:
            records = self._table.records or []
            values = [row.get(name) for row in records] if _has(records, name) else None
        if values is None:
            raise InvalidRequestError(
                f"The data have no column '{name}' (params.{role}).",
                param=f"params.{role}",
                code="unknown_column",
            )
        return values

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _has(records: list[dict[str, Cell]], name: str) -> bool:
    return any(name in row for row in records)


def _parquet_column(parquet: bytes, name: str) -> list[Cell] | None:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(io.BytesIO(parquet))
    if name not in file.schema_arrow.names:
        return None
    values: list[Cell] = file.read(columns=[name]).column(0).to_pylist()
    return values


async def map_bounded(
    call: Callable[[T], Awaitable[U]], items: Sequence[T], concurrency: int
) -> list[U]:
    """``call`` on every item, at most ``concurrency`` at a time; the answers in item order
    (the engine calls of a prepare step, bounded so one request cannot flood an engine).
    The first failure is raised as it is (not as an exception group), the other calls
    cancelled."""
    answers: dict[int, U] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            answers[index] = await call(items[index])

    try:
        async with anyio.create_task_group() as group:
            for index in range(len(items)):
                group.start_soon(one, index)
    except BaseExceptionGroup as failures:
        raise _first(failures) from None
    return [answers[index] for index in range(len(items))]


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first error of a (nested) exception group, preferring a platform error."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            leaves.append(error)
    return next((error for error in leaves if isinstance(error, AIPlatformError)), leaves[0])


def require_engine(method: Method[Any, Any], engines: Mapping[str, Engine], kind: str) -> Engine:
    """The engine of ``kind`` that ``method`` calls for the caller: 403 when the caller's API
    key may not use that engine (an analytics-only key reaches no other engine through an
    analytic one), 503 ``engine_unavailable`` when the server has none."""
    check_engine_scope(kind)
    engine = engines.get(kind)
    if engine is None:
        raise EngineUnavailableError(
            f"The {method.name} engine calls the {kind} engine, and this server has none: "
            f"serve it here, or set engines.{kind}.url to the service that runs it.",
            code="engine_unavailable",
        )
    return engine
