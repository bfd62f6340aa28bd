"""The in-process RAG engine: requests in, store calls and embeddings out.

Documents are cut into chunks, embedded through the embeddings engine (in-process or remote,
whichever this server has) and stored; a call that adds documents returns once they are durable
and searchable. Ingest jobs are stored first and worked through in the background, surviving
restarts. Conversation memory is a hidden collection per conversation.

Every handler reads the request's owner (:func:`aiplatform.tenancy.current_tenant`) before it
hands work to a thread, and the store filters by it.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec
import numpy as np

from aiplatform.api.openai import EmbeddingRequest, ModelCard
from aiplatform.api.rag import (
    ChunkingOptions,
    Collection,
    CollectionCreateRequest,
    CollectionDeleted,
    CollectionList,
    CollectionListRequest,
    CollectionRef,
    ConversationRef,
    DocumentAddRequest,
    DocumentDeleted,
    DocumentFileRequest,
    DocumentInput,
    DocumentList,
    DocumentListRequest,
    DocumentRecord,
    DocumentRef,
    Documents,
    DocumentUpdateRequest,
    IngestJob,
    IngestJobRequest,
    JobError,
    JobRef,
    MemoryAddRequest,
    MemoryDeleted,
    MemoryList,
    MemoryListRequest,
    MemorySearchRequest,
    MemoryTurn,
    SearchHit,
    SearchRequest,
    SearchResult,
)
from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.operations import EMBED
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.rag import operations as ops
from aiplatform.engines.rag.chunking import split_text
from aiplatform.engines.rag.extract import extract_text
from aiplatform.engines.rag.index import IndexParams, Vectors
from aiplatform.engines.rag.search import search_collection
from aiplatform.engines.rag.store import (
    CollectionRow,
    DocumentRow,
    JobRow,
    PreparedDocument,
    RagStore,
)
from aiplatform.errors import (
    AIPlatformError,
    ConflictError,
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
)
from aiplatform.settings import RagSettings, default_data_dir
from aiplatform.tenancy import current_tenant

__all__ = ["LocalRagEngine"]

logger = logging.getLogger(__name__)

DOCUMENTS = "documents"
MEMORY = "memory"
#: Documents prepared (chunked and embedded) and stored together by an ingest job.
_JOB_BATCH = 32
#: Seconds before a job the embeddings engine could not serve is tried again.
JOB_RETRY_S = 5.0


class LocalRagEngine(LocalEngine):
    def __init__(self, settings: RagSettings, *, embeddings: Engine) -> None:
        super().__init__(ops.RAG, max_concurrency=settings.max_concurrency)
        self._settings = settings
        self._embeddings = embeddings
        folder = settings.data_dir or str(Path(default_data_dir()) / "rag")
        params = IndexParams(
            hnsw_m=settings.hnsw_m,
            hnsw_ef_search=settings.hnsw_ef_search,
            ivf_min_train=settings.ivf_min_train,
            ivf_nprobe=settings.ivf_nprobe,
        )
        budget = settings.index_memory_mb
        self._store = RagStore(
            folder,
            params,
            checkpoint_every=settings.checkpoint_every,
            index_memory_bytes=budget * 1024 * 1024 if budget is not None else None,
        )
        self._task_group: anyio.abc.TaskGroup | None = None
        # made when the engine starts: anyio's primitives belong to a running event loop
        self._jobs_waiting: anyio.Event | None = None
        self._memory_lock: anyio.Lock | None = None
        self._maintaining: set[str] = set()
        self.job_retry_s = JOB_RETRY_S
        self.bind(ops.CREATE_COLLECTION, self.create_collection)
        self.bind(ops.LIST_COLLECTIONS, self.list_collections)
        self.bind(ops.GET_COLLECTION, self.get_collection)
        self.bind(ops.DELETE_COLLECTION, self.delete_collection)
        self.bind(ops.ADD_DOCUMENTS, self.add_documents)
        self.bind(ops.UPLOAD_DOCUMENT, self.upload_document)
        self.bind(ops.LIST_DOCUMENTS, self.list_documents)
        self.bind(ops.GET_DOCUMENT, self.get_document)
        self.bind(ops.UPDATE_DOCUMENT, self.update_document)
        self.bind(ops.DELETE_DOCUMENT, self.delete_document)
        self.bind(ops.SEARCH, self.search)
        self.bind(ops.CREATE_JOB, self.create_job)
        self.bind(ops.GET_JOB, self.get_job)
        self.bind(ops.ADD_MEMORY, self.add_memory)
        self.bind(ops.LIST_MEMORY, self.list_memory)
        self.bind(ops.SEARCH_MEMORY, self.search_memory)
        self.bind(ops.DELETE_MEMORY, self.delete_memory)

    @property
    def store(self) -> RagStore:
        return self._store

    def load(self) -> None:
        self._store.open()

    def unload(self) -> None:
        self._store.close()

    async def start_background(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        self._memory_lock = anyio.Lock()
        self._jobs_waiting = anyio.Event()
        task_group.start_soon(self._work_through_jobs)

    async def list_models(self) -> list[ModelCard]:
        return []

    # -- collections ---------------------------------------------------------------------------

    async def create_collection(self, request: CollectionCreateRequest) -> Collection:
        owner = current_tenant()
        name = request.name.strip()
        if not name:
            raise InvalidRequestError("name must not be blank.", param="name")
        row = await self._new_collection(
            owner,
            DOCUMENTS,
            name,
            model=request.embedding_model,
            dimension=request.dimension,
            index_type=request.index,
            metadata=request.metadata,
        )
        return await self._public(row)

    async def list_collections(self, _: CollectionListRequest) -> CollectionList:
        owner = current_tenant()
        rows = await self.run_blocking(self._store.collections, owner, DOCUMENTS)
        return CollectionList(data=[await self._public(row) for row in rows])

    async def get_collection(self, request: CollectionRef) -> Collection:
        return await self._public(await self._collection(request.collection_id))

    async def delete_collection(self, request: CollectionRef) -> CollectionDeleted:
        row = await self._collection(request.collection_id)
        await self._delete_collection(row)
        return CollectionDeleted(id=row.id)

    # -- documents -----------------------------------------------------------------------------

    async def add_documents(self, request: DocumentAddRequest) -> Documents:
        row = await self._collection(request.collection_id)
        inputs = self._checked(request.documents)
        await self._refuse_existing(row, inputs)
        prepared = await self._prepare(row, inputs, request.chunking)
        added = await self.run_blocking(self._store.add_documents, row, prepared)
        self._schedule_maintenance(row)
        return Documents(data=[_public_document(document) for document in added])

    async def upload_document(self, request: DocumentFileRequest) -> DocumentRecord:
        row = await self._collection(request.collection_id)
        text = await self.run_blocking(
            extract_text, request.file.data, request.file.filename, request.file.content_type
        )
        metadata = _metadata_field(request.metadata)
        document = DocumentInput(text=text, id=request.id, metadata=metadata)
        chunking = ChunkingOptions(
            chunk_size=request.chunk_size, chunk_overlap=request.chunk_overlap
        )
        (checked,) = self._checked([document], param="file")
        await self._refuse_existing(row, [checked])
        prepared = await self._prepare(row, [checked], chunking, filename=request.file.filename)
        (added,) = await self.run_blocking(self._store.add_documents, row, prepared)
        self._schedule_maintenance(row)
        return _public_document(added)

    async def list_documents(self, request: DocumentListRequest) -> DocumentList:
        row = await self._collection(request.collection_id)
        documents, more = await self.run_blocking(
            lambda: self._store.documents(row, limit=request.limit, after=request.after)
        )
        return DocumentList(data=[_public_document(d) for d in documents], has_more=more)

    async def get_document(self, request: DocumentRef) -> DocumentRecord:
        row = await self._collection(request.collection_id)
        document = await self.run_blocking(
            lambda: self._store.document(row, request.document_id, text=True)
        )
        return _public_document(document)

    async def update_document(self, request: DocumentUpdateRequest) -> DocumentRecord:
        row = await self._collection(request.collection_id)
        document = await self.run_blocking(
            self._store.update_metadata, row, request.document_id, request.metadata
        )
        return _public_document(document)

    async def delete_document(self, request: DocumentRef) -> DocumentDeleted:
        row = await self._collection(request.collection_id)
        await self.run_blocking(self._store.delete_document, row, request.document_id)
        self._schedule_maintenance(row)
        return DocumentDeleted(id=request.document_id)

    # -- search --------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        row = await self._collection(request.collection_id)
        hits = await self._search(row, request)
        return SearchResult(data=hits, mode=request.mode)

    async def _search(self, row: CollectionRow, request: SearchRequest) -> list[SearchHit]:
        if request.query is None and request.vector is None:
            raise InvalidRequestError("Give a query or a vector to search with.", param="query")
        if request.mode != "vector" and not request.query:
            raise InvalidRequestError(
                f"mode '{request.mode}' ranks by the query's words: give a query "
                "(a vector alone searches with mode 'vector').",
                param="query",
            )
        query = await self._query_vector(row, request) if request.mode != "lexical" else None
        return await self.run_blocking(
            lambda: search_collection(
                self._store,
                row,
                request,
                query,
                exact_filter_limit=self._settings.exact_filter_limit,
            )
        )

    async def _query_vector(self, row: CollectionRow, request: SearchRequest) -> Vectors:
        if request.vector is not None:
            if len(request.vector) != row.dimension:
                raise InvalidRequestError(
                    f"The vector has {len(request.vector)} dimensions; collection '{row.name}' "
                    f"holds {row.dimension}-dimensional vectors.",
                    param="vector",
                    code="dimension_mismatch",
                )
            return _unit(np.asarray([request.vector], dtype=np.float32))
        assert request.query is not None
        return await self._embed(row, [request.query])

    # -- ingest jobs ---------------------------------------------------------------------------

    async def create_job(self, request: IngestJobRequest) -> IngestJob:
        row = await self._collection(request.collection_id)
        inputs = self._checked(request.documents)
        await self._refuse_existing(row, inputs)
        named = [
            document if document.id else msgspec.structs.replace(document, id=_document_id())
            for document in inputs
        ]
        payload = msgspec.json.encode(_JobPayload(documents=named, chunking=request.chunking))
        job = await self.run_blocking(
            self._store.create_job, row, payload, [d.id or "" for d in named]
        )
        if self._jobs_waiting is not None:
            self._jobs_waiting.set()
        return _public_job(job)

    async def get_job(self, request: JobRef) -> IngestJob:
        owner = current_tenant()
        return _public_job(await self.run_blocking(self._store.job, owner, request.job_id))

    async def _work_through_jobs(self) -> None:
        """Run stored jobs, oldest first (those a restart interrupted too), then wait for
        new ones."""
        try:
            await self.wait_loaded()
        except EngineUnavailableError:
            return  # the store did not open; status() says why
        while True:
            self._jobs_waiting = wake_up = anyio.Event()
            deferred = False
            for job in await self.run_blocking(self._store.unfinished_jobs):
                try:
                    await self._run_job(job)
                except EngineUnavailableError as exc:
                    # the embeddings engine is loading or unreachable: the job stays
                    # unfinished and is taken up again, not failed document by document
                    logger.warning("ingest job %s waits: %s", job.id, exc.message)
                    deferred = True
                except Exception:
                    logger.exception("ingest job %s failed", job.id)
                    job.status = "failed"
                    await self.run_blocking(self._store.update_job, job)
            with anyio.move_on_after(self.job_retry_s if deferred else math.inf):
                await wake_up.wait()

    async def _run_job(self, job: JobRow) -> None:
        payload = msgspec.json.decode(
            await self.run_blocking(self._store.job_payload, job.id), type=_JobPayload
        )
        try:
            row = await self.run_blocking(
                self._store.collection, job.owner, DOCUMENTS, job.collection_id
            )
        except NotFoundError:
            return  # the collection was deleted; its jobs went with it
        job.status = "running"
        await self.run_blocking(self._store.update_job, job)
        documents = payload.documents
        done = await self.run_blocking(
            self._store.existing_document_ids, row, [d.id or "" for d in documents]
        )
        errors = {error["index"]: error for error in job.errors}
        for start in range(0, len(documents), _JOB_BATCH):
            batch = [
                (index, document)
                for index, document in enumerate(documents[start : start + _JOB_BATCH], start)
                if document.id not in done and index not in errors
            ]
            if batch:
                failures = await self._ingest_batch(row, batch, payload.chunking)
                errors.update({e["index"]: e for e in failures})
            job.failed = len(errors)
            job.completed = min(start + _JOB_BATCH, len(documents)) - job.failed
            job.errors = sorted(errors.values(), key=lambda error: int(error["index"]))
            await self.run_blocking(self._store.update_job, job)
        job.status = "succeeded" if job.failed < job.total else "failed"
        await self.run_blocking(self._store.update_job, job)
        self._schedule_maintenance(row)

    async def _ingest_batch(
        self,
        row: CollectionRow,
        batch: list[tuple[int, DocumentInput]],
        chunking: ChunkingOptions,
    ) -> list[dict[str, Any]]:
        """Store ``batch``; when a document is refused (a 4xx), each document alone, so that it
        fails by itself. The failures, as job errors; server-side errors propagate."""
        try:
            prepared = await self._prepare(row, [d for _, d in batch], chunking)
            await self.run_blocking(self._store.add_documents, row, prepared)
            return []
        except AIPlatformError as exc:
            if exc.status_code >= 500 or len(batch) == 1:
                raise
        failures: list[dict[str, Any]] = []
        for index, document in batch:
            try:
                await self._ingest_batch(row, [(index, document)], chunking)
            except AIPlatformError as exc:
                if exc.status_code >= 500:
                    raise
                failures.append({"index": index, "message": exc.message})
        return failures

    # -- conversation memory -------------------------------------------------------------------

    async def add_memory(self, request: MemoryAddRequest) -> MemoryList:
        owner = current_tenant()
        conversation = _conversation_id(request.conversation_id)
        # refused before the conversation is created
        self._checked(
            [DocumentInput(text=message.content) for message in request.messages],
            param="messages",
        )
        assert self._memory_lock is not None, "the engine has not been started"
        async with self._memory_lock:
            row = await self.run_blocking(self._store.find_collection, owner, MEMORY, conversation)
            if row is None:
                row = await self._new_collection(owner, MEMORY, conversation)
            first_turn = (await self.run_blocking(self._store.counts, row))[0]
            inputs = [
                DocumentInput(
                    id=f"turn-{turn}",
                    text=message.content,
                    metadata={**message.metadata, "role": message.role, "turn": turn},
                )
                for turn, message in enumerate(request.messages, first_turn)
            ]
            prepared = await self._prepare(row, inputs, ChunkingOptions())
            added = await self.run_blocking(self._store.add_documents, row, prepared)
        texts = {document.id: document.text for document in inputs}
        return MemoryList(
            data=[_turn(conversation, document, texts[document.id]) for document in added]
        )

    async def list_memory(self, request: MemoryListRequest) -> MemoryList:
        row = await self._conversation(request.conversation_id)
        documents = await self.run_blocking(self._store.latest_documents, row, request.limit)
        return MemoryList(
            data=[_turn(row.name, document, document.text or "") for document in documents]
        )

    async def search_memory(self, request: MemorySearchRequest) -> MemoryList:
        row = await self._conversation(request.conversation_id)
        search = SearchRequest(
            query=request.query,
            top_k=request.top_k,
            mode="vector",
            filter={"role": request.role} if request.role else None,
        )
        hits = await self._search(row, search)
        best: dict[str, float] = {}
        for hit in hits:  # a long turn has several chunks: each turn once, at its best
            best.setdefault(hit.document_id, hit.score)
        documents = await self.run_blocking(
            lambda: [self._store.document(row, key, text=True) for key in best]
        )
        return MemoryList(
            data=[
                _turn(row.name, document, document.text or "", score=best[document.id])
                for document in documents
            ]
        )

    async def delete_memory(self, request: ConversationRef) -> MemoryDeleted:
        row = await self._conversation(request.conversation_id)
        await self._delete_collection(row)
        return MemoryDeleted(id=row.name)

    # -- shared steps --------------------------------------------------------------------------

    async def _collection(self, ref: str) -> CollectionRow:
        owner = current_tenant()
        return await self.run_blocking(self._store.collection, owner, DOCUMENTS, ref)

    async def _conversation(self, conversation_id: str) -> CollectionRow:
        owner = current_tenant()
        name = _conversation_id(conversation_id)
        row = await self.run_blocking(self._store.find_collection, owner, MEMORY, name)
        if row is None:
            raise NotFoundError(
                f"No conversation '{name}' is remembered.",
                param="conversation_id",
                code="conversation_not_found",
            )
        return row

    async def _refuse_existing(self, row: CollectionRow, documents: list[DocumentInput]) -> None:
        """A 409 naming the first of ``documents`` whose own id the collection already has."""
        ids = [document.id for document in documents if document.id is not None]
        existing = await self.run_blocking(self._store.existing_document_ids, row, ids)
        if existing:
            raise ConflictError(
                f"A document with the id '{sorted(existing)[0]}' already exists.",
                param="id",
                code="document_exists",
            )

    async def _delete_collection(self, row: CollectionRow) -> None:
        await self.run_blocking(self._store.delete_collection, row)
        self._schedule_maintenance(row)  # purges the deleted text from the files

    async def _public(self, row: CollectionRow) -> Collection:
        documents, chunks = await self.run_blocking(self._store.counts, row)
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
            indexed_count=self._store.indexed_count(row),
        )

    def _checked(
        self, documents: Sequence[DocumentInput], *, param: str = "documents"
    ) -> list[DocumentInput]:
        """``documents`` if every one can be stored; else a 400 naming the first that cannot."""
        limit = self._settings.max_document_chars
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

    async def _prepare(
        self,
        row: CollectionRow,
        documents: Sequence[DocumentInput],
        chunking: ChunkingOptions,
        *,
        filename: str | None = None,
    ) -> list[PreparedDocument]:
        """Documents chunked and embedded, ready to store."""
        pieces = [
            split_text(document.text, chunking.chunk_size, chunking.chunk_overlap)
            for document in documents
        ]
        texts = [chunk.text for chunks in pieces for chunk in chunks]
        vectors = await self._embed(row, texts)
        prepared = []
        offset = 0
        for document, chunks in zip(documents, pieces, strict=True):
            prepared.append(
                PreparedDocument(
                    id=document.id or _document_id(),
                    text=document.text,
                    metadata=document.metadata,
                    chunks=chunks,
                    vectors=vectors[offset : offset + len(chunks)],
                    filename=filename,
                )
            )
            offset += len(chunks)
        return prepared

    async def _new_collection(
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
        model, dimension, shortened = await self._embedding_space(model, dimension)
        return await self.run_blocking(
            lambda: self._store.create_collection(
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

    async def _embed(self, row: CollectionRow, texts: list[str]) -> Vectors:
        """Unit vectors of ``texts`` in the collection's embedding space; of the model's own
        size unless the collection holds shortened vectors."""
        vectors = await self._embed_with(
            row.embedding_model, row.dimension if row.shortened else None, texts
        )
        if vectors.shape[0] and vectors.shape[1] != row.dimension:
            raise InvalidRequestError(
                f"The embeddings engine returned {vectors.shape[1]}-dimensional vectors; this "
                f"collection holds {row.dimension}-dimensional ones.",
                code="dimension_mismatch",
            )
        return vectors

    async def _embed_with(
        self, model: str | None, dimension: int | None, texts: list[str]
    ) -> Vectors:
        rows: list[list[float]] = []
        size = self._settings.embed_batch_size
        for start in range(0, len(texts), size):
            batch: list[str | int | list[int]] = list(texts[start : start + size])
            request = EmbeddingRequest(input=batch, model=model, dimensions=dimension)
            response = await self._embeddings.invoke(EMBED, request)
            for item in sorted(response.data, key=lambda item: item.index):
                if not isinstance(item.embedding, list):
                    raise InvalidRequestError("The embeddings engine answered base64 vectors.")
                rows.append(item.embedding)
        if not rows:
            return np.zeros((0, dimension or 0), dtype=np.float32)
        return _unit(np.asarray(rows, dtype=np.float32))

    async def _embedding_space(
        self, model: str | None, dimension: int | None
    ) -> tuple[str, int, bool]:
        """The embedding model a new collection uses, its vector size, and whether that is
        shorter than the model's own; asked of the embeddings engine, so a model it does not
        serve, or a size it cannot give, is refused now rather than at the first document."""
        if model is None:
            cards = await self._embeddings.list_models()
            if not cards:
                raise InvalidRequestError(
                    "The embeddings engine lists no model; name one as embedding_model.",
                    param="embedding_model",
                )
            model = cards[0].id
        try:
            probe = await self._embed_with(model, None, ["dimension probe"])
        except NotFoundError as exc:
            raise InvalidRequestError(exc.message, param="embedding_model") from exc
        native = int(probe.shape[1])
        if dimension is None or dimension == native:
            return model, native, False
        if dimension > native:
            raise InvalidRequestError(
                f"dimension {dimension} is larger than the {native} dimensions of the "
                f"model '{model}'.",
                param="dimension",
                code="dimension_mismatch",
            )
        try:
            shortened = await self._embed_with(model, dimension, ["dimension probe"])
        except InvalidRequestError as exc:
            raise InvalidRequestError(exc.message, param="dimension") from exc
        if shortened.shape[1] != dimension:
            raise InvalidRequestError(
                f"The model '{model}' cannot shorten its vectors to {dimension} dimensions.",
                param="dimension",
                code="dimension_mismatch",
            )
        return model, dimension, True

    def _schedule_maintenance(self, row: CollectionRow) -> None:
        """Write or rebuild the collection's index in the background, one run at a time."""
        if self._task_group is None or row.id in self._maintaining:
            return
        self._maintaining.add(row.id)

        async def maintain() -> None:
            try:
                await self.run_blocking(self._store.maintain, row)
            except Exception:
                logger.exception("maintenance of %s failed", row.id)
            finally:
                self._maintaining.discard(row.id)

        self._task_group.start_soon(maintain)


class _JobPayload(msgspec.Struct, kw_only=True):
    documents: list[DocumentInput]
    chunking: ChunkingOptions


def _unit(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _document_id() -> str:
    return f"doc_{uuid.uuid4().hex[:20]}"


def _conversation_id(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200:
        raise InvalidRequestError(
            "conversation_id must be 1 to 200 characters.", param="conversation_id"
        )
    return value


def _metadata_field(raw: str | None) -> dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"metadata is not valid JSON: {exc}", param="metadata") from exc
    if not isinstance(value, dict):
        raise InvalidRequestError("metadata must be a JSON object.", param="metadata")
    return value


def _public_document(document: DocumentRow) -> DocumentRecord:
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


def _public_job(job: JobRow) -> IngestJob:
    return IngestJob(
        id=job.id,
        collection_id=job.collection_id,
        status=job.status,  # type: ignore[arg-type]
        total=job.total,
        completed=job.completed,
        failed=job.failed,
        document_ids=job.document_ids,
        errors=[JobError(index=int(e["index"]), message=str(e["message"])) for e in job.errors],
        created_at=job.created_at,
    )


def _turn(
    conversation: str, document: DocumentRow, text: str, *, score: float | None = None
) -> MemoryTurn:
    metadata = dict(document.metadata)
    role = str(metadata.pop("role", "user"))
    turn = int(metadata.pop("turn", 0))
    return MemoryTurn(
        id=document.id,
        conversation_id=conversation,
        turn=turn,
        role=role,
        content=text,
        metadata=metadata,
        created_at=document.created_at,
        score=score,
    )
