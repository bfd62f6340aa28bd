"""Datasets: uploads in every format become typed tables kept per owner; bad files are 4xx."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiplatform.api.datasets import DatasetListRequest, DatasetRef, DatasetUpload
from aiplatform.engines.datasets.engine import LocalDatasetsEngine
from aiplatform.engines.datasets.operations import (
    DATASET_TABLE,
    DELETE_DATASET,
    EXAMPLE_CSV,
    GET_DATASET,
    LIST_DATASETS,
    UPLOAD_DATASET,
)
from aiplatform.engines.datasets.settings import DatasetsSettings
from aiplatform.errors import InvalidRequestError, NotFoundError, RequestTooLargeError
from aiplatform.forms import FilePart
from aiplatform.tenant import acting_as

pytestmark = pytest.mark.anyio

ROWS = [
    {"when": "2024-01-01T00:00:00", "city": "Oslo", "n": 3, "x": 1.5, "ok": True},
    {"when": "2024-01-02T00:00:00", "city": "Rome", "n": 4, "x": None, "ok": False},
    {"when": "2024-01-03T00:00:00", "city": None, "n": 5, "x": 2.5, "ok": True},
]
TYPES = {"when": "datetime", "city": "string", "n": "integer", "x": "number", "ok": "boolean"}


def _files() -> dict[str, bytes]:
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    csv = frame.to_csv(index=False).encode()
    jsonl = "\n".join(json.dumps(row) for row in ROWS).encode()
    parquet = io.BytesIO()
    typed = frame.assign(when=pd.to_datetime(frame["when"]))
    typed.to_parquet(parquet, index=False)
    excel = io.BytesIO()
    typed.to_excel(excel, index=False, engine="openpyxl")
    return {
        "rows.csv": csv,
        "rows.jsonl": jsonl,
        "rows.parquet": parquet.getvalue(),
        "rows.xlsx": excel.getvalue(),
    }


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[LocalDatasetsEngine]:
    settings = DatasetsSettings(data_dir=str(tmp_path), max_rows=100, max_columns=10)
    async with LocalDatasetsEngine(settings) as engine:
        yield engine


def _upload(filename: str, data: bytes, name: str | None = None) -> DatasetUpload:
    return DatasetUpload(file=FilePart(filename=filename, data=data), name=name)


@pytest.mark.parametrize("filename", ["rows.csv", "rows.jsonl", "rows.parquet", "rows.xlsx"])
async def test_every_format_is_read_with_its_column_types(
    engine: LocalDatasetsEngine, filename: str
) -> None:
    dataset = await engine.invoke(UPLOAD_DATASET, _upload(filename, _files()[filename]))
    assert dataset.rows == 3
    assert dataset.name == filename
    assert {column.name: column.type for column in dataset.columns} == TYPES
    missing = {column.name: column.missing for column in dataset.columns}
    assert missing["x"] == 1
    assert missing["city"] == 1

    import pandas as pd

    table = await engine.invoke(DATASET_TABLE, DatasetRef(dataset_id=dataset.id))
    frame = pd.read_parquet(io.BytesIO(table.parquet))
    assert frame["n"].tolist() == [3, 4, 5]
    assert frame["when"].dt.day.tolist() == [1, 2, 3]


async def test_datasets_are_listed_read_and_deleted_per_owner(
    engine: LocalDatasetsEngine,
) -> None:
    with acting_as("alice"):
        first = await engine.invoke(UPLOAD_DATASET, _upload("a.csv", EXAMPLE_CSV, name="first"))
        second = await engine.invoke(UPLOAD_DATASET, _upload("b.csv", EXAMPLE_CSV))
        listed = await engine.invoke(LIST_DATASETS, DatasetListRequest())
        assert [d.id for d in listed.data] == [second.id, first.id]
        assert (await engine.invoke(GET_DATASET, DatasetRef(dataset_id=first.id))).name == "first"
    with acting_as("bob"):
        assert (await engine.invoke(LIST_DATASETS, DatasetListRequest())).data == []
        with pytest.raises(NotFoundError):
            await engine.invoke(GET_DATASET, DatasetRef(dataset_id=first.id))
        with pytest.raises(NotFoundError):
            await engine.invoke(DELETE_DATASET, DatasetRef(dataset_id=first.id))
    with acting_as("alice"):
        await engine.invoke(DELETE_DATASET, DatasetRef(dataset_id=first.id))
        with pytest.raises(NotFoundError) as missing:
            await engine.invoke(DATASET_TABLE, DatasetRef(dataset_id=first.id))
        assert missing.value.code == "dataset_not_found"
        listed = await engine.invoke(LIST_DATASETS, DatasetListRequest())
        assert [d.id for d in listed.data] == [second.id]


async def test_a_dataset_survives_a_restart(tmp_path: Path) -> None:
    settings = DatasetsSettings(data_dir=str(tmp_path))
    async with LocalDatasetsEngine(settings) as engine:
        dataset = await engine.invoke(UPLOAD_DATASET, _upload("v.csv", EXAMPLE_CSV))
    async with LocalDatasetsEngine(settings) as engine:
        again = await engine.invoke(GET_DATASET, DatasetRef(dataset_id=dataset.id))
        table = await engine.invoke(DATASET_TABLE, DatasetRef(dataset_id=dataset.id))
    assert again == dataset
    assert table.rows == 5


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        ("broken.parquet", b"not parquet at all", "unreadable_dataset"),
        ("broken.xlsx", b"PK\x03\x04 not a workbook", "unreadable_dataset"),
        ("broken.jsonl", b'{"a": 1}\n{"a": ', "unreadable_dataset"),
        ("empty.csv", b"a,b\n", "empty_data"),
        ("nothing.csv", b"", "unreadable_dataset"),
        ("table.dat", b"a,b\n1,2\n", "unknown_format"),
    ],
)
async def test_unreadable_uploads_are_a_400_naming_the_problem(
    engine: LocalDatasetsEngine, filename: str, data: bytes, code: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        await engine.invoke(UPLOAD_DATASET, _upload(filename, data))
    assert refused.value.code == code
    assert refused.value.status_code == 400
    assert (await engine.invoke(LIST_DATASETS, DatasetListRequest())).data == []


@pytest.mark.parametrize(
    "data",
    [
        ("n\n" + "\n".join(str(i) for i in range(101)) + "\n").encode(),
        (",".join(f"c{i}" for i in range(11)) + "\n" + ",".join("1" * 11) + "\n").encode(),
    ],
    ids=["rows", "columns"],
)
async def test_a_table_over_the_limits_is_a_413(engine: LocalDatasetsEngine, data: bytes) -> None:
    with pytest.raises(RequestTooLargeError) as refused:
        await engine.invoke(UPLOAD_DATASET, _upload("big.csv", data))
    assert refused.value.code == "dataset_too_large"
