"""The analytic computation as it runs in a worker process: table in, typed outcome out.

:func:`run_method` is the module-level function the engine's worker pool calls. Tables cross
the process boundary as inline records or as a stored dataset's Parquet bytes; params and the
result cross as msgpack and are decoded with the method's own types on each side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from aiplatform.engines.analytics.charts import json_safe
from aiplatform.engines.analytics.method import Method, Records, Run
from aiplatform.errors import InvalidRequestError, RequestTooLargeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MethodCall", "MethodOutput", "TableData", "run_method"]


class TableData(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A table as it crosses to the worker: inline records, or a dataset's Parquet bytes."""

    records: Records | None = None
    parquet: bytes | None = None


class MethodCall(msgspec.Struct, kw_only=True):
    method: str
    #: the params, msgpack-encoded (decoded with the method's params type in the worker)
    params: bytes
    seed: int
    table: TableData
    #: the params' other tables, by params field
    tables: dict[str, TableData] = msgspec.field(default_factory=dict)
    max_rows: int = 1_000_000
    max_columns: int = 1_000
    #: what the method's prepare step returned, msgpack-encoded (empty: it has none)
    prepared: bytes = b""
    #: warnings of the prepare step
    warnings: list[str] = msgspec.field(default_factory=list)


class MethodOutput(msgspec.Struct, kw_only=True):
    #: the result, msgpack-encoded
    result: bytes
    summary: str
    charts: list[dict[str, Any]]
    warnings: list[str]


def run_method(call: MethodCall, progress: Callable[[float, str], None]) -> MethodOutput:
    """Decode the call, build the tables, compute, encode the outcome."""
    from aiplatform.engines.analytics.methods import METHODS

    method: Method[Any, Any] = METHODS[call.method]
    params = msgspec.msgpack.decode(call.params, type=method.params)
    frame = to_frame(call.table, "data", call.max_rows, call.max_columns)
    tables = {
        name: to_frame(table, f"params.{name}", call.max_rows, call.max_columns)
        for name, table in call.tables.items()
    }
    if len(frame) < method.min_rows:
        raise InvalidRequestError(
            f"The {method.name} engine needs at least {method.min_rows} rows; the data have "
            f"{len(frame)}.",
            param="data",
            code="too_few_rows",
        )
    prepared = msgspec.msgpack.decode(call.prepared) if call.prepared else None
    run = Run(seed=call.seed, progress=progress, tables=tables, prepared=prepared)
    run.warnings.extend(call.warnings)
    outcome = method.compute(frame, params, run)
    if not isinstance(outcome.result, method.result):
        raise TypeError(f"{method.name} returned {type(outcome.result).__name__}")
    result = msgspec.msgpack.encode(outcome.result, enc_hook=_plain)
    _check_finite(msgspec.msgpack.decode(result), f"{method.name} result")
    return MethodOutput(
        result=result,
        summary=outcome.summary,
        charts=[_json_tree(chart) for chart in outcome.charts],
        warnings=run.warnings,
    )


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as the Python values msgspec encodes."""
    for convert in ("item", "tolist"):
        method = getattr(value, convert, None)
        if callable(method):
            return method()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _check_finite(value: Any, where: str) -> None:
    """A result holds no NaN or infinity (JSON has none; a missing value is None): one that
    does is a bug of the engine, refused here rather than sent as a wrong answer."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds {value}; results must use None for a missing value")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")


def _json_tree(value: Any) -> Any:
    """A chart with every value JSON-safe (numpy values as numbers, NaN as null)."""
    if isinstance(value, dict):
        return {str(key): _json_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_tree(item) for item in value]
    return json_safe(value)


def to_frame(table: TableData, where: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    """The table as a DataFrame, within the size limits (413 ``dataset_too_large``); empty
    data are a 400 ``empty_data``."""
    import io

    import pandas as pd

    if table.parquet is not None:
        frame = pd.read_parquet(io.BytesIO(table.parquet))
    else:
        records = table.records or []
        if len(records) > max_rows:
            raise _too_large(where, f"{len(records)} rows", f"{max_rows} rows")
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    if len(frame) > max_rows:
        raise _too_large(where, f"{len(frame)} rows", f"{max_rows} rows")
    if len(frame.columns) > max_columns:
        raise _too_large(where, f"{len(frame.columns)} columns", f"{max_columns} columns")
    if frame.empty:
        raise InvalidRequestError(
            f"The table in '{where}' is empty.", param=where, code="empty_data"
        )
    frame.columns = [str(name) for name in frame.columns]
    return frame


def _too_large(where: str, has: str, limit: str) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The table in '{where}' has {has}; the limit is {limit}.",
        param=where,
        code="dataset_too_large",
    )
