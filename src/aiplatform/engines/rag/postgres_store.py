"""The RAG store on PostgreSQL with pgvector, which several RAG replicas share.

PostgreSQL holds the record: collections, documents and chunks (each with its text and its
vector, in pgvector's ``vector`` type) are rows (:mod:`~aiplatform.engines.rag.postgres_database`).
Each write is one transaction, acknowledged once committed; deletes are real deletes. Every
change to a collection's documents takes the collection's next version and is logged, so that
each replica keeps in memory the indexes it searches with — the embedded store's FAISS,
lexical (BM25) and metadata indexes — in step with what every replica commits
(:mod:`~aiplatform.engines.rag.postgres_indexes`): a search first catches them up with the
changes committed since they were last used, so what one replica commits, every other
searches at once. Searches, rankings and filters are therefore the embedded store's, exactly.

PostgreSQL cannot keep the character U+0000 in text: in a document's text it is stored as
U+FFFD (offsets stay the same).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
from psycopg import errors

from aiplatform.engines.rag.collections import CollectionRow, new_collection_row
from aiplatform.engines.rag.database import json_text
from aiplatform.engines.rag.documents import ChunkRecord, DocumentRow, PreparedDocument
from aiplatform.engines.rag.index import Ids, IndexParams, Vectors
from aiplatform.engines.rag.postgres_database import (
    PostgresConnections,
    Vector,
    begin_change,
    insert_documents,
    record_change,
)
from aiplatform.engines.rag.postgres_indexes import KEPT_CHANGES, ReplicaIndexes
from aiplatform.engines.rag.store import Ranked
from aiplatform.errors import ConflictError, InvalidRequestError, NotFoundError

__all__ = ["PostgresStore"]

#: pgvector's bound on a vector's dimensions.
MAX_DIMENSION = 16_000

_INTEGER = re.compile(r"-?[0-9]+")
_COLLECTION = (
    "id, owner, kind, name, embedding_model, dimension, index_type, metadata, created_at, shortened"
)
_DOCUMENT = (
    "pk, id, collection_id, metadata::text, created_at, cardinality(chunk_ids), characters, "
    "filename"
)
_DOCUMENT_WITH_TEXT = f"{_DOCUMENT}, text"


class PostgresStore:
    def __init__(
        self,
        url: str,
        params: IndexParams,
        *,
        max_connections: int = 8,
        timeout_s: float = 10.0,
        index_memory_bytes: int | None = None,
    ) -> None:
        """``timeout_s``: the longest a call waits to connect or for a free connection before
        its 503. ``params`` and ``index_memory_bytes``: those of the indexes this replica keeps
        in memory."""
        self._db = PostgresConnections(url, max_connections=max_connections, timeout_s=timeout_s)
        self.indexes = ReplicaIndexes(self._db, params, memory_bytes=index_memory_bytes)

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        self._db.open()

    def close(self) -> None:
        self.indexes.close()
        self._db.close()

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
        """A new collection; 409 ``collection_exists`` if the owner has one of that name."""
        if dimension > MAX_DIMENSION:
            raise InvalidRequestError(
                f"This store holds vectors of at most {MAX_DIMENSION} dimensions.",
                param="dimension",
                code="dimension_too_large",
            )
        row = new_collection_row(
            owner,
            kind,
            name,
            embedding_model=embedding_model,
            dimension=dimension,
            index_type=index_type,
            metadata=metadata,
            shortened=shortened,
        )
        try:
            with self._db.transaction() as db:
                db.execute(
                    f"INSERT INTO rag_collections ({_COLLECTION}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        row.id,
                        owner,
                        kind,
                        name,
                        embedding_model,
                        dimension,
                        index_type,
                        json_text(metadata),
                        row.created_at,
                        shortened,
                    ),
                )
        except errors.UniqueViolation:
            raise ConflictError(
                f"A collection named '{name}' already exists.",
                param="name",
                code="collection_exists",
            ) from None
        self.indexes.created(row)
        return row

    def collection(self, owner: str, kind: str, ref: str) -> CollectionRow:
        """The owner's collection whose id or name is ``ref``; 404 otherwise."""
        with self._db.connection() as db:
            found = db.execute(
                f"SELECT {_COLLECTION} FROM rag_collections WHERE owner = %s AND kind = %s "
                "AND (id = %s OR name = %s) ORDER BY id = %s DESC LIMIT 1",
                (owner, kind, ref, ref, ref),
            ).fetchone()
        if found is None:
            raise NotFoundError(
                f"No collection '{ref}' exists.", param="collection_id", code="collection_not_found"
            )
        return _collection(found)

    def find_collection(self, owner: str, kind: str, name: str) -> CollectionRow | None:
        with self._db.connection() as db:
            found = db.execute(
                f"SELECT {_COLLECTION} FROM rag_collections "
                "WHERE owner = %s AND kind = %s AND name = %s",
                (owner, kind, name),
            ).fetchone()
        return _collection(found) if found is not None else None

    def list_collections(self, owner: str, kind: str) -> list[CollectionRow]:
        with self._db.connection() as db:
            rows = db.execute(
                f"SELECT {_COLLECTION} FROM rag_collections WHERE owner = %s AND kind = %s "
                "ORDER BY created_at, id",
                (owner, kind),
            ).fetchall()
        return [_collection(row) for row in rows]

    def counts(self, collection: CollectionRow) -> tuple[int, int]:
        """Documents and chunks."""
        with self._db.connection() as db:
            found = db.execute(
                "SELECT (SELECT count(*) FROM rag_documents WHERE collection_id = %s), "
                "(SELECT count(*) FROM rag_chunks WHERE collection_id = %s)",
                (collection.id, collection.id),
            ).fetchone()
        assert found is not None
        return int(found[0]), int(found[1])

    def indexed_count(self, collection: CollectionRow) -> int | None:
        """Vectors this replica's index of the collection answers for; None while it is not in
        memory."""
        return self.indexes.size_of(collection)

    def delete_collection(self, collection: CollectionRow) -> None:
        """The collection, its documents, chunks and change log."""
        with self._db.transaction() as db:
            # the changes being made to it commit first (they hold its row); later ones find none
            found = db.execute(
                "SELECT 1 FROM rag_collections WHERE id = %s FOR UPDATE", (collection.id,)
            ).fetchone()
            if found is not None:
                db.execute("DELETE FROM rag_changes WHERE collection_id = %s", (collection.id,))
                db.execute("DELETE FROM rag_chunks WHERE collection_id = %s", (collection.id,))
                db.execute("DELETE FROM rag_documents WHERE collection_id = %s", (collection.id,))
                db.execute("DELETE FROM rag_collections WHERE id = %s", (collection.id,))
        self.indexes.dropped(collection.id)

    # -- documents -----------------------------------------------------------------------------

    def add_documents(
        self, collection: CollectionRow, documents: Sequence[PreparedDocument]
    ) -> list[DocumentRow]:
        """Store ``documents`` in one transaction (all or none): 409 ``document_exists`` for an
        id the collection has (or the batch repeats), 404 if the collection was deleted. Then
        into this replica's indexes."""
        self.indexes.ensure_loaded(collection)
        now = int(time.time())
        try:
            with self._db.transaction() as db:
                version = begin_change(db, collection)
                stored = insert_documents(db, collection, documents, now=now)
                record_change(db, collection.id, version, "added", [row.pk for row in stored])
        except errors.UniqueViolation:
            raise self._document_conflict(collection, documents) from None
        rows = [
            DocumentRow.stored(new.pk, document, collection.id, now)
            for new, document in zip(stored, documents, strict=True)
        ]
        self.indexes.added(collection, version, rows, documents, [new.chunks for new in stored])
        return rows

    def existing_document_ids(self, collection: CollectionRow, ids: Sequence[str]) -> set[str]:
        with self._db.connection() as db:
            rows = db.execute(
                "SELECT id FROM rag_documents WHERE collection_id = %s AND id = ANY(%s)",
                (collection.id, list(ids)),
            ).fetchall()
        return {row[0] for row in rows}

    def document(self, collection: CollectionRow, document_id: str, *, text: bool) -> DocumentRow:
        columns = _DOCUMENT_WITH_TEXT if text else _DOCUMENT
        with self._db.connection() as db:
            found = db.execute(
                f"SELECT {columns} FROM rag_documents WHERE collection_id = %s AND id = %s",
                (collection.id, document_id),
            ).fetchone()
        if found is None:
            raise _no_document(document_id)
        return _document(found)

    def list_documents(
        self, collection: CollectionRow, *, limit: int, after: str | None, order: str = "id"
    ) -> tuple[list[DocumentRow], bool]:
        """A page of documents ordered by id (by code point, as SQLite orders them) or by
        ``pk`` (insertion order), and whether more follow."""
        column = "pk" if order == "pk" else "id"
        where = "collection_id = %s"
        params: list[Any] = [collection.id]
        if after is not None:
            if column == "pk" and not _INTEGER.fullmatch(after):
                return [], False  # SQLite: a number is below any text, so nothing follows it
            where += f" AND {column} > %s"
            params.append(int(after) if column == "pk" else after)
        with self._db.connection() as db:
            rows = db.execute(
                f"SELECT {_DOCUMENT} FROM rag_documents WHERE {where} ORDER BY {column} LIMIT %s",
                (*params, limit + 1),
            ).fetchall()
        return [_document(row) for row in rows[:limit]], len(rows) > limit

    def latest_documents(self, collection: CollectionRow, limit: int) -> list[DocumentRow]:
        """The last ``limit`` documents added, oldest first, with their text."""
        with self._db.connection() as db:
            rows = db.execute(
                f"SELECT {_DOCUMENT_WITH_TEXT} FROM rag_documents WHERE collection_id = %s "
                "ORDER BY pk DESC LIMIT %s",
                (collection.id, limit),
            ).fetchall()
        return [_document(row) for row in reversed(rows)]

    def delete_document(self, collection: CollectionRow, document_id: str) -> None:
        """The document and (by the foreign key's cascade) its chunks."""
        self.indexes.ensure_loaded(collection)
        with self._db.transaction() as db:
            version = begin_change(db, collection)
            found = db.execute(
                "DELETE FROM rag_documents WHERE collection_id = %s AND id = %s "
                "RETURNING pk, chunk_ids",
                (collection.id, document_id),
            ).fetchone()
            if found is None:
                raise _no_document(document_id)  # rolled back, version and all
            pk, chunk_ids = int(found[0]), found[1]
            record_change(db, collection.id, version, "removed", [pk], chunk_ids=chunk_ids)
        self.indexes.removed(collection, version, pk, np.asarray(chunk_ids, dtype=np.int64))

    def update_metadata(
        self, collection: CollectionRow, document_id: str, metadata: dict[str, Any]
    ) -> DocumentRow:
        self.indexes.ensure_loaded(collection)
        with self._db.transaction() as db:
            version = begin_change(db, collection)
            found = db.execute(
                "UPDATE rag_documents SET metadata = %s::json "
                f"WHERE collection_id = %s AND id = %s RETURNING {_DOCUMENT}",
                (json_text(metadata), collection.id, document_id),
            ).fetchone()
            if found is None:
                raise _no_document(document_id)
            updated = _document(found)
            record_change(db, collection.id, version, "metadata", [updated.pk])
        self.indexes.relabelled(collection, version, updated.pk, metadata)
        return updated

    # -- search (this replica's indexes, caught up first) -------------------------------------

    def matching_chunk_ids(self, collection: CollectionRow, spec: dict[str, Any]) -> Ids:
        """The ids of the chunks whose document's metadata matches ``spec``, ascending."""
        return self.indexes.current(collection).metadata.matching(spec)

    def vector_search(
        self, collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
    ) -> Ranked:
        """The ``k`` chunks most similar to ``query`` (cosine similarity), among ``allowed``
        when given, by the collection's index."""
        scores, ids = self.indexes.current(collection).index.search(query, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def exact_search(self, collection: CollectionRow, query: Vectors, k: int, ids: Ids) -> Ranked:
        """Every chunk of ``ids`` scored against ``query`` (in the database), best ``k``
        first."""
        with self._db.connection() as db:
            rows = db.execute(
                "SELECT id, embedding <#> %s AS distance FROM rag_chunks "
                "WHERE collection_id = %s AND id = ANY(%s) ORDER BY distance, id LIMIT %s",
                (Vector(query[0]), collection.id, ids.tolist(), k),
            ).fetchall()
        return [(int(row[0]), -float(row[1])) for row in rows]

    def lexical_search(
        self, collection: CollectionRow, text: str, k: int, allowed: Ids | None
    ) -> Ranked:
        """The ``k`` chunks that best match ``text`` by BM25 (higher is better), among
        ``allowed`` when given."""
        scores, ids = self.indexes.current(collection).lexical.search(text, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def chunk_records(
        self, collection: CollectionRow, ids: Sequence[int]
    ) -> dict[int, ChunkRecord]:
        with self._db.connection() as db:
            rows = db.execute(
                'SELECT c.id, d.id, c.text, c.start, c."end", d.metadata::text '
                "FROM rag_chunks c JOIN rag_documents d ON d.pk = c.document_pk "
                "WHERE c.collection_id = %s AND c.id = ANY(%s)",
                (collection.id, [int(i) for i in ids]),
            ).fetchall()
        return {
            int(row[0]): ChunkRecord(
                id=int(row[0]),
                document_id=row[1],
                text=row[2],
                start=int(row[3]),
                end=int(row[4]),
                metadata=msgspec.json.decode(row[5]),
            )
            for row in rows
        }

    def chunk_vectors(
        self, collection: CollectionRow, ids: Ids | Sequence[int]
    ) -> dict[int, Vectors]:
        with self._db.connection() as db:
            rows = db.execute(
                "SELECT id, embedding FROM rag_chunks WHERE collection_id = %s AND id = ANY(%s)",
                (collection.id, [int(i) for i in ids]),
                binary=True,
            ).fetchall()
        return {int(row[0]): row[1] for row in rows}

    # -- upkeep --------------------------------------------------------------------------------

    def maintenance_due(self, collection: CollectionRow) -> bool:
        """Whether :meth:`maintain` has work to do that changes caught up from other replicas
        made due (they do not schedule this replica's maintenance)."""
        return self.indexes.rebuild_due(collection)

    def maintain(self, collection: CollectionRow) -> None:
        """Rebuild this replica's indexes of the collection when that pays (IVF clustering,
        many masked HNSW nodes), and forget the oldest changes of its log."""
        self.indexes.rebuild_if_due(collection)
        with self._db.connection() as db:
            db.execute(
                "DELETE FROM rag_changes WHERE collection_id = %s AND version <= "
                "(SELECT version FROM rag_collections WHERE id = %s) - %s",
                (collection.id, collection.id, KEPT_CHANGES),
            )

    # -- helpers -------------------------------------------------------------------------------

    def _document_conflict(
        self, collection: CollectionRow, documents: Sequence[PreparedDocument]
    ) -> ConflictError:
        """The 409 for a batch refused for an id that was taken (by the collection, or twice in
        the batch)."""
        ids = [document.id for document in documents]
        taken = self.existing_document_ids(collection, ids)
        seen: set[str] = set()
        clash = ids[0]
        for key in ids:
            if key in taken or key in seen:
                clash = key
                break
            seen.add(key)
        return ConflictError(
            f"A document with the id '{clash}' already exists.",
            param="id",
            code="document_exists",
        )


# -- reading rows ----------------------------------------------------------------------------------


def _collection(row: tuple[Any, ...]) -> CollectionRow:
    return CollectionRow(
        id=row[0],
        owner=row[1],
        kind=row[2],
        name=row[3],
        embedding_model=row[4],
        dimension=int(row[5]),
        index_type=row[6],
        metadata=msgspec.json.decode(row[7]),
        created_at=int(row[8]),
        shortened=bool(row[9]),
    )


def _document(row: tuple[Any, ...]) -> DocumentRow:
    return DocumentRow(
        pk=int(row[0]),
        id=row[1],
        collection_id=row[2],
        metadata=msgspec.json.decode(row[3]),
        created_at=int(row[4]),
        chunk_count=int(row[5]),
        characters=int(row[6]),
        filename=row[7],
        text=row[8] if len(row) > 8 else None,
    )


def _no_document(document_id: str) -> NotFoundError:
    return NotFoundError(
        f"No document '{document_id}' exists in this collection.",
        param="document_id",
        code="document_not_found",
    )
