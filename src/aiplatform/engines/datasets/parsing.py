"""An uploaded file read into a table, typed, and written as Parquet: in a worker process.

Reading a CSV or an Excel sheet holds the GIL for as long as the file is large, so it runs in
the datasets engine's worker processes (:func:`parse_upload`), never on the server's threads.

A file is read no further than one row past ``max_rows`` (a Parquet file's size is read from its
footer first), so a small compressed file cannot unfold into more rows than the limits allow.
Text that is not UTF-8 is read with U+FFFD in place of the bytes it cannot decode. A ``.json``
file that holds one array is read as an array of records; other JSON files as JSON lines, whose
values keep their JSON types (no text is read as a number or a date).

Typing: text columns whose every value is an ISO 8601 time become datetimes. Times written with
a UTC offset (``Z``, ``+01:00`` ...) are stored in UTC, without a time zone; a column that mixes
times with and without an offset stays text. Other mixed columns become text, objects and lists
(JSON, Parquet structs) as JSON text and bytes decoded as UTF-8; everything else keeps the type
the reader inferred. A Parquet file's index (a pandas DataFrame's, unless the default one) is
kept as columns.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import msgspec

from aiplatform.api.datasets import ColumnInfo, ColumnType
from aiplatform.errors import AIPlatformError, InvalidRequestError, RequestTooLargeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "ParseRequest", "Parsed", "column_infos", "format_of", "parse_upload"]

#: File name extensions by format (a ``.json`` file holding one array is an array of records).
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".tsv", ".txt"),
    "parquet": (".parquet", ".pq"),
    "xlsx": (".xlsx", ".xlsm"),
    "jsonl": (".jsonl", ".ndjson", ".json"),
}

#: A time of day followed by a UTC offset, at the end of an ISO 8601 text.
_OFFSET = re.compile(
    r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{1,2}(?::?\d{2})?)\s*$", re.IGNORECASE
)
#: A JSON document that is one array (after an optional byte order mark).
_JSON_ARRAY = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\[")


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
    with _unreadable_is_400(request):
        frame = _with_index_as_columns(_read(request))
    if frame.empty or len(frame.columns) == 0:
        raise InvalidRequestError(
            f"'{request.filename[:100]}' holds no rows.", param="file", code="empty_data"
        )
    _check_limits(request, len(frame), len(frame.columns))
    frame.columns = [str(name) for name in frame.columns]
    if len(set(frame.columns)) < len(frame.columns):
        raise InvalidRequestError(
            "The table repeats a column name.", param="file", code="duplicate_column"
        )
    with _unreadable_is_400(request):
        frame = _typed(frame)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
    return Parsed(parquet=buffer.getvalue(), rows=len(frame), columns=column_infos(frame))


@contextmanager
def _unreadable_is_400(request: ParseRequest) -> Iterator[None]:
    """Any failure of the readers or of the Parquet writer on this file: 400
    ``unreadable_dataset`` (the platform's own errors and running out of memory pass)."""
    try:
        yield
    except (AIPlatformError, MemoryError):
        raise
    except (ValueError, TypeError, KeyError, OSError, UnicodeError) as exc:
        first_line = str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise _unreadable(request, f": {first_line}") from None
    except Exception as exc:  # the readers raise their own error types (pyarrow, openpyxl ...)
        raise _unreadable(request, f" ({type(exc).__name__}).") from None


def _unreadable(request: ParseRequest, reason: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"'{request.filename[:100]}' cannot be read as {request.format}{reason}",
        param="file",
        code="unreadable_dataset",
    )


def _check_limits(request: ParseRequest, rows: int, columns: int) -> None:
    over: list[str] = []
    if rows > request.max_rows:
        over.append(f"more than {request.max_rows} rows")
    if columns > request.max_columns:
        over.append(f"{columns} columns")
    if over:
        raise RequestTooLargeError(
            f"'{request.filename[:100]}' has {' and '.join(over)}; the limits are "
            f"{request.max_rows} rows and {request.max_columns} columns.",
            param="file",
            code="dataset_too_large",
        )


def _read(request: ParseRequest) -> pd.DataFrame:
    """The file as read, at most one row past ``max_rows`` (the caller refuses that row)."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if request.format == "csv":
            return _read_csv(request)
        if request.format == "parquet":
            _check_parquet_size(request)
            return pd.read_parquet(io.BytesIO(request.data))
        if request.format == "xlsx":
            return pd.read_excel(
                io.BytesIO(request.data), engine="openpyxl", nrows=request.max_rows + 1
            )
        if request.filename.lower().endswith(".json") and _JSON_ARRAY.match(request.data):
            return _read_json_array(request)
        return pd.read_json(
            io.BytesIO(request.data),
            lines=True,
            orient="records",
            dtype=False,
            convert_dates=False,
            keep_default_dates=False,
            precise_float=True,
            nrows=request.max_rows + 1,
            encoding="utf-8-sig",
            encoding_errors="replace",
        )


def _read_csv(request: ParseRequest) -> pd.DataFrame:
    """A CSV (or TSV). ``index_col=False``: a row with more values than the header is refused,
    never read as an index column that shifts every value one column left."""
    import pandas as pd

    separator = "\t" if request.filename.lower().endswith(".tsv") else ","
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.BytesIO(request.data),
                sep=separator,
                index_col=False,
                nrows=request.max_rows + 1,
                low_memory=False,
                float_precision="round_trip",
                encoding_errors="replace",
            )
    except pd.errors.ParserWarning:
        raise _unreadable(request, ": a row has more values than the header names.") from None


def _check_parquet_size(request: ParseRequest) -> None:
    """413 from the footer's row and column counts, before any column is decompressed."""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(io.BytesIO(request.data))
    _check_limits(request, file.metadata.num_rows, len(file.schema_arrow.names))


def _read_json_array(request: ParseRequest) -> pd.DataFrame:
    """A JSON array of objects, one per row (read whole: the upload's size bounds it)."""
    import pandas as pd

    records = json.loads(request.data.decode("utf-8-sig", errors="replace"))
    if not all(isinstance(record, dict) for record in records):
        raise _unreadable(request, ": the array must hold objects, one per row.")
    return pd.DataFrame.from_records(records[: request.max_rows + 1])


def _with_index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its index as columns, unless that is the default 0, 1, 2 ... (a Parquet
    file written from a pandas DataFrame keeps its index; ``to_parquet(index=False)`` would
    drop it)."""
    import pandas as pd

    index = frame.index
    default = (
        isinstance(index, pd.RangeIndex)
        and index.name is None
        and index.start == 0
        and index.step == 1
    )
    return frame if default else frame.reset_index()


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns of ISO 8601 times as datetimes; mixed columns as text (Parquet holds one
    type per column)."""
    for name in frame.columns:
        series = frame[name]
        if series.dtype != object:
            continue
        present = series.dropna()
        if present.empty:
            continue
        if all(isinstance(value, str) for value in present):
            times = _datetimes(series, present)
            if times is not None:
                frame[name] = times
            continue
        frame[name] = series.map(_as_text, na_action="ignore")
    return frame


def _datetimes(series: pd.Series, present: pd.Series) -> pd.Series | None:
    """The text column as datetimes when every value is an ISO 8601 time; times with a UTC
    offset in UTC without a time zone (offsets may differ from row to row); None when some
    values have an offset and others not, or a value is no time."""
    import pandas as pd

    try:  # most text columns are no times: their first value says so, at once
        pd.to_datetime(present.iloc[:1], format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        return None
    with_offset = present.str.contains(_OFFSET, regex=True)
    in_utc = bool(with_offset.all())
    if with_offset.any() and not in_utc:
        return None
    with warnings.catch_warnings():
        # pandas 2 warns (pandas 3 raises) on offsets that _OFFSET did not see.
        warnings.simplefilter("ignore", FutureWarning)
        try:
            times = pd.to_datetime(series, format="ISO8601", utc=in_utc)
        except (ValueError, TypeError, OverflowError):
            return None
    if in_utc:
        return times.dt.tz_localize(None)
    # A zone here is an offset _OFFSET missed, which pandas may have applied to every value.
    return times if pd.api.types.is_datetime64_dtype(times) else None


def _as_text(value: object) -> str:
    """A cell of a mixed column as text: bytes decoded, objects and lists as JSON."""
    import numpy as np

    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list | tuple | np.ndarray):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return str(value)


def _json_default(value: object) -> object:
    """NumPy arrays and scalars (Parquet lists and structs) as plain values; the rest as text."""
    import numpy as np

    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


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
