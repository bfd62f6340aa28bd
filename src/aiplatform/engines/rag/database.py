"""The RAG store's SQLite file: its schema, connections and transactions.

One writer connection, used under a lock, and one reader connection per thread (WAL lets reads
run beside a write). Every write is one ``BEGIN IMMEDIATE`` transaction with
``synchronous=FULL``: once it commits, it survives a crash or power loss. ``secure_delete``
overwrites the pages that deletes free.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import msgspec

from aiplatform.storage.sqlite import connect

__all__ = ["Database", "fts_table", "json_text"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    embedding_model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    shortened INTEGER NOT NULL,
    index_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (owner, kind, name)
);
CREATE TABLE IF NOT EXISTS documents (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    filename TEXT,
    created_at INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    UNIQUE (collection_id, id)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_pk INTEGER NOT NULL REFERENCES documents(pk) ON DELETE CASCADE,
    collection_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_collection ON chunks(collection_id, id);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_pk);
"""

_COLLECTION_ID = re.compile(r"col_[0-9a-f]{20}")


class Database:
    def __init__(self, path: Path, *, key: str | None = None) -> None:
        """``key``: the storage key the file is encrypted with (None: plain SQLite)."""
        self.path = path
        self._key = key
        #: Held by every write, and by changes to the in-memory indexes made with one.
        self.write_lock = threading.RLock()
        self._writer: sqlite3.Connection | None = None
        self._readers = threading.local()
        self._reader_list: list[sqlite3.Connection] = []

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def open(self) -> None:
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        self._drop_full_text_tables()

    def _drop_full_text_tables(self) -> None:
        """Files written before words were indexed in memory kept an FTS5 table per
        collection; the chunks' text stays in ``chunks``, so the tables go."""
        assert self._writer is not None
        names = [
            row[0]
            for row in self._writer.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'fts_col_*' "
                "AND sql LIKE 'CREATE VIRTUAL TABLE%'"
            )
        ]
        if not names:
            return
        with self.write_lock, self.transaction() as db:
            for name in names:
                db.execute(f"DROP TABLE IF EXISTS {fts_table(name.removeprefix('fts_'))}")

    def close(self) -> None:
        with self.write_lock:
            for connection in self._reader_list:
                connection.close()
            self._reader_list.clear()
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def read(self) -> sqlite3.Connection:
        """This thread's reader connection."""
        connection: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._connect()
            self._readers.connection = connection
            with self.write_lock:
                self._reader_list.append(connection)
        return connection

    def transaction(self) -> Transaction:
        """A write transaction; the caller holds :attr:`write_lock`."""
        if self._writer is None:
            raise RuntimeError("the RAG store is not open")
        return Transaction(self._writer)

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database file and empty it."""
        if self._writer is not None:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _connect(self) -> sqlite3.Connection:
        connection = connect(
            self.path,
            key=self._key,
            named_rows=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA secure_delete=ON")
        return connection


class Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an error) on the writer connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._connection.execute("COMMIT")
        else:
            self._connection.execute("ROLLBACK")


def fts_table(collection_id: str) -> str:
    """The name of the full-text table a collection had in older files (ids are made here;
    checked all the same, as the name is spliced into SQL)."""
    if not _COLLECTION_ID.fullmatch(collection_id):
        raise ValueError(f"not a collection id: {collection_id!r}")
    return f"fts_{collection_id}"


def json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()
