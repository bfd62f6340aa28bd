"""Where datasets are kept: a SQLite catalogue (owner, name, columns) and one Parquet file each.

A table's file is written whole (temporary file, fsync, rename) before its catalogue row is
committed, so a listed dataset always has its table; a file without a row (a crash between the
two) is removed when the store opens.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import msgspec

from aiplatform.api.datasets import ColumnInfo, Dataset
from aiplatform.errors import NotFoundError
from aiplatform.storage.sqlite import connect

__all__ = ["DatasetStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    filename TEXT NOT NULL,
    format TEXT NOT NULL,
    rows INTEGER NOT NULL,
    columns TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS datasets_owner ON datasets (owner, seq);
"""
_COLUMNS = "id, name, filename, format, rows, columns, bytes, created_at"


class DatasetStore:
    def __init__(self, folder: str | Path, *, key: str | None = None) -> None:
        """``key``: the storage key the catalogue is encrypted with (None: plain SQLite)."""
        self.folder = Path(folder)
        self._key = key
        self._tables = self.folder / "tables"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self._tables.mkdir(parents=True, exist_ok=True)
        db = connect(
            self.folder / "datasets.sqlite3",
            key=self._key,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        self._db = db
        known = {row[0] for row in db.execute("SELECT id FROM datasets")}
        for path in self._tables.iterdir():
            if path.stem not in known or path.suffix != ".parquet":
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the dataset store is not open")
        return self._db

    def add(
        self,
        owner: str,
        *,
        name: str,
        filename: str,
        format: str,
        rows: int,
        columns: list[ColumnInfo],
        parquet: bytes,
    ) -> Dataset:
        dataset = Dataset(
            id=f"ds-{uuid.uuid4().hex[:24]}",
            name=name,
            filename=filename,
            format=format,
            rows=rows,
            columns=columns,
            bytes=len(parquet),
            created_at=int(time.time()),
        )
        path = self._path(dataset.id)
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(parquet)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _sync_folder(self._tables)
        with self._lock:
            self._connection().execute(
                f"INSERT INTO datasets (owner, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    dataset.id,
                    name,
                    filename,
                    format,
                    rows,
                    msgspec.json.encode(columns).decode(),
                    dataset.bytes,
                    dataset.created_at,
                ),
            )
        return dataset

    def owned(self, owner: str, limit: int) -> list[Dataset]:
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    f"SELECT {_COLUMNS} FROM datasets WHERE owner = ? ORDER BY seq DESC LIMIT ?",
                    (owner, limit),
                )
                .fetchall()
            )
        return [_dataset(row) for row in rows]

    def get(self, owner: str, dataset_id: str) -> Dataset:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"SELECT {_COLUMNS} FROM datasets WHERE owner = ? AND id = ?",
                    (owner, dataset_id),
                )
                .fetchone()
            )
        if row is None:
            raise _not_found(dataset_id)
        return _dataset(row)

    def table(self, owner: str, dataset_id: str) -> tuple[Dataset, bytes]:
        """The dataset and its Parquet bytes; 404 also when a delete removed the file between
        reading the catalogue and reading the file."""
        dataset = self.get(owner, dataset_id)
        try:
            parquet = self._path(dataset.id).read_bytes()
        except FileNotFoundError:
            raise _not_found(dataset_id) from None
        return dataset, parquet

    def delete(self, owner: str, dataset_id: str) -> None:
        dataset = self.get(owner, dataset_id)
        with self._lock:
            self._connection().execute(
                "DELETE FROM datasets WHERE owner = ? AND id = ?", (owner, dataset.id)
            )
        self._path(dataset.id).unlink(missing_ok=True)

    def _path(self, dataset_id: str) -> Path:
        return self._tables / f"{dataset_id}.parquet"


def _not_found(dataset_id: str) -> NotFoundError:
    return NotFoundError(
        f"No dataset '{dataset_id}' exists.", param="dataset_id", code="dataset_not_found"
    )


def _dataset(row: tuple[object, ...]) -> Dataset:
    id_, name, filename, format_, rows, columns, size, created_at = row
    return Dataset(
        id=str(id_),
        name=str(name),
        filename=str(filename),
        format=str(format_),
        rows=int(str(rows)),
        columns=msgspec.json.decode(str(columns), type=list[ColumnInfo]),
        bytes=int(str(size)),
        created_at=int(str(created_at)),
    )


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
