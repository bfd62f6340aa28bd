"""The RAG store on PostgreSQL with pgvector, which several RAG replicas share.

Collections, documents and chunks are rows (:mod:`~aiplatform.engines.rag.postgres_database`);
each chunk holds its vector and its words (a ``tsvector``), so PostgreSQL keeps the vector and
full-text indexes in step with every write, and what one replica commits, every other searches
at once. Each write is one transaction, acknowledged once committed; deletes are real deletes.

Searching: a ``flat`` collection is searched exactly (every vector of the collection scored).
Any other collection has an HNSW index of its own, a partial index over its rows only, made
with the collection and dropped with it; its searches repeat the index's expression and
predicate so the planner can use it. Words are matched by PostgreSQL's full-text search (the
``english`` configuration: stemmed, without stop words), the query's words OR-ed, and ranked by
``ts_rank`` divided by ``1 + log(length)``. Metadata filters compile to SQL
(:mod:`~aiplatform.engines.rag.postgres_filters`) with the SQLite store's exact semantics.

PostgreSQL cannot keep the character U+0000 in text: in a document's text it is stored as
U+FFFD (offsets stay the same), and metadata holding it is refused (400).
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
from aiplatform.engines.rag.index import Ids, Vectors
from aiplatform.engines.rag.postgres_database import (
    Connection,
    PostgresConnections,
    Vector,
    checked_id,
    graph_index_name,
    insert_documents,
    metadata_text,
)
from aiplatform.engines.rag.postgres_filters import compile_postgres_filter
from aiplatform.engines.rag.store import Ranked
from aiplatform.errors import ConflictError, InvalidRequestError, NotFoundError

__all__ = ["PostgresStore"]

#: pgvector's bounds: vectors of at most 16,000 dimensions, HNSW indexes over at most 2,000
#: (larger collections of any index type are searched exactly), and ``hnsw.ef_search``.
MAX_DIMENSION = 16_000
MAX_GRAPH_DIMENSION = 2_000
MAX_EF_SEARCH = 1_000
#: Words of a lexical query that are searched for (the first ones).
MAX_QUERY_WORDS = 64

_WORD = re.compile(r"\w+", re.UNICODE)
_INTEGER = re.compile(r"-?[0-9]+")
#: How well a chunk's words match the query's (higher is better): ``ts_rank`` (each repeat of a
#: word counts less than the one before) divided by ``1 + log`` of the chunk's length. Of
#: PostgreSQL's rankings it did best in a known-item test on Python's own docstrings: MRR@10
#: 0.83, against 0.85 for SQLite's BM25, 0.57 to 0.82 for other normalizations, and 0.36 to
#: 0.49 for ``ts_rank_cd``, which ranks by proximity.
_RANK = "ts_rank(words, query, 1)"
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
        *,
        max_connections: int = 8,
        timeout_s: float = 10.0,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 128,
    ) -> None:
        """``timeout_s``: the longest a call waits to connect or for a free connection before
        its 503. HNSW parameters are brought within pgvector's bounds (``m`` 2 to 100,
        ``ef_construction`` at least ``2 m``, ``ef_search`` at most 1000, and never below a
        search's ``k``)."""
        self._db = PostgresConnections(url, max_connections=max_connections, timeout_s=timeout_s)
        self._m = min(max(hnsw_m, 2), 100)
        self._ef_construction = min(max(hnsw_ef_construction, 2 * self._m), 1000)
        self._ef_search = min(max(hnsw_ef_search, 1), MAX_EF_SEARCH)

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        self._db.open()

    def close(self) -> None:
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
        """A new collection (and its HNSW index unless it is flat); 409 ``collection_exists``
        if the owner has one of that name."""
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
                if _has_graph(row):
                    db.execute(self._graph_index_sql(row))
        except errors.UniqueViolation:
            raise ConflictError(
                f"A collection named '{name}' already exists.",
                param="name",
                code="collection_exists",
            ) from None
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
        """The chunks: PostgreSQL's indexes answer for every committed row."""
        return self.counts(collection)[1]

    def delete_collection(self, collection: CollectionRow) -> None:
        """The collection, its documents, chunks and index."""
        with self._db.transaction() as db:
            # adds to it (which hold a key share on its row) finish first; later ones find none
            found = db.execute(
                "SELECT 1 FROM rag_collections WHERE id = %s FOR UPDATE", (collection.id,)
            ).fetchone()
            if found is None:
                return
            if _has_graph(collection):
                db.execute(f"DROP INDEX IF EXISTS {graph_index_name(collection.id)}")
            db.execute("DELETE FROM rag_chunks WHERE collection_id = %s", (collection.id,))
            db.execute("DELETE FROM rag_documents WHERE collection_id = %s", (collection.id,))
            db.execute("DELETE FROM rag_collections WHERE id = %s", (collection.id,))

    # -- documents -----------------------------------------------------------------------------

    def add_documents(
        self, collection: CollectionRow, documents: Sequence[PreparedDocument]
    ) -> list[DocumentRow]:
        """Store ``documents`` in one transaction (all or none): 409 ``document_exists`` for an
        id the collection has (or the batch repeats), 404 if the collection was deleted."""
        now = int(time.time())
        try:
            with self._db.transaction() as db:
                pks = insert_documents(db, collection, documents, now=now)
        except errors.UniqueViolation:
            raise self._document_conflict(collection, documents) from None
        return [
            DocumentRow.stored(pk, document, collection.id, now)
            for pk, document in zip(pks, documents, strict=True)
        ]

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
        with self._db.transaction() as db:
            deleted = db.execute(
                "DELETE FROM rag_documents WHERE collection_id = %s AND id = %s",
                (collection.id, document_id),
            )
            if deleted.rowcount == 0:
                raise _no_document(document_id)

    def update_metadata(
        self, collection: CollectionRow, document_id: str, metadata: dict[str, Any]
    ) -> DocumentRow:
        text = metadata_text(metadata)
        with self._db.transaction() as db:
            found = db.execute(
                "UPDATE rag_documents SET metadata = %s::json, fields = %s::jsonb "
                f"WHERE collection_id = %s AND id = %s RETURNING {_DOCUMENT}",
                (text, text, collection.id, document_id),
            ).fetchone()
        if found is None:
            raise _no_document(document_id)
        return _document(found)

    # -- search --------------------------------------------------------------------------------

    def matching_chunk_ids(self, collection: CollectionRow, spec: dict[str, Any]) -> Ids:
        """The ids of the chunks whose document's metadata matches ``spec``, ascending."""
        condition, params = compile_postgres_filter(spec, "d.fields", "d.metadata")
        with self._db.connection() as db:
            found = db.execute(
                "SELECT coalesce(array_agg(chunk ORDER BY chunk), '{}') "
                "FROM rag_documents d, unnest(d.chunk_ids) AS chunk "
                f"WHERE d.collection_id = %s AND {condition}",
                (collection.id, *params),
                binary=True,
            ).fetchone()
        assert found is not None
        return np.asarray(found[0], dtype=np.int64)

    def vector_search(
        self, collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
    ) -> Ranked:
        """The ``k`` chunks most similar to ``query`` (cosine similarity: the inner product of
        unit vectors), among ``allowed`` when given. By the collection's HNSW index, whose
        results under ``allowed`` may be fewer than ``k``; exact for a flat collection."""
        if not _has_graph(collection):
            return self._exact(collection, query, k, allowed)
        sql, params = _graph_search(collection, query, k, allowed)
        with self._db.transaction() as db:
            self._graph_settings(db, k)
            rows = db.execute(sql, params).fetchall()
        return [(int(row[0]), -float(row[1])) for row in rows]

    def explain_vector_search(
        self, collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
    ) -> str:
        """The plan PostgreSQL runs for :meth:`vector_search` (``EXPLAIN``), to check that a
        collection's HNSW index serves its searches."""
        sql, params = _graph_search(collection, query, k, allowed)
        with self._db.transaction() as db:
            self._graph_settings(db, k)
            rows = db.execute(f"EXPLAIN {sql}", params).fetchall()
        return "\n".join(row[0] for row in rows)

    def _graph_settings(self, db: Connection, k: int) -> None:
        """For this transaction: candidates the graph search keeps (at least ``k``), and no
        sorting, so the planner takes the index whatever its row estimates (a collection made
        since the last ``ANALYZE`` looks empty to it)."""
        ef_search = min(max(self._ef_search, k), MAX_EF_SEARCH)
        db.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
        db.execute("SET LOCAL enable_sort = off")

    def exact_search(self, collection: CollectionRow, query: Vectors, k: int, ids: Ids) -> Ranked:
        """Every chunk of ``ids`` scored against ``query``, best ``k`` first."""
        return self._exact(collection, query, k, ids)

    def lexical_search(
        self, collection: CollectionRow, text: str, k: int, allowed: Ids | None
    ) -> Ranked:
        """The ``k`` chunks whose words best match ``text``'s (any of them; higher is better),
        among ``allowed`` when given."""
        words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
        if not words:
            return []
        # \w+ words hold no tsquery syntax; each is quoted all the same
        query = " | ".join(f"'{word}'" for word in words[:MAX_QUERY_WORDS])
        among = " AND id = ANY(%s)" if allowed is not None else ""
        params: list[Any] = [query, collection.id]
        if allowed is not None:
            params.append(allowed.tolist())
        with self._db.connection() as db:
            rows = db.execute(
                f"SELECT id, {_RANK} AS rank "
                "FROM rag_chunks, to_tsquery('english', %s) AS query "
                f"WHERE collection_id = %s AND words @@ query{among} "
                "ORDER BY rank DESC, id LIMIT %s",
                (*params, k),
            ).fetchall()
        return [(int(row[0]), float(row[1])) for row in rows]

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

    def maintain(self, collection: CollectionRow) -> None:
        """Nothing: PostgreSQL keeps the indexes with each write and vacuums deleted rows."""

    # -- helpers -------------------------------------------------------------------------------

    def _exact(
        self, collection: CollectionRow, query: Vectors, k: int, among: Ids | None
    ) -> Ranked:
        """The collection's chunks (or those of ``among``) scored one by one, best ``k``."""
        where = "collection_id = %s" + (" AND id = ANY(%s)" if among is not None else "")
        params: list[Any] = [Vector(query[0]), collection.id]
        if among is not None:
            params.append(among.tolist())
        with self._db.connection() as db:
            rows = db.execute(
                f"SELECT id, embedding <#> %s AS distance FROM rag_chunks WHERE {where} "
                "ORDER BY distance, id LIMIT %s",
                (*params, k),
            ).fetchall()
        return [(int(row[0]), -float(row[1])) for row in rows]

    def _graph_index_sql(self, row: CollectionRow) -> str:
        """The collection's HNSW index: over its rows only, by inner product, on the vectors
        cast to the collection's dimension (an index needs one)."""
        return (
            f"CREATE INDEX {graph_index_name(row.id)} ON rag_chunks USING hnsw "
            f"((embedding::vector({row.dimension})) vector_ip_ops) "
            f"WITH (m = {self._m}, ef_construction = {self._ef_construction}) "
            f"WHERE collection_id = '{checked_id(row.id)}'"
        )

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


def _graph_search(
    collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
) -> tuple[str, list[Any]]:
    """A search by the collection's HNSW index: the index's own expression and predicate,
    spelled out so the planner matches them."""
    among = " AND id = ANY(%s)" if allowed is not None else ""
    sql = (
        f"SELECT id, embedding::vector({collection.dimension}) <#> %s AS distance "
        f"FROM rag_chunks WHERE collection_id = '{checked_id(collection.id)}'{among} "
        "ORDER BY distance LIMIT %s"
    )
    params: list[Any] = [Vector(query[0])]
    if allowed is not None:
        params.append(allowed.tolist())
    return sql, [*params, k]


# -- reading rows ----------------------------------------------------------------------------------


def _has_graph(collection: CollectionRow) -> bool:
    """Whether the collection has an HNSW index (flat ones, and any of more dimensions than
    pgvector indexes, are searched exactly)."""
    return collection.index_type != "flat" and collection.dimension <= MAX_GRAPH_DIMENSION


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
