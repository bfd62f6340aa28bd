"""The server-process step of an analytic engine that calls other engines: what its
``prepare`` gets (:class:`~aiplatform.engines.analytics.method.Preparation`).

It runs before the computation, on the event loop: it may only await (engines, a column read on
a thread); what it computes with numbers belongs in ``compute``, in a worker process.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import anyio

from aiplatform.errors import EngineUnavailableError, InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiplatform.engines.analytics.method import Cell, Method
    from aiplatform.engines.analytics.worker import TableData
    from aiplatform.engines.base import Engine

__all__ = ["MethodPreparation"]


class MethodPreparation:
    """One request's preparation: the engines the server has, and the request's table."""

    def __init__(
        self, method: Method[Any, Any], engines: Mapping[str, Engine], table: TableData
    ) -> None:
        self._method = method
        self._engines = engines
        self._table = table
        self.warnings: list[str] = []

    def engine(self, kind: str) -> Engine:
        if kind not in self._method.calls:
            raise ValueError(f"{self._method.name} does not declare that it calls {kind}")
        engine = self._engines.get(kind)
        if engine is None:
            raise EngineUnavailableError(
                f"The {self._method.name} engine calls the {kind} engine, and this server has "
                f"none: serve it here, or set engines.{kind}.url to the service that runs it.",
                code="engine_unavailable",
            )
        return engine

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
