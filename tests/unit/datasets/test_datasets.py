"""Datasets: uploads in every format become typed tables kept per owner; bad files are 4xx."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiplatform.api.datasets import Dataset, DatasetListRequest, DatasetRef, DatasetUpload
from aiplatform.engines.datasets.engine import LocalDatasetsEngine
from aiplatform.engines.datasets.operations import (
    DATASET_TABLE,
    DELETE_DATASET,
    EXAMPLE_CSV,
    GET_DATASET,
    LIST_DATASETS,
    UPLOAD_DATASET,
)
from aiplatform.engines.datasets.parsing import Parsed, ParseRequest, format_of, parse_upload
from aiplatform.engines.datasets.settings import DatasetsSettings
from aiplatform.engines.datasets.store import DatasetStore
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
        ("scalars.json", b"[1, 2]", "unreadable_dataset"),
        ("wide_rows.csv", b"a,b\n1,2,3\n4,5,6\n", "unreadable_dataset"),
        ("ragged.csv", b"a,b\n1,2,3\n4\n", "unreadable_dataset"),
        ("huge.jsonl", b'{"id": 123456789012345678901234567890}\n', "unreadable_dataset"),
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


def _parquet(frame: Any, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, **kwargs)
    return buffer.getvalue()


def _parse(filename: str, data: bytes, *, max_rows: int = 100) -> Parsed:
    """The upload parsed in this process (where the readers can be watched)."""
    return parse_upload(
        ParseRequest(
            data=data,
            format=format_of(filename, None),
            filename=filename,
            max_rows=max_rows,
            max_columns=10,
        )
    )


async def _stored(engine: LocalDatasetsEngine, filename: str, data: bytes) -> tuple[Dataset, Any]:
    """The dataset uploaded, and its stored table as a DataFrame."""
    import pandas as pd

    dataset = await engine.invoke(UPLOAD_DATASET, _upload(filename, data))
    table = await engine.invoke(DATASET_TABLE, DatasetRef(dataset_id=dataset.id))
    return dataset, pd.read_parquet(io.BytesIO(table.parquet))


def test_a_long_parquet_file_is_refused_from_its_footer(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    # 101 rows of one repeated value: a few hundred bytes, however many rows it holds.
    data = _parquet(pd.DataFrame({"n": [7] * 101}), index=False, compression="zstd")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the table was read")

    monkeypatch.setattr(pd, "read_parquet", never)
    with pytest.raises(RequestTooLargeError) as refused:
        _parse("long.parquet", data)
    assert refused.value.code == "dataset_too_large"


@pytest.mark.parametrize(
    ("filename", "header", "row", "bad"),
    [
        ("long.csv", "n", "{i}", "1,2,3,4"),
        ("long.jsonl", "", '{{"n": {i}}}', '{"n": '),
    ],
)
async def test_a_long_text_file_is_read_no_further_than_one_row_past_the_limit(
    engine: LocalDatasetsEngine, filename: str, header: str, row: str, bad: str
) -> None:
    # A malformed line after row 101 is never reached: the 413 comes first, not a 400.
    lines = [header] if header else []
    lines += [row.format(i=i) for i in range(101)] + [bad] + [row.format(i=i) for i in range(5000)]
    with pytest.raises(RequestTooLargeError) as refused:
        await engine.invoke(UPLOAD_DATASET, _upload(filename, "\n".join(lines).encode()))
    assert refused.value.code == "dataset_too_large"


def test_a_long_workbook_is_read_no_further_than_one_row_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pandas as pd

    excel = io.BytesIO()
    pd.DataFrame({"n": range(300)}).to_excel(excel, index=False, engine="openpyxl")
    read_excel = pd.read_excel
    lengths: list[int] = []

    def watched(*args: object, **kwargs: object) -> pd.DataFrame:
        frame = read_excel(*args, **kwargs)
        lengths.append(len(frame))
        return frame

    monkeypatch.setattr(pd, "read_excel", watched)
    with pytest.raises(RequestTooLargeError):
        _parse("long.xlsx", excel.getvalue())
    assert lengths == [101]


async def test_undecodable_parquet_bytes_are_text_with_replacement_characters(
    engine: LocalDatasetsEngine,
) -> None:
    import pandas as pd

    data = _parquet(pd.DataFrame({"raw": [b"\xff\xfeok", b"plain", None]}), index=False)
    dataset, frame = await _stored(engine, "raw.parquet", data)
    assert [(c.name, c.type, c.missing) for c in dataset.columns] == [("raw", "string", 1)]
    assert frame["raw"].tolist()[:2] == ["\ufffd\ufffdok", "plain"]


async def test_a_parquet_index_is_kept_as_columns(engine: LocalDatasetsEngine) -> None:
    import pandas as pd

    days = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=3), "v": [1, 2, 3]})
    dataset, frame = await _stored(engine, "days.parquet", _parquet(days.set_index("date")))
    assert {c.name: c.type for c in dataset.columns} == {"date": "datetime", "v": "integer"}
    assert frame["date"].dt.day.tolist() == [1, 2, 3]
    # The default index 0, 1, 2 ... is no column.
    dataset, _ = await _stored(engine, "plain.parquet", _parquet(days))
    assert [c.name for c in dataset.columns] == ["date", "v"]


async def test_json_values_keep_their_json_types(engine: LocalDatasetsEngine) -> None:
    lines = [
        {"timestamp": 1700000000, "created_at": 5, "date": 3, "code": "007", "doc": {"k": [1]}},
        {"timestamp": 1700000001, "created_at": 6, "date": 4, "code": "010", "doc": ["x", None]},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    dataset, frame = await _stored(engine, "events.jsonl", data)
    assert {c.name: c.type for c in dataset.columns} == {
        "timestamp": "integer",
        "created_at": "integer",
        "date": "integer",
        "code": "string",
        "doc": "string",
    }
    assert frame["timestamp"].tolist() == [1700000000, 1700000001]
    assert frame["code"].tolist() == ["007", "010"]
    assert [json.loads(text) for text in frame["doc"]] == [{"k": [1]}, ["x", None]]


async def test_a_json_file_holding_an_array_is_read_as_records(
    engine: LocalDatasetsEngine,
) -> None:
    data = b' \n[{"a": 1, "b": "x"}, {"a": 2, "b": {"c": 1}}, {"a": 3}]'
    dataset, frame = await _stored(engine, "records.json", data)
    assert dataset.rows == 3
    assert {c.name: c.type for c in dataset.columns} == {"a": "integer", "b": "string"}
    assert frame["a"].tolist() == [1, 2, 3]
    assert frame["b"].tolist()[:2] == ["x", '{"c": 1}']
    # The same limits as every other file.
    rows = json.dumps([{"a": i} for i in range(101)]).encode()
    with pytest.raises(RequestTooLargeError):
        await engine.invoke(UPLOAD_DATASET, _upload("long.json", rows))


async def test_times_with_utc_offsets_are_stored_in_utc(engine: LocalDatasetsEngine) -> None:
    data = (
        b"mixed,same,naive_and_aware\n"
        b"2024-01-01T12:00:00+01:00,2024-01-01T00:00:00Z,2024-01-01T00:00:00\n"
        b"2024-01-01T12:00:00-02:00,2024-01-02T00:00:00Z,2024-01-01T00:00:00+02:00\n"
    )
    dataset, frame = await _stored(engine, "times.csv", data)
    assert {c.name: c.type for c in dataset.columns} == {
        "mixed": "datetime",
        "same": "datetime",
        "naive_and_aware": "string",
    }
    assert [str(t) for t in frame["mixed"]] == ["2024-01-01 11:00:00", "2024-01-01 14:00:00"]
    assert frame["mixed"].dt.tz is None
    assert frame["same"].dt.tz is None
    assert frame["naive_and_aware"].tolist() == ["2024-01-01T00:00:00", "2024-01-01T00:00:00+02:00"]


async def test_text_that_is_not_utf8_is_read_with_replacement_characters(
    engine: LocalDatasetsEngine,
) -> None:
    dataset, frame = await _stored(
        engine, "latin1.csv", "city,n\nMálaga,1\nOslo,2\n".encode("latin-1")
    )
    assert dataset.rows == 2
    assert frame["city"].tolist() == ["M\ufffdlaga", "Oslo"]


async def test_a_number_too_large_for_64_bits_is_kept_as_text(
    engine: LocalDatasetsEngine,
) -> None:
    dataset, frame = await _stored(engine, "big.csv", b"id\n123456789012345678901234567890\n1\n")
    assert [(c.name, c.type) for c in dataset.columns] == [("id", "string")]
    assert frame["id"].tolist() == ["123456789012345678901234567890", "1"]


def test_a_table_deleted_while_it_is_read_is_a_404(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DatasetStore(tmp_path)
    store.open()
    dataset = store.add(
        "alice", name="t", filename="t.csv", format="csv", rows=5, columns=[], parquet=b"PAR1"
    )
    found = store.get

    def found_then_deleted(owner: str, dataset_id: str) -> Dataset:
        described = found(owner, dataset_id)
        monkeypatch.setattr(store, "get", found)
        store.delete(owner, dataset_id)
        return described

    monkeypatch.setattr(store, "get", found_then_deleted)
    with pytest.raises(NotFoundError) as missing:
        store.table("alice", dataset.id)
    assert missing.value.code == "dataset_not_found"
    store.close()
