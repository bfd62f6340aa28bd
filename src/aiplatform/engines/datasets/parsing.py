"""An uploaded file read into a table, typed, and written as Parquet: in a worker process.

Reading a CSV or an Excel sheet holds the GIL for as long as the file is large, so it runs in
the datasets engine's worker processes (:func:`parse_upload`), never on the server's threads.
Text columns whose every value is an ISO 8601 time become datetimes; everything else keeps the
type the reader inferred.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import msgspec

from aiplatform.api.datasets import ColumnInfo, ColumnType
from aiplatform.errors import InvalidRequestError, RequestTooLargeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "ParseRequest", "Parsed", "column_infos", "format_of", "parse_upload"]

#: File name extensions by format.
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".tsv", ".txt"),
    "parquet": (".parquet", ".pq"),
    "xlsx": (".xlsx", ".xlsm"),
    "jsonl": (".jsonl", ".ndjson", ".json"),
}


class ParseRequest(msgspec.Struct, kw_only=True):
    data: bytes
    format: str
    filename: str
    max_rows: int
    max_columns: int


class Parsed(msgspec.Struct, kw_only=True):
    parquet: bytes
    rows: int
    columns: list[ColumnInfo]


def format_of(filename: str, given: str | None) -> str:
    """The upload's format: as given, else from the file name's extension (400 when neither
    says)."""
    if given is not None:
        return given
    lowered = filename.lower()
    for name, extensions in FORMATS.items():
        if lowered.endswith(extensions):
            return name
    known = ", ".join(ext for extensions in FORMATS.values() for ext in extensions)
    raise InvalidRequestError(
        f"Cannot tell the format of '{filename[:100]}': name it with an extension ({known}) "
        "or send 'format'.",
        param="format",
        code="unknown_format",
    )


def parse_upload(request: ParseRequest) -> Parsed:
    """Read, type and check the upload; its Parquet bytes and description."""
    frame = _read(request)
    if frame.empty or len(frame.columns) == 0:
        raise InvalidRequestError(
            f"'{request.filename[:100]}' holds no rows.", param="file", code="empty_data"
        )
    if len(frame) > request.max_rows or len(frame.columns) > request.max_columns:
        raise RequestTooLargeError(
            f"'{request.filename[:100]}' has {len(frame)} rows and {len(frame.columns)} "
            f"columns; the limits are {request.max_rows} rows and {request.max_columns} columns.",
            param="file",
            code="dataset_too_large",
        )
    frame.columns = [str(name) for name in frame.columns]
    if len(set(frame.columns)) < len(frame.columns):
        raise InvalidRequestError(
            "The table repeats a column name.", param="file", code="duplicate_column"
        )
    frame = _typed(frame)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return Parsed(parquet=buffer.getvalue(), rows=len(frame), columns=column_infos(frame))


def _read(request: ParseRequest) -> pd.DataFrame:
    import pandas as pd

    source = io.BytesIO(request.data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if request.format == "csv":
                separator = "\t" if request.filename.lower().endswith(".tsv") else ","
                return pd.read_csv(
                    source, sep=separator, low_memory=False, float_precision="round_trip"
                )
            if request.format == "parquet":
                return pd.read_parquet(source)
            if request.format == "xlsx":
                return pd.read_excel(source, engine="openpyxl")
            return pd.read_json(source, lines=True, orient="records", precise_float=True)
    except (ValueError, TypeError, KeyError, OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"'{request.filename[:100]}' cannot be read as {request.format}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
            param="file",
            code="unreadable_dataset",
        ) from None
    except Exception as exc:  # the readers raise their own error types (pyarrow, openpyxl ...)
        raise InvalidRequestError(
            f"'{request.filename[:100]}' cannot be read as {request.format} "
            f"({type(exc).__name__}).",
            param="file",
            code="unreadable_dataset",
        ) from None


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns of ISO 8601 times as datetimes; mixed columns as text (Parquet holds one
    type per column)."""
    import pandas as pd

    for name in frame.columns:
        series = frame[name]
        if series.dtype != object:
            continue
        present = series.dropna()
        if present.empty:
            continue
        if all(isinstance(value, str) for value in present):
            try:
                frame[name] = pd.to_datetime(series, format="ISO8601")
                continue
            except (ValueError, TypeError):
                pass
        frame[name] = series.where(series.isna(), series.astype(str))
    return frame


def column_infos(frame: pd.DataFrame) -> list[ColumnInfo]:
    """Each column's name, inferred type and missing count."""
    return [
        ColumnInfo(
            name=str(name), type=_type_of(frame[name]), missing=int(frame[name].isna().sum())
        )
        for name in frame.columns
    ]


def _type_of(series: pd.Series) -> ColumnType:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"
