"""The RAG kind's operation table: collections, documents, search, ingest jobs and
conversation memory. A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from typing import Any

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
    DocumentInput,
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
    MemoryMessage,
    MemorySearchRequest,
    SearchRequest,
    SearchResult,
)
from aiplatform.engines.base import Example, NoChunk, Operation
from aiplatform.forms import FilePart

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
    "SEARCH",
    "SEARCH_MEMORY",
    "UPDATE_DOCUMENT",
    "UPLOAD_DOCUMENT",
]

# -- what the examples create first ------------------------------------------------------------

_DOCUMENTS = (
    DocumentInput(
        id="releases", text="Releases ship every Tuesday at noon.", metadata={"topic": "process"}
    ),
    DocumentInput(
        id="leave", text="Staff take leave by asking their lead a week ahead.", metadata={}
    ),
)
_TURNS = (
    MemoryMessage(role="user", content="Hello, my name is Ada."),
    MemoryMessage(role="assistant", content="Nice to meet you, Ada."),
)


def _collection(name: str) -> tuple[tuple[Operation[Any, Any, Any], Any], ...]:
    return ((CREATE_COLLECTION, CollectionCreateRequest(name=name)),)


def _documents(name: str) -> tuple[tuple[Operation[Any, Any, Any], Any], ...]:
    add = DocumentAddRequest(collection_id=name, documents=list(_DOCUMENTS))
    return (*_collection(name), (ADD_DOCUMENTS, add))


def _conversation(name: str) -> tuple[tuple[Operation[Any, Any, Any], Any], ...]:
    return ((ADD_MEMORY, MemoryAddRequest(conversation_id=name, messages=list(_TURNS))),)


CREATE_COLLECTION: Operation[CollectionCreateRequest, Collection, NoChunk] = Operation(
    name="create_collection",
    method="POST",
    path="/v1/rag/collections",
    request=CollectionCreateRequest,
    response=Collection,
    example=Example(request=CollectionCreateRequest(name="handbook", metadata={"team": "docs"})),
    summary="Create a collection",
    tags=("rag",),
)

LIST_COLLECTIONS: Operation[CollectionListRequest, CollectionList, NoChunk] = Operation(
    name="list_collections",
    method="GET",
    path="/v1/rag/collections",
    request=CollectionListRequest,
    response=CollectionList,
    example=Example(request=CollectionListRequest()),
    summary="List collections",
    tags=("rag",),
)

GET_COLLECTION: Operation[CollectionRef, Collection, NoChunk] = Operation(
    name="get_collection",
    method="GET",
    path="/v1/rag/collections/{collection_id}",
    request=CollectionRef,
    response=Collection,
    example=Example(
        setup=_collection("example-get"), request=CollectionRef(collection_id="example-get")
    ),
    summary="A collection (by id or name)",
    tags=("rag",),
)

DELETE_COLLECTION: Operation[CollectionRef, CollectionDeleted, NoChunk] = Operation(
    name="delete_collection",
    method="DELETE",
    path="/v1/rag/collections/{collection_id}",
    request=CollectionRef,
    response=CollectionDeleted,
    example=Example(
        setup=_collection("example-delete"),
        request=CollectionRef(collection_id="example-delete"),
    ),
    summary="Delete a collection and everything in it",
    tags=("rag",),
)

ADD_DOCUMENTS: Operation[DocumentAddRequest, Documents, NoChunk] = Operation(
    name="add_documents",
    method="POST",
    path="/v1/rag/collections/{collection_id}/documents",
    request=DocumentAddRequest,
    response=Documents,
    example=Example(
        setup=_collection("example-add"),
        request=DocumentAddRequest(collection_id="example-add", documents=list(_DOCUMENTS)),
    ),
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
    example=Example(
        setup=_collection("example-upload"),
        request=DocumentFileRequest(
            collection_id="example-upload",
            file=FilePart(
                filename="office.md",
                content_type="text/markdown",
                data=b"# Office\n\nThe office opens at nine and closes at six.\n",
            ),
            id="office",
            metadata='{"topic": "office"}',
        ),
    ),
    summary="Add a txt, Markdown, PDF or HTML file as a document",
    tags=("rag",),
)

LIST_DOCUMENTS: Operation[DocumentListRequest, DocumentList, NoChunk] = Operation(
    name="list_documents",
    method="GET",
    path="/v1/rag/collections/{collection_id}/documents",
    request=DocumentListRequest,
    response=DocumentList,
    example=Example(
        setup=_documents("example-list"),
        request=DocumentListRequest(collection_id="example-list"),
    ),
    summary="List a collection's documents",
    tags=("rag",),
)

GET_DOCUMENT: Operation[DocumentRef, DocumentRecord, NoChunk] = Operation(
    name="get_document",
    method="GET",
    path="/v1/rag/collections/{collection_id}/documents/{document_id}",
    request=DocumentRef,
    response=DocumentRecord,
    example=Example(
        setup=_documents("example-get-document"),
        request=DocumentRef(collection_id="example-get-document", document_id="releases"),
    ),
    summary="A document with its text",
    tags=("rag",),
)

UPDATE_DOCUMENT: Operation[DocumentUpdateRequest, DocumentRecord, NoChunk] = Operation(
    name="update_document",
    method="PATCH",
    path="/v1/rag/collections/{collection_id}/documents/{document_id}",
    request=DocumentUpdateRequest,
    response=DocumentRecord,
    example=Example(
        setup=_documents("example-update"),
        request=DocumentUpdateRequest(
            collection_id="example-update", document_id="releases", metadata={"topic": "ops"}
        ),
    ),
    summary="Replace a document's metadata",
    tags=("rag",),
)

DELETE_DOCUMENT: Operation[DocumentRef, DocumentDeleted, NoChunk] = Operation(
    name="delete_document",
    method="DELETE",
    path="/v1/rag/collections/{collection_id}/documents/{document_id}",
    request=DocumentRef,
    response=DocumentDeleted,
    example=Example(
        setup=_documents("example-delete-document"),
        request=DocumentRef(collection_id="example-delete-document", document_id="leave"),
    ),
    summary="Delete a document and its chunks",
    tags=("rag",),
)

SEARCH: Operation[SearchRequest, SearchResult, NoChunk] = Operation(
    name="search",
    method="POST",
    path="/v1/rag/collections/{collection_id}/search",
    request=SearchRequest,
    response=SearchResult,
    example=Example(
        setup=_documents("example-search"),
        request=SearchRequest(
            collection_id="example-search", query="When do releases ship?", top_k=2
        ),
    ),
    summary="Search a collection (vector, lexical or hybrid)",
    tags=("rag",),
)

CREATE_JOB: Operation[IngestJobRequest, IngestJob, NoChunk] = Operation(
    name="create_job",
    method="POST",
    path="/v1/rag/collections/{collection_id}/jobs",
    request=IngestJobRequest,
    response=IngestJob,
    example=Example(
        setup=_collection("example-job"),
        request=IngestJobRequest(collection_id="example-job", documents=list(_DOCUMENTS)),
    ),
    summary="Ingest many documents in the background",
    tags=("rag",),
)

GET_JOB: Operation[JobRef, IngestJob, NoChunk] = Operation(
    name="get_job",
    method="GET",
    path="/v1/rag/jobs/{job_id}",
    request=JobRef,
    response=IngestJob,
    example=Example(
        setup=(
            *_collection("example-get-job"),
            (
                CREATE_JOB,
                IngestJobRequest(collection_id="example-get-job", documents=list(_DOCUMENTS)),
            ),
        ),
        request=lambda context: JobRef(job_id=context.answers[-1].id),
        until=lambda job: job.status in ("succeeded", "failed"),
    ),
    summary="An ingest job's progress",
    tags=("rag",),
)

ADD_MEMORY: Operation[MemoryAddRequest, MemoryList, NoChunk] = Operation(
    name="add_memory",
    method="POST",
    path="/v1/rag/conversations/{conversation_id}/messages",
    request=MemoryAddRequest,
    response=MemoryList,
    example=Example(
        request=MemoryAddRequest(conversation_id="example-chat", messages=list(_TURNS))
    ),
    summary="Remember chat turns of a conversation",
    tags=("rag-memory",),
)

LIST_MEMORY: Operation[MemoryListRequest, MemoryList, NoChunk] = Operation(
    name="list_memory",
    method="GET",
    path="/v1/rag/conversations/{conversation_id}/messages",
    request=MemoryListRequest,
    response=MemoryList,
    example=Example(
        setup=_conversation("example-list-chat"),
        request=MemoryListRequest(conversation_id="example-list-chat"),
    ),
    summary="A conversation's latest turns",
    tags=("rag-memory",),
)

SEARCH_MEMORY: Operation[MemorySearchRequest, MemoryList, NoChunk] = Operation(
    name="search_memory",
    method="POST",
    path="/v1/rag/conversations/{conversation_id}/search",
    request=MemorySearchRequest,
    response=MemoryList,
    example=Example(
        setup=_conversation("example-search-chat"),
        request=MemorySearchRequest(
            conversation_id="example-search-chat", query="What is my name?", top_k=1
        ),
    ),
    summary="A conversation's turns most relevant to a query",
    tags=("rag-memory",),
)

DELETE_MEMORY: Operation[ConversationRef, MemoryDeleted, NoChunk] = Operation(
    name="delete_memory",
    method="DELETE",
    path="/v1/rag/conversations/{conversation_id}",
    request=ConversationRef,
    response=MemoryDeleted,
    example=Example(
        setup=_conversation("example-forget-chat"),
        request=ConversationRef(conversation_id="example-forget-chat"),
    ),
    summary="Forget a conversation",
    tags=("rag-memory",),
)
