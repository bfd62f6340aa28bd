"""Wire shapes of ``/v1/datasets``: tables uploaded once and named by id in analytic calls."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.api.ids import Id
from aiplatform.forms import FilePart

__all__ = [
    "ColumnInfo",
    "ColumnType",
    "Dataset",
    "DatasetDeleted",
    "DatasetList",
    "DatasetListRequest",
    "DatasetRef",
    "DatasetTable",
    "DatasetUpload",
]

#: A column's type as inferred from its values.
ColumnType = Literal["integer", "number", "boolean", "datetime", "string"]


class DatasetUpload(msgspec.Struct, kw_only=True):
    """``POST /v1/datasets`` (multipart): a CSV, Parquet, Excel (.xlsx) or JSON-lines file."""

    file: FilePart
    #: A name to list it by; unset: the file's name.
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    #: ``csv``, ``parquet``, ``xlsx`` or ``jsonl``; unset: from the file name's extension.
    format: Literal["csv", "parquet", "xlsx", "jsonl"] | None = None


class ColumnInfo(msgspec.Struct, kw_only=True):
    name: str
    type: ColumnType
    #: Rows without a value in this column.
    missing: int


class Dataset(msgspec.Struct, kw_only=True):
    id: str
    name: str
    filename: str
    format: str
    rows: int
    columns: list[ColumnInfo]
    #: Size of the stored table (Parquet), in bytes.
    bytes: int
    created_at: int
    object: Literal["dataset"] = "dataset"


class DatasetListRequest(msgspec.Struct, kw_only=True):
    """``GET /v1/datasets``: the caller's datasets, newest first."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class DatasetList(msgspec.Struct, kw_only=True):
    data: list[Dataset]
    object: Literal["list"] = "list"


class DatasetRef(msgspec.Struct, kw_only=True):
    dataset_id: Id


class DatasetDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["dataset.deleted"] = "dataset.deleted"


class DatasetTable(msgspec.Struct, kw_only=True):
    """``GET /v1/datasets/{id}/table``: the stored table as Parquet (base64 in JSON), which
    analytic engines read wherever the datasets are stored."""

    id: str
    rows: int
    columns: list[ColumnInfo]
    parquet: bytes
    object: Literal["dataset.table"] = "dataset.table"
