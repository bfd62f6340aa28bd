"""The RAG store's SQLite file: its schema, connections and transactions.

One writer connection, used under a lock, and one reader connection per thread (WAL lets reads
run beside a write). Every write is one ``BEGIN IMMEDIATE`` transaction with
``synchronous=FULL``: once it commits, it survives a crash or power loss. ``secure_delete``
overwrites the pages that deletes free.

The write-ahead log is copied into the database file (checkpointed) by a thread of its own
after commits, beside the writes that follow, rather than by the commit that fills the log
(which would hold the write lock while the pages are written and the file flushed: the larger
the file, the longer, since the pages that inserts into random-keyed indexes dirty lie all over
it). The log restarts from its beginning only when a checkpoint has copied all of it before the
next write begins; should the checkpoints fall behind, the commit that takes the log past
:data:`_WRITER_CHECKPOINT_PAGES` checkpoints it itself, as SQLite does by default at 1,000.
Checkpoints change nothing of what is durable: a commit is durable once in the log.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from aiplatform.storage.sqlite import connect

__all__ = ["Database", "fts_table", "json_text"]

logger = logging.getLogger(__name__)

#: Pages the write-ahead log may hold before a commit checkpoints it itself (32 MiB at SQLite's
#: 4 KiB pages); the checkpointer thread normally keeps it well below.
_WRITER_CHECKPOINT_PAGES = 8192
#: Seconds the checkpointer waits after a checkpoint, so that the commits made meanwhile are
#: copied together (a page written by several of them is written once).
_CHECKPOINT_PAUSE_S = 0.05

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
        self._checkpointer: _Checkpointer | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def open(self) -> None:
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        self._writer.execute(f"PRAGMA wal_autocheckpoint={_WRITER_CHECKPOINT_PAGES}")
        self._drop_full_text_tables()
        self._checkpointer = _Checkpointer(self._connect())

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
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
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
        checkpointer = self._checkpointer
        return Transaction(self._writer, checkpointer.committed if checkpointer else None)

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database file and empty it (the caller holds
        :attr:`write_lock`; a checkpoint the thread has under way finishes first)."""
        if self._writer is None:
            return
        if self._checkpointer is None:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        with self._checkpointer.lock:
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
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an error) on the writer connection;
    ``committed`` is told of each commit."""

    def __init__(
        self, connection: sqlite3.Connection, committed: Callable[[], None] | None = None
    ) -> None:
        self._connection = connection
        self._committed = committed

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self._connection.execute("ROLLBACK")
            return
        self._connection.execute("COMMIT")
        if self._committed is not None:
            self._committed()


class _Checkpointer:
    """A thread that checkpoints the write-ahead log (``PASSIVE``: it never waits for, nor
    holds up, a reader or the writer) on a connection of its own, after commits."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        #: Held while a checkpoint runs: one at a time, the writer's own included.
        self.lock = threading.Lock()
        self._due = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._due.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running) and close its connection."""
        self._closing.set()
        self._due.set()
        self._thread.join()
        self._connection.close()

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._closing.is_set():
                return
            self._due.clear()
            with self.lock:
                try:
                    self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # commits checkpoint the log themselves when it grows past their limit
                    logger.exception("checkpointing the RAG database failed")
            if self._closing.wait(_CHECKPOINT_PAUSE_S):
                return


def fts_table(collection_id: str) -> str:
    """The name of the full-text table a collection had in older files (ids are made here;
    checked all the same, as the name is spliced into SQL)."""
    if not _COLLECTION_ID.fullmatch(collection_id):
        raise ValueError(f"not a collection id: {collection_id!r}")
    return f"fts_{collection_id}"


def json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()
