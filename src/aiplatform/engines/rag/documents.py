"""Documents and their chunks in the RAG database: each chunk's text, offsets and vector,
written in one transaction.

Documents and chunks are only ever found through their collection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from aiplatform.engines.rag.chunking import Chunk
from aiplatform.engines.rag.collections import CollectionRow
from aiplatform.engines.rag.database import Database, json_text
from aiplatform.engines.rag.index import Ids, Vectors
from aiplatform.errors import ConflictError, NotFoundError

__all__ = ["ChunkRecord", "DocumentRow", "Documents", "PreparedDocument"]

_DOCUMENT = (
    "pk, id, collection_id, metadata, filename, created_at, chunk_count, length(text) AS characters"
)
_DOCUMENT_WITH_TEXT = f"{_DOCUMENT}, text"
#: Vectors read from the database per batch when an index is rebuilt or caught up.
_READ_BATCH = 8192


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

    @classmethod
    def stored(
        cls, pk: int, document: PreparedDocument, collection_id: str, now: int
    ) -> DocumentRow:
        """The row of ``document``, stored under ``pk`` at ``now``."""
        return cls(
            pk=pk,
            id=document.id,
            collection_id=collection_id,
            metadata=document.metadata,
            created_at=now,
            chunk_count=len(document.chunks),
            characters=len(document.text),
            filename=document.filename,
        )


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


class Documents:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- writes (inside a transaction the caller holds) ----------------------------------------

    @staticmethod
    def insert(
        db: sqlite3.Connection,
        collection: CollectionRow,
        documents: Sequence[PreparedDocument],
        now: int,
    ) -> tuple[list[DocumentRow], list[int]]:
        """The documents and their chunks; the rows and the new chunk ids (in the order of the
        documents' vectors). 409 for an id the collection has, or one given twice.

        Ids are not looked up beforehand: the unique index refuses a taken one, and only then
        are the rows taken back and the ids looked up, to name the first in the 409."""
        db.execute("SAVEPOINT documents")
        try:
            stored = _insert(db, collection, documents, now)
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK TO documents")
            db.execute("RELEASE documents")
            _refuse_taken_ids(db, collection, documents)
            raise
        db.execute("RELEASE documents")
        return stored

    @staticmethod
    def delete(
        db: sqlite3.Connection, collection: CollectionRow, document_id: str
    ) -> tuple[int, Ids]:
        """The document and its chunks; its key and the removed chunk ids."""
        row = db.execute(
            "SELECT pk FROM documents WHERE collection_id = ? AND id = ?",
            (collection.id, document_id),
        ).fetchone()
        if row is None:
            raise _no_document(document_id)
        pk = int(row[0])
        chunks = db.execute("SELECT id FROM chunks WHERE document_pk = ?", (pk,)).fetchall()
        db.execute("DELETE FROM documents WHERE pk = ?", (pk,))
        return pk, np.fromiter((chunk[0] for chunk in chunks), dtype=np.int64, count=len(chunks))

    @staticmethod
    def update_metadata(
        db: sqlite3.Connection,
        collection: CollectionRow,
        document_id: str,
        metadata: dict[str, Any],
    ) -> int:
        """The document's new metadata; its key."""
        row = db.execute(
            "UPDATE documents SET metadata = ? WHERE collection_id = ? AND id = ? RETURNING pk",
            (json_text(metadata), collection.id, document_id),
        ).fetchone()
        if row is None:
            raise _no_document(document_id)
        return int(row[0])

    # -- reads ---------------------------------------------------------------------------------

    def existing_ids(self, collection: CollectionRow, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        reader = self._db.read()
        for start in range(0, len(ids), 500):
            batch = list(ids[start : start + 500])
            marks = ", ".join("?" * len(batch))
            rows = reader.execute(
                f"SELECT id FROM documents WHERE collection_id = ? AND id IN ({marks})",
                (collection.id, *batch),
            )
            found.update(row[0] for row in rows)
        return found

    def get(self, collection: CollectionRow, document_id: str, *, text: bool) -> DocumentRow:
        row = (
            self._db.read()
            .execute(
                f"SELECT {_DOCUMENT_WITH_TEXT if text else _DOCUMENT} FROM documents "
                "WHERE collection_id = ? AND id = ?",
                (collection.id, document_id),
            )
            .fetchone()
        )
        if row is None:
            raise _no_document(document_id)
        return _document(row)

    def page(
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
            self._db.read()
            .execute(
                f"SELECT {_DOCUMENT} FROM documents WHERE {where} ORDER BY {column} LIMIT ?",
                (*params, limit + 1),
            )
            .fetchall()
        )
        return [_document(row) for row in rows[:limit]], len(rows) > limit

    def latest(self, collection: CollectionRow, limit: int) -> list[DocumentRow]:
        """The last ``limit`` documents added, oldest first, with their text."""
        rows = (
            self._db.read()
            .execute(
                f"SELECT {_DOCUMENT_WITH_TEXT} FROM documents WHERE collection_id = ? "
                "ORDER BY pk DESC LIMIT ?",
                (collection.id, limit),
            )
            .fetchall()
        )
        return [_document(row) for row in reversed(rows)]

    # -- chunks --------------------------------------------------------------------------------

    def ids(self, sql: str, params: Sequence[Any]) -> Ids:
        """The integers of the query's one column (plain tuples: no Row per id)."""
        cursor = self._db.read().cursor()
        cursor.row_factory = None
        rows = cursor.execute(sql, params).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def chunk_records(
        self, collection: CollectionRow, ids: Sequence[int]
    ) -> dict[int, ChunkRecord]:
        found: dict[int, ChunkRecord] = {}
        reader = self._db.read()
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
        reader = self._db.read()
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

    def vector_batches(self, collection_id: str, only: Ids | None) -> Iterator[tuple[Ids, Vectors]]:
        """The collection's vectors (or those of ``only``) in batches, read in id order."""
        for rows in self._chunk_rows("vector", collection_id, only):
            yield _stack(rows)

    def text_batches(self, collection_id: str, only: Ids | None) -> Iterator[tuple[Ids, list[str]]]:
        """The collection's chunk texts (or those of ``only``) in batches, in id order."""
        for rows in self._chunk_rows("text", collection_id, only):
            yield _texts(rows)

    def _chunk_rows(self, column: str, collection_id: str, only: Ids | None) -> Iterator[list[Any]]:
        """``(id, column)`` of the collection's chunks (or of ``only``), in batches by id."""
        reader = self._db.read()
        if only is not None:
            for start in range(0, only.size, 500):
                batch = [int(i) for i in only[start : start + 500]]
                marks = ", ".join("?" * len(batch))
                rows = reader.execute(
                    f"SELECT id, {column} FROM chunks WHERE id IN ({marks}) ORDER BY id", batch
                ).fetchall()
                if rows:
                    yield rows
            return
        last = 0
        while True:
            rows = reader.execute(
                f"SELECT id, {column} FROM chunks WHERE collection_id = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (collection_id, last, _READ_BATCH),
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            yield rows

    def metadata_of(self, collection_id: str) -> Iterator[tuple[int, dict[str, Any], Ids]]:
        """Each document of the collection: its key, metadata and chunk ids."""
        cursor = self._db.read().cursor()
        cursor.row_factory = None
        pairs = cursor.execute(
            "SELECT document_pk, id FROM chunks WHERE collection_id = ? ORDER BY document_pk, id",
            (collection_id,),
        ).fetchall()
        keys = np.fromiter((pair[0] for pair in pairs), dtype=np.int64, count=len(pairs))
        chunk_ids = np.fromiter((pair[1] for pair in pairs), dtype=np.int64, count=len(pairs))
        bounds: dict[int, tuple[int, int]] = {}
        if keys.size:
            first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            ends = np.r_[first[1:], keys.size]
            bounds = dict(
                zip(
                    keys[first].tolist(),
                    zip(first.tolist(), ends.tolist(), strict=True),
                    strict=True,
                )
            )
        rows = cursor.execute(
            "SELECT pk, metadata FROM documents WHERE collection_id = ?", (collection_id,)
        )
        for pk, metadata in rows:
            start, end = bounds.get(int(pk), (0, 0))
            yield int(pk), msgspec.json.decode(metadata), chunk_ids[start:end]


def _insert(
    db: sqlite3.Connection,
    collection: CollectionRow,
    documents: Sequence[PreparedDocument],
    now: int,
) -> tuple[list[DocumentRow], list[int]]:
    """The rows of :meth:`Documents.insert`, their ids not checked. Keys are handed out here,
    after the last one AUTOINCREMENT gave (the caller holds the write lock), so that all rows
    go in with one statement per table."""
    first_pk = _next_key(db, "documents")
    next_chunk = _next_key(db, "chunks")
    added: list[DocumentRow] = []
    document_rows: list[tuple[Any, ...]] = []
    chunk_rows: list[tuple[Any, ...]] = []
    for pk, document in enumerate(documents, first_pk):
        document_rows.append(
            (
                pk,
                collection.id,
                document.id,
                document.text,
                json_text(document.metadata),
                document.filename,
                now,
                len(document.chunks),
            )
        )
        for chunk, vector in zip(document.chunks, document.vectors, strict=True):
            chunk_rows.append(
                (
                    next_chunk,
                    pk,
                    collection.id,
                    chunk.start,
                    chunk.end,
                    chunk.text,
                    _blob(vector),
                )
            )
            next_chunk += 1
        added.append(DocumentRow.stored(pk, document, collection.id, now))
    db.executemany(
        "INSERT INTO documents (pk, collection_id, id, text, metadata, filename, created_at, "
        "chunk_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        document_rows,
    )
    db.executemany(
        "INSERT INTO chunks (id, document_pk, collection_id, start, end, text, vector) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        chunk_rows,
    )
    return added, [row[0] for row in chunk_rows]


def _refuse_taken_ids(
    db: sqlite3.Connection, collection: CollectionRow, documents: Sequence[PreparedDocument]
) -> None:
    """409 for the first document whose id the collection has, or that comes twice."""
    ids = [document.id for document in documents]
    taken: set[str] = set()
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        marks = ", ".join("?" * len(batch))
        rows = db.execute(
            f"SELECT id FROM documents WHERE collection_id = ? AND id IN ({marks})",
            (collection.id, *batch),
        )
        taken.update(row[0] for row in rows)
    seen: set[str] = set()
    for document_id in ids:
        if document_id in taken or document_id in seen:
            raise ConflictError(
                f"A document with the id '{document_id}' already exists.",
                param="id",
                code="document_exists",
            )
        seen.add(document_id)


def _next_key(db: sqlite3.Connection, table: str) -> int:
    """The key AUTOINCREMENT would give the table's next row."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return int(row[0]) + 1 if row is not None else 1


def _no_document(document_id: str) -> NotFoundError:
    return NotFoundError(
        f"No document '{document_id}' exists in this collection.",
        param="document_id",
        code="document_not_found",
    )


def _stack(rows: list[Any]) -> tuple[Ids, Vectors]:
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
    return ids, np.ascontiguousarray(vectors)


def _texts(rows: list[Any]) -> tuple[Ids, list[str]]:
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    return ids, [row[1] for row in rows]


def _blob(vector: Vectors) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


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
