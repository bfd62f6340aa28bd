"""The RAG engine's embedded store: SQLite for collections, documents, chunks (with their
vectors), a full-text index and ingest jobs; a FAISS index file per collection beside it.

Durability: every change is one SQLite transaction in WAL mode with ``synchronous=FULL``, so a
change the engine acknowledges survives a crash or power loss. The FAISS indexes are derived:
they are written now and then (atomically), and on opening each is compared with the database
and caught up (vectors missing from it added, removed ones taken out), or rebuilt from the
database when its file is missing or unreadable. Deletes are real: rows and full-text entries
go, and ``secure_delete`` overwrites the freed pages.

Every read and write names the owner: a collection is only ever found through its owner, and
documents, chunks and jobs only through their collection.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from aiplatform.engines.rag.chunking import Chunk
from aiplatform.engines.rag.filters import compile_filter
from aiplatform.engines.rag.index import Ids, IndexParams, VectorIndex, Vectors
from aiplatform.errors import ConflictError, NotFoundError

__all__ = [
    "ChunkRecord",
    "CollectionRow",
    "DocumentRow",
    "JobRow",
    "PreparedDocument",
    "RagStore",
]

logger = logging.getLogger(__name__)

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
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    payload BLOB NOT NULL,
    total INTEGER NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    errors TEXT NOT NULL DEFAULT '[]',
    document_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"""

_WORD = re.compile(r"\w+", re.UNICODE)
_COLLECTION_ID = re.compile(r"col_[0-9a-f]{20}")
#: Each collection's full-text index: its own FTS5 table over the chunks' text (so one owner's
#: large collection never slows another's searches), kept in the same transactions as chunks.
_FTS_TABLE = (
    "CREATE VIRTUAL TABLE {table} USING fts5(text, content='chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')"
)
_DOCUMENT = (
    "pk, id, collection_id, metadata, filename, created_at, chunk_count, length(text) AS characters"
)
_DOCUMENT_WITH_TEXT = f"{_DOCUMENT}, text"
#: Vectors read from the database per batch when an index is rebuilt or caught up.
_READ_BATCH = 8192


@dataclass(frozen=True, slots=True)
class CollectionRow:
    id: str
    owner: str
    kind: str
    name: str
    embedding_model: str
    dimension: int
    index_type: str
    metadata: dict[str, Any]
    created_at: int
    #: Whether ``dimension`` is shorter than the model's own vectors (the embeddings engine is
    #: then asked for ``dimensions``; otherwise never, as not every upstream takes it).
    shortened: bool = False


@dataclass(frozen=True, slots=True)
class DocumentRow:
    pk: int
    id: str
    collection_id: str
    metadata: dict[str, Any]
    created_at: int
    chunk_count: int
    characters: int
    filename: str | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document ready to store: cut into chunks, each embedded (one row of ``vectors``)."""

    id: str
    text: str
    metadata: dict[str, Any]
    chunks: list[Chunk]
    vectors: Vectors
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    id: int
    document_id: str
    text: str
    start: int
    end: int
    metadata: dict[str, Any]


@dataclass(slots=True)
class JobRow:
    id: str
    owner: str
    collection_id: str
    status: str
    total: int
    completed: int
    failed: int
    errors: list[dict[str, Any]]
    document_ids: list[str]
    created_at: int


@dataclass(slots=True)
class _Loaded:
    """A collection's index and the changes made since it was last written."""

    index: VectorIndex
    dirty: int = 0
    rebuilding: bool = field(default=False)


class RagStore:
    def __init__(
        self,
        folder: str | Path,
        params: IndexParams,
        *,
        checkpoint_every: int,
        index_memory_bytes: int | None = None,
    ) -> None:
        self._folder = Path(folder)
        self._params = params
        self._checkpoint_every = checkpoint_every
        self._index_budget = index_memory_bytes
        self._write_lock = threading.RLock()
        self._writer: sqlite3.Connection | None = None
        self._readers = threading.local()
        self._reader_list: list[sqlite3.Connection] = []
        #: Loaded indexes, least recently used first; loaded on first use, caught up with the
        #: database then, and written and dropped when they exceed the memory budget.
        self._indexes: OrderedDict[str, _Loaded] = OrderedDict()
        #: Collections whose full-text table may still hold deleted text in older segments.
        self._unmerged: set[str] = set()
        #: Whether deleted rows' old pages may still sit in the write-ahead log.
        self._log_holds_deleted = False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def database_path(self) -> Path:
        return self._folder / "rag.sqlite3"

    def _index_path(self, collection_id: str) -> Path:
        return self._folder / "indexes" / f"{collection_id}.faiss"

    def open(self) -> None:
        (self._folder / "indexes").mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)

    def close(self) -> None:
        """Write every changed index, then close the database."""
        with self._write_lock:
            for collection_id, loaded in self._indexes.items():
                if loaded.dirty:
                    self._save(collection_id, loaded)
            self._purge_deleted_text()
            for connection in self._reader_list:
                connection.close()
            self._reader_list.clear()
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.database_path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA secure_delete=ON")
        return connection

    def _read(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._connect()
            self._readers.connection = connection
            with self._write_lock:
                self._reader_list.append(connection)
        return connection

    def _transaction(self) -> _Transaction:
        if self._writer is None:
            raise RuntimeError("the RAG store is not open")
        return _Transaction(self._writer)

    # -- collections ---------------------------------------------------------------------------

    def create_collection(
        self,
        owner: str,
        kind: str,
        name: str,
        *,
        embedding_model: str,
        dimension: int,
        index_type: str,
        metadata: dict[str, Any],
        shortened: bool = False,
    ) -> CollectionRow:
        row = CollectionRow(
            shortened=shortened,
            id=f"col_{uuid.uuid4().hex[:20]}",
            owner=owner,
            kind=kind,
            name=name,
            embedding_model=embedding_model,
            dimension=dimension,
            index_type=index_type,
            metadata=metadata,
            created_at=int(time.time()),
        )
        with self._write_lock, self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO collections (id, owner, kind, name, embedding_model, dimension, "
                    "shortened, index_type, metadata, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.id,
                        owner,
                        kind,
                        name,
                        embedding_model,
                        dimension,
                        int(shortened),
                        index_type,
                        _json(metadata),
                        row.created_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"A collection named '{name}' already exists.",
                    param="name",
                    code="collection_exists",
                ) from None
            db.execute(_FTS_TABLE.format(table=_fts(row.id)))
            self._indexes[row.id] = _Loaded(VectorIndex(dimension, index_type, self._params))
            self._evict(keep=row.id)
        return row

    def collection(self, owner: str, kind: str, ref: str) -> CollectionRow:
        """The owner's collection whose id or name is ``ref``; 404 otherwise."""
        row = (
            self._read()
            .execute(
                "SELECT * FROM collections WHERE owner = ? AND kind = ? AND (id = ? OR name = ?) "
                "ORDER BY id = ? DESC LIMIT 1",
                (owner, kind, ref, ref, ref),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(
                f"No collection '{ref}' exists.", param="collection_id", code="collection_not_found"
            )
        return _collection(row)

    def find_collection(self, owner: str, kind: str, name: str) -> CollectionRow | None:
        row = (
            self._read()
            .execute(
                "SELECT * FROM collections WHERE owner = ? AND kind = ? AND name = ?",
                (owner, kind, name),
            )
            .fetchone()
        )
        return _collection(row) if row is not None else None

    def collections(self, owner: str, kind: str) -> list[CollectionRow]:
        rows = self._read().execute(
            "SELECT * FROM collections WHERE owner = ? AND kind = ? ORDER BY created_at, id",
            (owner, kind),
        )
        return [_collection(row) for row in rows.fetchall()]

    def counts(self, collection: CollectionRow) -> tuple[int, int]:
        """Documents and chunks."""
        reader = self._read()
        documents = reader.execute(
            "SELECT count(*) FROM documents WHERE collection_id = ?", (collection.id,)
        ).fetchone()[0]
        chunks = reader.execute(
            "SELECT count(*) FROM chunks WHERE collection_id = ?", (collection.id,)
        ).fetchone()[0]
        return int(documents), int(chunks)

    def indexed_count(self, collection: CollectionRow) -> int | None:
        """Vectors the collection's index answers for; None while it is not in memory (it is
        not loaded just to be counted)."""
        loaded = self._indexes.get(collection.id)
        return loaded.index.size if loaded is not None else None

    def delete_collection(self, collection: CollectionRow) -> None:
        with self._write_lock:
            with self._transaction() as db:
                db.execute(f"DROP TABLE IF EXISTS {_fts(collection.id)}")
                db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
            self._unmerged.discard(collection.id)
            self._log_holds_deleted = True
            self._indexes.pop(collection.id, None)
            self._index_path(collection.id).unlink(missing_ok=True)

    # -- documents -----------------------------------------------------------------------------

    def add_documents(
        self, collection: CollectionRow, documents: Sequence[PreparedDocument]
    ) -> list[DocumentRow]:
        """Store ``documents`` in one transaction (all or none), then index their chunks."""
        now = int(time.time())
        added: list[DocumentRow] = []
        new_ids: list[int] = []
        new_vectors: list[Vectors] = []
        with self._write_lock:
            # loaded (and caught up) before the change, so the change is applied to it once
            loaded = self._loaded(collection)
            fts = _fts(collection.id)
            with self._transaction() as db:
                self._require_collection(db, collection)
                for document in documents:
                    try:
                        cursor = db.execute(
                            "INSERT INTO documents (collection_id, id, text, metadata, filename, "
                            "created_at, chunk_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                collection.id,
                                document.id,
                                document.text,
                                _json(document.metadata),
                                document.filename,
                                now,
                                len(document.chunks),
                            ),
                        )
                    except sqlite3.IntegrityError:
                        raise ConflictError(
                            f"A document with the id '{document.id}' already exists.",
                            param="id",
                            code="document_exists",
                        ) from None
                    pk = int(cursor.lastrowid or 0)
                    for chunk, vector in zip(document.chunks, document.vectors, strict=True):
                        cursor = db.execute(
                            "INSERT INTO chunks (document_pk, collection_id, start, end, text, "
                            "vector) VALUES (?, ?, ?, ?, ?, ?)",
                            (pk, collection.id, chunk.start, chunk.end, chunk.text, _blob(vector)),
                        )
                        chunk_id = int(cursor.lastrowid or 0)
                        db.execute(
                            f"INSERT INTO {fts}(rowid, text) VALUES (?, ?)", (chunk_id, chunk.text)
                        )
                        new_ids.append(chunk_id)
                    new_vectors.append(document.vectors)
                    added.append(
                        DocumentRow(
                            pk=pk,
                            id=document.id,
                            collection_id=collection.id,
                            metadata=document.metadata,
                            created_at=now,
                            chunk_count=len(document.chunks),
                            characters=len(document.text),
                            filename=document.filename,
                        )
                    )
            if new_ids:
                vectors = np.ascontiguousarray(np.concatenate(new_vectors), dtype=np.float32)
                loaded.index.add(np.asarray(new_ids, dtype=np.int64), vectors)
                loaded.dirty += len(new_ids)
                self._evict(keep=collection.id)
        return added

    def existing_document_ids(self, collection: CollectionRow, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        reader = self._read()
        for start in range(0, len(ids), 500):
            batch = list(ids[start : start + 500])
            marks = ", ".join("?" * len(batch))
            rows = reader.execute(
                f"SELECT id FROM documents WHERE collection_id = ? AND id IN ({marks})",
                (collection.id, *batch),
            )
            found.update(row[0] for row in rows)
        return found

    def document(self, collection: CollectionRow, document_id: str, *, text: bool) -> DocumentRow:
        row = (
            self._read()
            .execute(
                f"SELECT {_DOCUMENT_WITH_TEXT if text else _DOCUMENT} FROM documents "
                "WHERE collection_id = ? AND id = ?",
                (collection.id, document_id),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(
                f"No document '{document_id}' exists in this collection.",
                param="document_id",
                code="document_not_found",
            )
        return _document(row)

    def documents(
        self, collection: CollectionRow, *, limit: int, after: str | None, order: str = "id"
    ) -> tuple[list[DocumentRow], bool]:
        """A page of documents ordered by id (or by ``pk``: insertion order), and whether more
        follow."""
        column = "pk" if order == "pk" else "id"
        where = "collection_id = ?"
        params: list[Any] = [collection.id]
        if after is not None:
            where += f" AND {column} > ?"
            params.append(after)
        rows = (
            self._read()
            .execute(
                f"SELECT {_DOCUMENT} FROM documents WHERE {where} ORDER BY {column} LIMIT ?",
                (*params, limit + 1),
            )
            .fetchall()
        )
        return [_document(row) for row in rows[:limit]], len(rows) > limit

    def latest_documents(self, collection: CollectionRow, limit: int) -> list[DocumentRow]:
        """The last ``limit`` documents added, oldest first, with their text."""
        rows = (
            self._read()
            .execute(
                f"SELECT {_DOCUMENT_WITH_TEXT} FROM documents WHERE collection_id = ? "
                "ORDER BY pk DESC LIMIT ?",
                (collection.id, limit),
            )
            .fetchall()
        )
        return [_document(row) for row in reversed(rows)]

    def delete_document(self, collection: CollectionRow, document_id: str) -> None:
        with self._write_lock:
            loaded = self._loaded(collection)
            with self._transaction() as db:
                row = db.execute(
                    "SELECT pk FROM documents WHERE collection_id = ? AND id = ?",
                    (collection.id, document_id),
                ).fetchone()
                if row is None:
                    raise NotFoundError(
                        f"No document '{document_id}' exists in this collection.",
                        param="document_id",
                        code="document_not_found",
                    )
                chunks = db.execute(
                    "SELECT id, text FROM chunks WHERE document_pk = ?", (row[0],)
                ).fetchall()
                fts = _fts(collection.id)
                db.executemany(
                    f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', ?, ?)",
                    [(chunk[0], chunk[1]) for chunk in chunks],
                )
                db.execute("DELETE FROM documents WHERE pk = ?", (row[0],))
            chunk_ids = np.fromiter((chunk[0] for chunk in chunks), dtype=np.int64)
            self._unmerged.add(collection.id)
            self._log_holds_deleted = True
            loaded.index.remove(chunk_ids)
            loaded.dirty += int(chunk_ids.size)

    def update_metadata(
        self, collection: CollectionRow, document_id: str, metadata: dict[str, Any]
    ) -> DocumentRow:
        with self._write_lock, self._transaction() as db:
            cursor = db.execute(
                "UPDATE documents SET metadata = ? WHERE collection_id = ? AND id = ?",
                (_json(metadata), collection.id, document_id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(
                    f"No document '{document_id}' exists in this collection.",
                    param="document_id",
                    code="document_not_found",
                )
        return self.document(collection, document_id, text=False)

    # -- search --------------------------------------------------------------------------------

    def matching_chunk_ids(self, collection: CollectionRow, spec: dict[str, Any]) -> Ids:
        condition, params = compile_filter(spec, "d.metadata")
        return self._ids(
            "SELECT c.id FROM chunks c JOIN documents d ON d.pk = c.document_pk "
            f"WHERE c.collection_id = ? AND {condition}",
            (collection.id, *params),
        )

    def _ids(self, sql: str, params: Sequence[Any]) -> Ids:
        """The integers of the query's one column (plain tuples: no Row per id)."""
        cursor = self._read().cursor()
        cursor.row_factory = None
        rows = cursor.execute(sql, params).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def vector_search(
        self, collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunks most similar to ``query``, among ``allowed`` when given."""
        scores, ids = self.index_of(collection).search(query, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def exact_search(
        self, collection: CollectionRow, query: Vectors, k: int, ids: Ids
    ) -> list[tuple[int, float]]:
        """Scores of every chunk in ``ids`` against ``query``, best ``k`` first: a filtered
        search that matches few chunks reads them and ranks them all."""
        vectors = self.chunk_vectors(collection, ids)
        if not vectors:
            return []
        order = np.fromiter(vectors, dtype=np.int64)
        scores = np.stack([vectors[int(i)] for i in order]) @ query[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(order[i]), float(scores[i])) for i in best]

    def lexical_search(
        self, collection: CollectionRow, text: str, k: int, spec: dict[str, Any] | None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunks that best match ``text`` by BM25 (higher is better)."""
        words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
        if not words:
            return []
        match = " OR ".join(f'"{word}"' for word in words[:64])
        fts = _fts(collection.id)
        cursor = self._read().cursor()
        cursor.row_factory = None
        if spec:  # the documents' metadata is joined only when a filter reads it
            condition, params = compile_filter(spec, "d.metadata")
            rows = cursor.execute(
                f"SELECT {fts}.rowid, bm25({fts}) AS rank FROM {fts} "
                f"JOIN chunks c ON c.id = {fts}.rowid JOIN documents d ON d.pk = c.document_pk "
                f"WHERE {fts} MATCH ? AND {condition} ORDER BY rank LIMIT ?",
                (match, *params, k),
            )
        else:
            rows = cursor.execute(
                f"SELECT rowid, bm25({fts}) AS rank FROM {fts} WHERE {fts} MATCH ? "
                "ORDER BY rank LIMIT ?",
                (match, k),
            )
        return [(int(row[0]), -float(row[1])) for row in rows]

    def chunk_records(
        self, collection: CollectionRow, ids: Sequence[int]
    ) -> dict[int, ChunkRecord]:
        found: dict[int, ChunkRecord] = {}
        reader = self._read()
        for start in range(0, len(ids), 500):
            batch = [int(i) for i in ids[start : start + 500]]
            marks = ", ".join("?" * len(batch))
            rows = reader.execute(
                "SELECT c.id, c.start, c.end, c.text, d.id AS document_id, d.metadata "
                "FROM chunks c JOIN documents d ON d.pk = c.document_pk "
                f"WHERE c.collection_id = ? AND c.id IN ({marks})",
                (collection.id, *batch),
            )
            for row in rows:
                found[int(row["id"])] = ChunkRecord(
                    id=int(row["id"]),
                    document_id=row["document_id"],
                    text=row["text"],
                    start=int(row["start"]),
                    end=int(row["end"]),
                    metadata=msgspec.json.decode(row["metadata"]),
                )
        return found

    def chunk_vectors(
        self, collection: CollectionRow, ids: Ids | Sequence[int]
    ) -> dict[int, Vectors]:
        found: dict[int, Vectors] = {}
        reader = self._read()
        values = [int(i) for i in ids]
        for start in range(0, len(values), 500):
            batch = values[start : start + 500]
            marks = ", ".join("?" * len(batch))
            rows = reader.execute(
                f"SELECT id, vector FROM chunks WHERE collection_id = ? AND id IN ({marks})",
                (collection.id, *batch),
            )
            for chunk_id, blob in rows:
                found[int(chunk_id)] = np.frombuffer(blob, dtype=np.float32)
        return found

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self, collection: CollectionRow, payload: bytes, document_ids: list[str]
    ) -> JobRow:
        job = JobRow(
            id=f"job_{uuid.uuid4().hex[:20]}",
            owner=collection.owner,
            collection_id=collection.id,
            status="queued",
            total=len(document_ids),
            completed=0,
            failed=0,
            errors=[],
            document_ids=document_ids,
            created_at=int(time.time()),
        )
        with self._write_lock, self._transaction() as db:
            self._require_collection(db, collection)
            db.execute(
                "INSERT INTO jobs (id, owner, collection_id, status, payload, total, "
                "document_ids, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.owner,
                    job.collection_id,
                    job.status,
                    payload,
                    job.total,
                    _json(document_ids),
                    job.created_at,
                ),
            )
        return job

    def job(self, owner: str, job_id: str) -> JobRow:
        row = (
            self._read()
            .execute("SELECT * FROM jobs WHERE owner = ? AND id = ?", (owner, job_id))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"No job '{job_id}' exists.", param="job_id", code="job_not_found")
        return _job(row)

    def unfinished_jobs(self) -> list[JobRow]:
        rows = self._read().execute(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
        )
        return [_job(row) for row in rows.fetchall()]

    def job_payload(self, job_id: str) -> bytes:
        row = self._read().execute("SELECT payload FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bytes(row[0]) if row is not None else b""

    def update_job(self, job: JobRow) -> None:
        with self._write_lock, self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, completed = ?, failed = ?, errors = ? WHERE id = ?",
                (job.status, job.completed, job.failed, _json(job.errors), job.id),
            )

    # -- indexes -------------------------------------------------------------------------------

    def index_of(self, collection: CollectionRow) -> VectorIndex:
        """The collection's index, loaded (and caught up with the database) if it is not."""
        return self._loaded(collection).index

    def _loaded(self, collection: CollectionRow) -> _Loaded:
        with self._write_lock:
            loaded = self._indexes.get(collection.id)
            if loaded is None:
                loaded = self._load_index(collection)
            self._indexes.move_to_end(collection.id)
            self._evict(keep=collection.id)
            return loaded

    def _evict(self, *, keep: str) -> None:
        """Write and drop the least recently used indexes while all of them together exceed
        the memory budget (the one in use stays, however large)."""
        if self._index_budget is None:
            return
        total = sum(loaded.index.memory_bytes for loaded in self._indexes.values())
        for collection_id in list(self._indexes):
            if total <= self._index_budget:
                return
            loaded = self._indexes[collection_id]
            if collection_id == keep or loaded.rebuilding:
                continue
            if loaded.dirty:
                self._save(collection_id, loaded)
            total -= loaded.index.memory_bytes
            del self._indexes[collection_id]
            logger.debug("dropped the index of %s from memory", collection_id)

    def maintain(self, collection: CollectionRow) -> None:
        """Rebuild the collection's index when that pays (IVF clustering, masked HNSW nodes)
        and write it when enough has changed since it was last written."""
        with self._write_lock:
            self._purge_deleted_text()
        loaded = self._indexes.get(collection.id)
        if loaded is None or loaded.rebuilding:
            return
        if loaded.index.wants_rebuild():
            loaded.rebuilding = True
            try:
                self._rebuild(collection, loaded)
            finally:
                loaded.rebuilding = False
            return
        threshold = max(self._checkpoint_every, loaded.index.size // 4)
        if loaded.dirty >= threshold:
            with self._write_lock:
                self._save(collection.id, loaded)

    def _rebuild(self, collection: CollectionRow, loaded: _Loaded) -> None:
        """A new index from the database, built while searches use the old one, then caught up
        with the changes made meanwhile and swapped in."""
        started = time.perf_counter()
        count = self.counts(collection)[1]
        fresh = loaded.index.rebuilt(self._vector_batches(collection.id, None), count)
        with self._write_lock:
            self._catch_up(collection.id, fresh)
            loaded.index.replace_with(fresh)
            self._save(collection.id, loaded)
        logger.info(
            "rebuilt the index of %s (%d vectors) in %.1f s",
            collection.id,
            count,
            time.perf_counter() - started,
        )

    def _load_index(self, collection: CollectionRow) -> _Loaded:
        path = self._index_path(collection.id)
        index = None
        if path.exists():
            try:
                index = VectorIndex.load(
                    path, collection.dimension, collection.index_type, self._params
                )
            except ValueError as exc:
                logger.warning("rebuilding the index of %s: %s", collection.id, exc)
        if index is None:
            index = VectorIndex(collection.dimension, collection.index_type, self._params)
        loaded = _Loaded(index)
        self._indexes[collection.id] = loaded
        changes = self._catch_up(collection.id, index)
        if changes:
            logger.info("caught the index of %s up by %d changes", collection.id, changes)
            self._save(collection.id, loaded)
        return loaded

    def _catch_up(self, collection_id: str, index: VectorIndex) -> int:
        """Make ``index`` answer for exactly the collection's chunks in the database."""
        stored = self._ids(
            "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)
        )
        indexed = index.ids()
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        missing = np.setdiff1d(stored, indexed, assume_unique=True)
        index.remove(extra)
        for ids, vectors in self._vector_batches(collection_id, missing):
            index.add(ids, vectors)
        return int(extra.size + missing.size)

    def _vector_batches(
        self, collection_id: str, only: Ids | None
    ) -> Iterator[tuple[Ids, Vectors]]:
        """The collection's vectors (or those of ``only``) in batches, read in id order."""
        reader = self._read()
        if only is not None:
            for start in range(0, only.size, 500):
                batch = [int(i) for i in only[start : start + 500]]
                marks = ", ".join("?" * len(batch))
                rows = reader.execute(
                    f"SELECT id, vector FROM chunks WHERE id IN ({marks}) ORDER BY id", batch
                ).fetchall()
                if rows:
                    yield _stack(rows)
            return
        last = 0
        while True:
            rows = reader.execute(
                "SELECT id, vector FROM chunks WHERE collection_id = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (collection_id, last, _READ_BATCH),
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            yield _stack(rows)

    def _purge_deleted_text(self) -> None:
        """Merge the full-text index's segments, so deleted words leave the file too (deleting
        only records a tombstone until segments merge), and checkpoint the log."""
        if not self._log_holds_deleted or self._writer is None:
            return
        with self._transaction() as db:
            for collection_id in self._unmerged:
                fts = _fts(collection_id)
                db.execute(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")
        # and out of the write-ahead log, which still holds the old pages
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._unmerged.clear()
        self._log_holds_deleted = False

    def _save(self, collection_id: str, loaded: _Loaded) -> None:
        loaded.index.save(self._index_path(collection_id))
        loaded.dirty = 0

    @staticmethod
    def _require_collection(db: sqlite3.Connection, collection: CollectionRow) -> None:
        """Inside a write: the collection still exists (it may have been deleted meanwhile)."""
        if (
            db.execute("SELECT 1 FROM collections WHERE id = ?", (collection.id,)).fetchone()
            is None
        ):
            raise NotFoundError(
                f"No collection '{collection.id}' exists.",
                param="collection_id",
                code="collection_not_found",
            )


class _Transaction:
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


def _fts(collection_id: str) -> str:
    """The name of a collection's full-text table (ids are made here; checked all the same,
    as the name is spliced into SQL)."""
    if not _COLLECTION_ID.fullmatch(collection_id):
        raise ValueError(f"not a collection id: {collection_id!r}")
    return f"fts_{collection_id}"


def _stack(rows: list[Any]) -> tuple[Ids, Vectors]:
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
    return ids, np.ascontiguousarray(vectors)


def _blob(vector: Vectors) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _collection(row: sqlite3.Row) -> CollectionRow:
    return CollectionRow(
        id=row["id"],
        owner=row["owner"],
        kind=row["kind"],
        name=row["name"],
        embedding_model=row["embedding_model"],
        dimension=int(row["dimension"]),
        index_type=row["index_type"],
        metadata=msgspec.json.decode(row["metadata"]),
        created_at=int(row["created_at"]),
        shortened=bool(row["shortened"]),
    )


def _document(row: sqlite3.Row) -> DocumentRow:
    return DocumentRow(
        pk=int(row["pk"]),
        id=row["id"],
        collection_id=row["collection_id"],
        metadata=msgspec.json.decode(row["metadata"]),
        created_at=int(row["created_at"]),
        chunk_count=int(row["chunk_count"]),
        characters=int(row["characters"]),
        filename=row["filename"],
        text=row["text"] if "text" in row.keys() else None,  # noqa: SIM118 (a Row's `in` reads values)
    )


def _job(row: sqlite3.Row) -> JobRow:
    return JobRow(
        id=row["id"],
        owner=row["owner"],
        collection_id=row["collection_id"],
        status=row["status"],
        total=int(row["total"]),
        completed=int(row["completed"]),
        failed=int(row["failed"]),
        errors=msgspec.json.decode(row["errors"]),
        document_ids=msgspec.json.decode(row["document_ids"]),
        created_at=int(row["created_at"]),
    )
