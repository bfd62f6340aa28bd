"""What every RAG operation shares: the owner's collections, documents checked, chunked and
embedded before they are stored, searches, and index maintenance in the background.

Every step reads the request's owner (:func:`aiplatform.tenant.current_tenant`) before it
hands work to a thread, and the store filters by it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import anyio.abc

from aiplatform.api.rag import (
    ChunkingOptions,
    Collection,
    DocumentInput,
    DocumentRecord,
    SearchHit,
    SearchRequest,
)
from aiplatform.engines.finite import finite_float32
from aiplatform.engines.rag.chunking import chunk_documents
from aiplatform.engines.rag.embedding import Embedder, unit
from aiplatform.engines.rag.index import Vectors
from aiplatform.engines.rag.search import search_collection
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.rag.store import CollectionRow, DocumentRow, PreparedDocument, RagStore
from aiplatform.errors import ConflictError, InvalidRequestError
from aiplatform.tenant import current_tenant

__all__ = ["DOCUMENTS", "MEMORY", "Blocking", "RagCore", "new_document_id", "public_document"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The kinds of collection: a user's documents, or one conversation's memory.
DOCUMENTS = "documents"
MEMORY = "memory"


class Blocking(Protocol):
    """Runs a blocking store call on one of the engine's worker threads."""

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T: ...


class RagCore:
    def __init__(
        self,
        store: RagStore,
        embedder: Embedder,
        settings: RagSettings,
        run_blocking: Blocking,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.run_blocking = run_blocking
        self._task_group: anyio.abc.TaskGroup | None = None
        self._maintaining: set[str] = set()
        #: collections changed again while their maintenance ran: they get one more run
        self._maintain_again: set[str] = set()

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Index maintenance runs in ``task_group`` from now on."""
        self._task_group = task_group

    # -- collections ---------------------------------------------------------------------------

    async def collection(self, ref: str) -> CollectionRow:
        """The owner's document collection named or numbered ``ref``; 404 otherwise."""
        owner = current_tenant()
        return await self.run_blocking(self.store.collection, owner, DOCUMENTS, ref)

    async def new_collection(
        self,
        owner: str,
        kind: str,
        name: str,
        *,
        model: str | None = None,
        dimension: int | None = None,
        index_type: str = "flat",
        metadata: dict[str, Any] | None = None,
    ) -> CollectionRow:
        """A collection in the embedding space the embeddings engine gives for ``model`` and
        ``dimension`` (unset: its default model, at its own size)."""
        model, dimension, shortened = await self.embedder.embedding_space(model, dimension)
        return await self.run_blocking(
            lambda: self.store.create_collection(
                owner,
                kind,
                name,
                embedding_model=model,
                dimension=dimension,
                shortened=shortened,
                index_type=index_type,
                metadata=metadata or {},
            )
        )

    async def delete_collection(self, row: CollectionRow) -> None:
        await self.run_blocking(self.store.delete_collection, row)
        self.schedule_maintenance(row)  # purges the deleted text from the files

    async def public(self, row: CollectionRow) -> Collection:
        # both on a worker thread: a store may ask its database for either
        documents, chunks, indexed = await self.run_blocking(
            lambda: (*self.store.counts(row), self.store.indexed_count(row))
        )
        return Collection(
            id=row.id,
            name=row.name,
            embedding_model=row.embedding_model,
            dimension=row.dimension,
            index=row.index_type,  # type: ignore[arg-type]
            metadata=row.metadata,
            created_at=row.created_at,
            document_count=documents,
            chunk_count=chunks,
            indexed_count=indexed,
        )

    # -- documents -----------------------------------------------------------------------------

    def checked(
        self, documents: Sequence[DocumentInput], *, param: str = "documents"
    ) -> list[DocumentInput]:
        """``documents`` if every one can be stored; else a 400 naming the first that cannot."""
        limit = self.settings.max_document_chars
        seen: set[str] = set()
        for index, document in enumerate(documents):
            where = f"{param}[{index}]" if len(documents) > 1 or param == "documents" else param
            if not document.text.strip():
                raise InvalidRequestError(
                    f"{where} is empty: there is no text to add.",
                    param=where,
                    code="empty_document",
                )
            if len(document.text) > limit:
                raise InvalidRequestError(
                    f"{where} has {len(document.text)} characters; a document may have at most "
                    f"{limit} (engines.rag.max_document_chars).",
                    param=where,
                    code="document_too_large",
                )
            if document.id is not None:
                if document.id in seen:
                    raise InvalidRequestError(
                        f"The id '{document.id}' is given twice.", param=f"{where}.id"
                    )
                seen.add(document.id)
        return list(documents)

    async def refuse_existing(self, row: CollectionRow, documents: list[DocumentInput]) -> None:
        """A 409 naming the first of ``documents`` whose own id the collection already has."""
        ids = [document.id for document in documents if document.id is not None]
        existing = await self.run_blocking(self.store.existing_document_ids, row, ids)
        if existing:
            raise ConflictError(
                f"A document with the id '{sorted(existing)[0]}' already exists.",
                param="id",
                code="document_exists",
            )

    async def prepare(
        self,
        row: CollectionRow,
        documents: Sequence[DocumentInput],
        chunking: ChunkingOptions,
        *,
        filename: str | None = None,
        param: str = "documents",
        job: bool = False,
    ) -> list[PreparedDocument]:
        """Documents chunked (on a worker thread: it is CPU work) and embedded, ready to store;
        a 400 before anything is embedded when they make more chunks than a request (or, for
        ``job``, an ingest job) may."""
        pieces = await self.run_blocking(
            lambda: chunk_documents(
                [document.text for document in documents],
                chunking.chunk_size,
                chunking.chunk_overlap,
                **self.chunk_limit(param, job=job),
            )
        )
        texts = [chunk.text for chunks in pieces for chunk in chunks]
        vectors = await self.embedder.embed(row, texts)
        prepared = []
        offset = 0
        for document, chunks in zip(documents, pieces, strict=True):
            prepared.append(
                PreparedDocument(
                    id=document.id or new_document_id(),
                    text=document.text,
                    metadata=document.metadata,
                    chunks=chunks,
                    vectors=vectors[offset : offset + len(chunks)],
                    filename=filename,
                )
            )
            offset += len(chunks)
        return prepared

    def chunk_limit(self, param: str, *, job: bool) -> dict[str, Any]:
        """The most chunks a request (or an ingest job) may make, as :func:`chunk_documents`
        takes it."""
        if job:
            return {
                "limit": self.settings.max_chunks_per_job,
                "param": param,
                "setting": "engines.rag.max_chunks_per_job",
            }
        return {
            "limit": self.settings.max_chunks_per_request,
            "param": param,
            "setting": "engines.rag.max_chunks_per_request",
        }

    # -- search --------------------------------------------------------------------------------

    async def search(self, row: CollectionRow, request: SearchRequest) -> list[SearchHit]:
        if request.query is None and request.vector is None:
            raise InvalidRequestError("Give a query or a vector to search with.", param="query")
        if request.mode != "vector" and not request.query:
            raise InvalidRequestError(
                f"mode '{request.mode}' ranks by the query's words: give a query "
                "(a vector alone searches with mode 'vector').",
                param="query",
            )
        query = await self._query_vector(row, request) if request.mode != "lexical" else None

        def searched() -> tuple[list[SearchHit], bool]:
            hits = search_collection(
                self.store, row, request, query, exact_filter_limit=self.settings.exact_filter_limit
            )
            # asked on the worker thread: it takes the index's lock
            return hits, self.store.maintenance_due(row)

        hits, due = await self.run_blocking(searched)
        if due:
            self.schedule_maintenance(row)
        return hits

    async def _query_vector(self, row: CollectionRow, request: SearchRequest) -> Vectors:
        if request.vector is not None:
            if len(request.vector) != row.dimension:
                raise InvalidRequestError(
                    f"The vector has {len(request.vector)} dimensions; collection '{row.name}' "
                    f"holds {row.dimension}-dimensional vectors.",
                    param="vector",
                    code="dimension_mismatch",
                )
            return unit(finite_float32([request.vector], "vector"))
        assert request.query is not None
        return await self.embedder.embed(row, [request.query])

    # -- maintenance ---------------------------------------------------------------------------

    def schedule_maintenance(self, row: CollectionRow) -> None:
        """Write or rebuild the collection's index in the background, one run at a time; a
        change that comes while a run is under way gets one more run after it (changes that
        come meanwhile share it), so none is left out of the saved index."""
        if self._task_group is None:
            return
        if row.id in self._maintaining:
            self._maintain_again.add(row.id)
            return
        self._maintaining.add(row.id)

        async def maintain() -> None:
            try:
                while True:
                    self._maintain_again.discard(row.id)
                    try:
                        await self.run_blocking(self.store.maintain, row)
                    except Exception:
                        logger.exception("maintenance of %s failed", row.id)
                        return
                    if row.id not in self._maintain_again:
                        return
            finally:
                self._maintaining.discard(row.id)
                self._maintain_again.discard(row.id)

        self._task_group.start_soon(maintain)


def new_document_id() -> str:
    return f"doc_{uuid.uuid4().hex[:20]}"


def public_document(document: DocumentRow) -> DocumentRecord:
    return DocumentRecord(
        id=document.id,
        collection_id=document.collection_id,
        metadata=document.metadata,
        created_at=document.created_at,
        chunk_count=document.chunk_count,
        characters=document.characters,
        text=document.text,
        filename=document.filename,
    )
