"""The RAG kind's operation table: collections, documents, search, ingest jobs and
conversation memory. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.rag import (
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
    DocumentList,
    DocumentListRequest,
    DocumentRecord,
    DocumentRef,
    Documents,
    DocumentUpdateRequest,
    IngestJob,
    IngestJobRequest,
    JobRef,
    MemoryAddRequest,
    MemoryDeleted,
    MemoryList,
    MemoryListRequest,
    MemorySearchRequest,
    SearchRequest,
    SearchResult,
)
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import RagSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = [
    "ADD_DOCUMENTS",
    "ADD_MEMORY",
    "CREATE_COLLECTION",
    "CREATE_JOB",
    "DELETE_COLLECTION",
    "DELETE_DOCUMENT",
    "DELETE_MEMORY",
    "GET_COLLECTION",
    "GET_DOCUMENT",
    "GET_JOB",
    "LIST_COLLECTIONS",
    "LIST_DOCUMENTS",
    "LIST_MEMORY",
    "RAG",
    "SEARCH",
    "SEARCH_MEMORY",
    "UPDATE_DOCUMENT",
    "UPLOAD_DOCUMENT",
]

CREATE_COLLECTION: Operation[CollectionCreateRequest, Collection, NoChunk] = Operation(
    name="create_collection",
    method="POST",
    path="/v1/rag/collections",
    request=CollectionCreateRequest,
    response=Collection,
    summary="Create a collection",
    tags=("rag",),
)

LIST_COLLECTIONS: Operation[CollectionListRequest, CollectionList, NoChunk] = Operation(
    name="list_collections",
    method="GET",
    path="/v1/rag/collections",
    request=CollectionListRequest,
    response=CollectionList,
    summary="List collections",
    tags=("rag",),
)

GET_COLLECTION: Operation[CollectionRef, Collection, NoChunk] = Operation(
    name="get_collection",
    method="GET",
    path="/v1/rag/collections/{collection_id}",
    request=CollectionRef,
    response=Collection,
    summary="A collection (by id or name)",
    tags=("rag",),
)

DELETE_COLLECTION: Operation[CollectionRef, CollectionDeleted, NoChunk] = Operation(
    name="delete_collection",
    method="DELETE",
    path="/v1/rag/collections/{collection_id}",
    request=CollectionRef,
    response=CollectionDeleted,
    summary="Delete a collection and everything in it",
    tags=("rag",),
)

ADD_DOCUMENTS: Operation[DocumentAddRequest, Documents, NoChunk] = Operation(
    name="add_documents",
    method="POST",
    path="/v1/rag/collections/{collection_id}/documents",
    request=DocumentAddRequest,
    response=Documents,
    summary="Add documents (searchable when the call returns)",
    tags=("rag",),
)

UPLOAD_DOCUMENT: Operation[DocumentFileRequest, DocumentRecord, NoChunk] = Operation(
    name="upload_document",
    method="POST",
    path="/v1/rag/collections/{collection_id}/files",
    request=DocumentFileRequest,
    response=DocumentRecord,
    form=True,
    summary="Add a txt, Markdown, PDF or HTML file as a document",
    tags=("rag",),
)

LIST_DOCUMENTS: Operation[DocumentListRequest, DocumentList, NoChunk] = Operation(
    name="list_documents",
    method="GET",
    path="/v1/rag/collections/{collection_id}/documents",
    request=DocumentListRequest,
    response=DocumentList,
    summary="List a collection's documents",
    tags=("rag",),
)

GET_DOCUMENT: Operation[DocumentRef, DocumentRecord, NoChunk] = Operation(
    name="get_document",
    method="GET",
    path="/v1/rag/collections/{collection_id}/documents/{document_id}",
    request=DocumentRef,
    response=DocumentRecord,
    summary="A document with its text",
    tags=("rag",),
)

UPDATE_DOCUMENT: Operation[DocumentUpdateRequest, DocumentRecord, NoChunk] = Operation(
    name="update_document",
    method="PATCH",
    path="/v1/rag/collections/{collection_id}/documents/{document_id}",
    request=DocumentUpdateRequest,
    response=DocumentRecord,
    summary="Replace a document's metadata",
    tags=("rag",),
)

DELETE_DOCUMENT: Operation[DocumentRef, DocumentDeleted, NoChunk] = Operation(
    name="delete_document",
    method="DELETE",
    path="/v1/rag/collections/{collection_id}/documents/{document_id}",
    request=DocumentRef,
    response=DocumentDeleted,
    summary="Delete a document and its chunks",
    tags=("rag",),
)

SEARCH: Operation[SearchRequest, SearchResult, NoChunk] = Operation(
    name="search",
    method="POST",
    path="/v1/rag/collections/{collection_id}/search",
    request=SearchRequest,
    response=SearchResult,
    summary="Search a collection (vector, lexical or hybrid)",
    tags=("rag",),
)

CREATE_JOB: Operation[IngestJobRequest, IngestJob, NoChunk] = Operation(
    name="create_job",
    method="POST",
    path="/v1/rag/collections/{collection_id}/jobs",
    request=IngestJobRequest,
    response=IngestJob,
    summary="Ingest many documents in the background",
    tags=("rag",),
)

GET_JOB: Operation[JobRef, IngestJob, NoChunk] = Operation(
    name="get_job",
    method="GET",
    path="/v1/rag/jobs/{job_id}",
    request=JobRef,
    response=IngestJob,
    summary="An ingest job's progress",
    tags=("rag",),
)

ADD_MEMORY: Operation[MemoryAddRequest, MemoryList, NoChunk] = Operation(
    name="add_memory",
    method="POST",
    path="/v1/rag/conversations/{conversation_id}/messages",
    request=MemoryAddRequest,
    response=MemoryList,
    summary="Remember chat turns of a conversation",
    tags=("rag-memory",),
)

LIST_MEMORY: Operation[MemoryListRequest, MemoryList, NoChunk] = Operation(
    name="list_memory",
    method="GET",
    path="/v1/rag/conversations/{conversation_id}/messages",
    request=MemoryListRequest,
    response=MemoryList,
    summary="A conversation's latest turns",
    tags=("rag-memory",),
)

SEARCH_MEMORY: Operation[MemorySearchRequest, MemoryList, NoChunk] = Operation(
    name="search_memory",
    method="POST",
    path="/v1/rag/conversations/{conversation_id}/search",
    request=MemorySearchRequest,
    response=MemoryList,
    summary="A conversation's turns most relevant to a query",
    tags=("rag-memory",),
)

DELETE_MEMORY: Operation[ConversationRef, MemoryDeleted, NoChunk] = Operation(
    name="delete_memory",
    method="DELETE",
    path="/v1/rag/conversations/{conversation_id}",
    request=ConversationRef,
    response=MemoryDeleted,
    summary="Forget a conversation",
    tags=("rag-memory",),
)


def _build_local(settings: RagSettings, needs: Needs) -> Engine:
    from aiplatform.engines.rag.engine import LocalRagEngine

    return LocalRagEngine(settings, embeddings=needs["embeddings"])


RAG: EngineKind[RagSettings] = EngineKind(
    name="rag",
    summary="Retrieval: FAISS collections, hybrid search, ingest jobs, conversation memory",
    operations=(
        CREATE_COLLECTION,
        LIST_COLLECTIONS,
        GET_COLLECTION,
        DELETE_COLLECTION,
        ADD_DOCUMENTS,
        UPLOAD_DOCUMENT,
        LIST_DOCUMENTS,
        GET_DOCUMENT,
        UPDATE_DOCUMENT,
        DELETE_DOCUMENT,
        SEARCH,
        CREATE_JOB,
        GET_JOB,
        ADD_MEMORY,
        LIST_MEMORY,
        SEARCH_MEMORY,
        DELETE_MEMORY,
    ),
    settings_type=RagSettings,
    build_local=_build_local,
    needs=lambda _: ("embeddings",),
)
