"""What the RAG engine asks of the store that keeps its collections, documents, chunks and
indexes. Two stores answer it:

- :class:`~aiplatform.engines.rag.sqlite_store.SqliteStore` (the default): one SQLite file
  with FAISS, lexical and metadata indexes in memory beside it, for one server;
- :class:`~aiplatform.engines.rag.postgres_store.PostgresStore`: a PostgreSQL database with
  pgvector that several RAG replicas share.

Every read and write names the owner: a collection is only ever found through its owner, and
documents and chunks only through their collection. Calls block (the engine runs them on worker
threads); each write is one transaction, durable once it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aiplatform.engines.rag.collections import CollectionRow
from aiplatform.engines.rag.documents import ChunkRecord, DocumentRow, PreparedDocument
from aiplatform.engines.rag.index import Ids, Vectors

__all__ = ["ChunkRecord", "CollectionRow", "DocumentRow", "PreparedDocument", "RagStore", "Ranked"]

#: Chunk ids with their scores, best first.
Ranked = list[tuple[int, float]]


class RagStore(Protocol):
    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None: ...

    def close(self) -> None:
        """Write what is pending and release the connections."""

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

    def collection(self, owner: str, kind: str, ref: str) -> CollectionRow:
        """The owner's collection whose id or name is ``ref``; 404 otherwise."""

    def find_collection(self, owner: str, kind: str, name: str) -> CollectionRow | None: ...

    def list_collections(self, owner: str, kind: str) -> list[CollectionRow]: ...

    def counts(self, collection: CollectionRow) -> tuple[int, int]:
        """Documents and chunks."""

    def indexed_count(self, collection: CollectionRow) -> int | None:
        """Vectors the collection's index answers for; None when that is not known cheaply."""

    def delete_collection(self, collection: CollectionRow) -> None: ...

    # -- documents -----------------------------------------------------------------------------

    def add_documents(
        self, collection: CollectionRow, documents: Sequence[PreparedDocument]
    ) -> list[DocumentRow]:
        """Store ``documents`` in one transaction (all or none; 409 ``document_exists`` for an
        id the collection has, 404 if the collection was deleted meanwhile), searchable once
        this returns."""

    def existing_document_ids(self, collection: CollectionRow, ids: Sequence[str]) -> set[str]: ...

    def document(
        self, collection: CollectionRow, document_id: str, *, text: bool
    ) -> DocumentRow: ...

    def list_documents(
        self, collection: CollectionRow, *, limit: int, after: str | None, order: str = "id"
    ) -> tuple[list[DocumentRow], bool]:
        """A page of documents ordered by id (or by ``pk``: insertion order), and whether more
        follow."""

    def latest_documents(self, collection: CollectionRow, limit: int) -> list[DocumentRow]:
        """The last ``limit`` documents added, oldest first, with their text."""

    def delete_document(self, collection: CollectionRow, document_id: str) -> None: ...

    def update_metadata(
        self, collection: CollectionRow, document_id: str, metadata: dict[str, Any]
    ) -> DocumentRow: ...

    # -- search --------------------------------------------------------------------------------

    def matching_chunk_ids(self, collection: CollectionRow, spec: dict[str, Any]) -> Ids:
        """The ids of the chunks whose document's metadata matches the filter ``spec`` (400
        ``invalid_filter`` for one outside the language), ascending."""

    def vector_search(
        self, collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
    ) -> Ranked:
        """The ``k`` chunks most similar to ``query`` (one unit row) by the collection's
        index, among ``allowed`` when given; cosine similarity."""

    def exact_search(self, collection: CollectionRow, query: Vectors, k: int, ids: Ids) -> Ranked:
        """Every chunk of ``ids`` scored against ``query``, best ``k`` first."""

    def lexical_search(
        self, collection: CollectionRow, text: str, k: int, allowed: Ids | None
    ) -> Ranked:
        """The ``k`` chunks that best match ``text`` by BM25 (higher is better), among
        ``allowed`` when given."""

    def chunk_records(
        self, collection: CollectionRow, ids: Sequence[int]
    ) -> dict[int, ChunkRecord]: ...

    def chunk_vectors(
        self, collection: CollectionRow, ids: Ids | Sequence[int]
    ) -> dict[int, Vectors]: ...

    # -- upkeep --------------------------------------------------------------------------------

    def maintenance_due(self, collection: CollectionRow) -> bool:
        """Whether :meth:`maintain` has work that a search found due (changes made elsewhere,
        which did not schedule it here)."""

    def maintain(self, collection: CollectionRow) -> None:
        """Work a change left due (rebuilding or writing an index, purging deleted text); run
        in the background after changes, and after a search that found it due."""
