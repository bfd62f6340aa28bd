"""The in-process RAG engine: binds the kind's operations to the store, the embedder, ingest
jobs and conversation memory.

Documents are cut into chunks, embedded through the embeddings engine (in-process or remote,
whichever this server has) and stored; a call that adds documents returns once they are durable
and searchable. Ingest jobs run on a :class:`~aiplatform.engines.jobs.JobRunner` whose file
lies beside the store's, so they survive restarts. Conversation memory is a hidden collection
per conversation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from aiplatform.api.openai import ModelCard
from aiplatform.api.rag import (
    ChunkingOptions,
    Collection,
    CollectionCreateRequest,
    CollectionDeleted,
    CollectionList,
    CollectionListRequest,
    CollectionRef,
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
    SearchRequest,
    SearchResult,
)
from aiplatform.engines.base import Engine
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.rag import operations as ops
from aiplatform.engines.rag.core import DOCUMENTS, RagCore, public_document
from aiplatform.engines.rag.embedding import Embedder
from aiplatform.engines.rag.extract import (
    ExtractRequest,
    extract_bounded,
    needs_process,
    too_slow,
)
from aiplatform.engines.rag.ingest import JOB_RETRY_S, IngestJobs
from aiplatform.engines.rag.kind import RAG
from aiplatform.engines.rag.memory import ConversationMemory
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.rag.store import RagStore
from aiplatform.engines.rag.stores import make_store
from aiplatform.engines.settings import default_data_dir
from aiplatform.engines.workers import WorkerPool
from aiplatform.errors import EngineUnavailableError, InvalidRequestError
from aiplatform.forms import FilePart
from aiplatform.tenant import current_tenant

__all__ = ["JOB_RETRY_S", "LocalRagEngine"]

#: Worker processes that extract PDF and HTML uploads, and uploads that may wait for one.
_EXTRACT_WORKERS = 2
_EXTRACT_QUEUE = 8
#: Seconds past the extraction budget before a worker that overran it is killed.
_EXTRACT_GRACE_S = 5.0


class LocalRagEngine(LocalEngine):
    def __init__(
        self, settings: RagSettings, *, embeddings: Engine, storage_key: str | None = None
    ) -> None:
        """``storage_key``: the key the engine's databases are encrypted with (None: plain)."""
        super().__init__(RAG, settings=settings)
        self._settings = settings
        self._embeddings = embeddings
        folder = Path(settings.data_dir or Path(default_data_dir()) / "rag")
        self._store = make_store(settings, folder, storage_key=storage_key)
        embedder = Embedder(embeddings, batch_size=settings.embed_batch_size)
        self._core = RagCore(self._store, embedder, settings, self.run_blocking)
        self._jobs = IngestJobs(self._core, folder, storage_key=storage_key)
        self._memory = ConversationMemory(self._core)
        self._extraction: WorkerPool | None = None
        self._extraction_lock: anyio.Lock | None = None
        jobs, memory = self._jobs, self._memory
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
        self.bind(ops.CREATE_JOB, jobs.submit)
        self.bind(ops.GET_JOB, jobs.get)
        self.bind(ops.ADD_MEMORY, memory.add)
        self.bind(ops.LIST_MEMORY, memory.recent)
        self.bind(ops.SEARCH_MEMORY, memory.search)
        self.bind(ops.DELETE_MEMORY, memory.delete)

    @property
    def store(self) -> RagStore:
        return self._store

    @property
    def job_retry_s(self) -> float:
        """Seconds before a job the embeddings engine could not serve is tried again."""
        return self._jobs.runner.retry_s

    @job_retry_s.setter
    def job_retry_s(self, value: float) -> None:
        self._jobs.runner.retry_s = value

    def load(self) -> None:
        self._store.open()
        self._jobs.runner.open()

    def unload(self) -> None:
        self._jobs.runner.close()
        self._store.close()

    async def start_background(self, task_group: anyio.abc.TaskGroup) -> None:
        self._core.start(task_group)
        self._memory.start()
        task_group.start_soon(self._run_jobs)

    async def _run_jobs(self) -> None:
        try:
            await self.wait_loaded()
        except EngineUnavailableError:
            return  # the store did not open; status() says why
        await self._jobs.runner.serve()

    async def list_models(self) -> list[ModelCard]:
        return []

    # -- collections ---------------------------------------------------------------------------

    async def create_collection(self, request: CollectionCreateRequest) -> Collection:
        owner = current_tenant()
        name = request.name.strip()
        if not name:
            raise InvalidRequestError("name must not be blank.", param="name")
        row = await self._core.new_collection(
            owner,
            DOCUMENTS,
            name,
            model=request.embedding_model,
            dimension=request.dimension,
            index_type=request.index,
            metadata=request.metadata,
        )
        return await self._core.public(row)

    async def list_collections(self, _: CollectionListRequest) -> CollectionList:
        owner = current_tenant()
        rows = await self.run_blocking(self._store.list_collections, owner, DOCUMENTS)
        return CollectionList(data=[await self._core.public(row) for row in rows])

    async def get_collection(self, request: CollectionRef) -> Collection:
        return await self._core.public(await self._core.collection(request.collection_id))

    async def delete_collection(self, request: CollectionRef) -> CollectionDeleted:
        row = await self._core.collection(request.collection_id)
        await self._jobs.forget(row)  # first: a running ingest stops before its collection goes
        await self._core.delete_collection(row)
        return CollectionDeleted(id=row.id)

    # -- documents -----------------------------------------------------------------------------

    async def add_documents(self, request: DocumentAddRequest) -> Documents:
        core = self._core
        row = await core.collection(request.collection_id)
        inputs = core.checked(request.documents)
        await core.refuse_existing(row, inputs)
        prepared = await core.prepare(row, inputs, request.chunking)
        added = await self.run_blocking(self._store.add_documents, row, prepared)
        core.schedule_maintenance(row)
        return Documents(data=[public_document(document) for document in added])

    async def upload_document(self, request: DocumentFileRequest) -> DocumentRecord:
        core = self._core
        row = await core.collection(request.collection_id)
        text = await self._extract(request.file)
        metadata = _metadata_field(request.metadata)
        document = DocumentInput(text=text, id=request.id, metadata=metadata)
        chunking = ChunkingOptions(
            chunk_size=request.chunk_size, chunk_overlap=request.chunk_overlap
        )
        (checked,) = core.checked([document], param="file")
        await core.refuse_existing(row, [checked])
        prepared = await core.prepare(
            row, [checked], chunking, filename=request.file.filename, param="file"
        )
        (added,) = await self.run_blocking(self._store.add_documents, row, prepared)
        core.schedule_maintenance(row)
        return public_document(added)

    async def _extract(self, file: FilePart) -> str:
        """The upload's text, within the extraction bounds. PDF and HTML are parsed in a
        worker process, killed at the deadline: pypdf parses a page's content stream in one
        step no check interrupts."""
        settings = self._settings
        request = ExtractRequest(
            data=file.data,
            filename=file.filename,
            content_type=file.content_type,
            max_chars=settings.max_document_chars,
            max_pages=settings.max_pdf_pages,
            timeout_s=settings.extract_timeout_s,
        )
        if not needs_process(file.data, file.filename, file.content_type):
            return await self.run_blocking(extract_bounded, request)
        pool = await self._extraction_pool()
        # the worker stops itself at the budget; this is the hard stop when a step overruns
        # it (and the wait for a free worker, itself bounded by the pool's queue timeout)
        try:
            with anyio.fail_after(2 * settings.extract_timeout_s + _EXTRACT_GRACE_S):
                return await pool.call(extract_bounded, request)
        except TimeoutError:
            raise too_slow(settings.extract_timeout_s) from None

    async def _extraction_pool(self) -> WorkerPool:
        """The worker processes that extract files, started at the first upload that needs
        them."""
        if self._extraction is None:
            if self._extraction_lock is None:
                self._extraction_lock = anyio.Lock()
            async with self._extraction_lock:
                if self._extraction is None:
                    pool = WorkerPool(
                        "Engine 'rag' (file extraction)",
                        workers=_EXTRACT_WORKERS,
                        max_queue=_EXTRACT_QUEUE,
                        queue_timeout_s=self._settings.extract_timeout_s,
                    )
                    await pool.start()
                    self._extraction = pool
        return self._extraction

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            pool, self._extraction = self._extraction, None
            if pool is not None:
                await pool.close()

    async def list_documents(self, request: DocumentListRequest) -> DocumentList:
        row = await self._core.collection(request.collection_id)
        documents, more = await self.run_blocking(
            lambda: self._store.list_documents(row, limit=request.limit, after=request.after)
        )
        return DocumentList(data=[public_document(d) for d in documents], has_more=more)

    async def get_document(self, request: DocumentRef) -> DocumentRecord:
        row = await self._core.collection(request.collection_id)
        document = await self.run_blocking(
            lambda: self._store.document(row, request.document_id, text=True)
        )
        return public_document(document)

    async def update_document(self, request: DocumentUpdateRequest) -> DocumentRecord:
        row = await self._core.collection(request.collection_id)
        document = await self.run_blocking(
            self._store.update_metadata, row, request.document_id, request.metadata
        )
        return public_document(document)

    async def delete_document(self, request: DocumentRef) -> DocumentDeleted:
        row = await self._core.collection(request.collection_id)
        await self.run_blocking(self._store.delete_document, row, request.document_id)
        self._core.schedule_maintenance(row)
        return DocumentDeleted(id=request.document_id)

    # -- search --------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        row = await self._core.collection(request.collection_id)
        hits = await self._core.search(row, request)
        return SearchResult(data=hits, mode=request.mode)


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
