"""Wire shapes of the RAG engine: collections, documents, search, ingest jobs and conversation
memory; and of the platform's ``rag`` extension to chat completions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from aiplatform.api.ids import Id
from aiplatform.forms import FilePart, JsonObjectText

__all__ = [
    "ChunkingOptions",
    "Citation",
    "Collection",
    "CollectionCreateRequest",
    "CollectionDeleted",
    "CollectionList",
    "CollectionListRequest",
    "CollectionRef",
    "ConversationRef",
    "DocumentAddRequest",
    "DocumentDeleted",
    "DocumentFileRequest",
    "DocumentInput",
    "DocumentList",
    "DocumentListRequest",
    "DocumentRecord",
    "DocumentRef",
    "DocumentUpdateRequest",
    "Documents",
    "IndexType",
    "IngestJob",
    "IngestJobRequest",
    "JobError",
    "JobRef",
    "MemoryAddRequest",
    "MemoryDeleted",
    "MemoryList",
    "MemoryListRequest",
    "MemoryMessage",
    "MemorySearchRequest",
    "MemoryTurn",
    "RagChatOptions",
    "SearchHit",
    "SearchMode",
    "SearchRequest",
    "SearchResult",
]

#: How a collection's vectors are indexed (memory per vector at 384 dimensions, and recall@10
#: against exact search, from ``bench/rag_recall.py``):
#:
#: - ``flat``: exact search; 4 bytes a dimension (about 1.6 KB a vector).
#: - ``hnsw``: a graph over the exact vectors: fast, approximate (recall about 1.0), and the
#:   most memory (the graph's links come on top).
#: - ``ivf``: exact until the collection holds ``ivf_min_train`` vectors, then clustered, and
#:   only the clusters nearest a query searched.
#: - ``sq8``: exact until ``sq_min_train`` vectors, then 1 byte a dimension (about a quarter of
#:   ``flat``) over ranges trained on the collection; recall about 0.98.
#: - ``ivfpq``: exact until ``ivf_min_train`` vectors, then clustered like ``ivf`` and
#:   compressed to a byte per 4 dimensions (about a twelfth of ``flat``); the least memory and
#:   the roughest ranking (recall 0.7-0.85).
IndexType = Literal["flat", "hnsw", "ivf", "sq8", "ivfpq"]
SearchMode = Literal["vector", "hybrid", "lexical"]
TopK = Annotated[int, msgspec.Meta(ge=1, le=200)]
#: A collection is named in paths by its id or its name, so a name is an id too.
Name = Id
#: A metadata filter: ``{"field": value}``, ``{"field": {"$gte": 3}}``, ``{"$or": [...]}``.
Filter = dict[str, Any]


class ChunkingOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How a document is cut into chunks: pieces of at most ``chunk_size`` characters, cut at
    paragraph, then sentence, then word boundaries, each repeating up to ``chunk_overlap``
    characters of the one before."""

    chunk_size: Annotated[int, msgspec.Meta(ge=100, le=32_000)] = 1000
    chunk_overlap: Annotated[int, msgspec.Meta(ge=0, le=16_000)] = 150


class CollectionCreateRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/rag/collections``."""

    name: Name
    #: The embeddings model that embeds this collection; unset: the embeddings engine's default.
    embedding_model: str | None = None
    #: Vector size; unset: the model's. Smaller values ask the model for shortened vectors.
    dimension: Annotated[int, msgspec.Meta(ge=1, le=16_384)] | None = None
    #: ``flat`` searches exactly; ``hnsw`` is a graph index (fast, approximate); ``ivf``
    #: clusters the vectors once the collection is large enough to train on; ``sq8`` and
    #: ``ivfpq`` compress them (see :data:`IndexType`).
    index: IndexType = "flat"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class Collection(msgspec.Struct, kw_only=True):
    id: str
    name: str
    embedding_model: str
    dimension: int
    index: IndexType
    metadata: dict[str, Any]
    created_at: int
    document_count: int
    chunk_count: int
    #: Vectors the search index answers for (equal to ``chunk_count``); null while the index
    #: is not in memory: it is loaded, and caught up with the stored chunks, on first use.
    indexed_count: int | None
    object: Literal["rag.collection"] = "rag.collection"


class CollectionList(msgspec.Struct, kw_only=True):
    data: list[Collection]
    object: Literal["list"] = "list"


class CollectionListRequest(msgspec.Struct, kw_only=True):
    """``GET /v1/rag/collections``."""


class CollectionRef(msgspec.Struct, kw_only=True):
    """A collection named in the path, by id or by name."""

    collection_id: Id


class CollectionDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["rag.collection.deleted"] = "rag.collection.deleted"


class DocumentInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str
    #: A stable id of your own (unique in the collection); unset: one is made.
    id: Id | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class DocumentAddRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/rag/collections/{collection_id}/documents``: added and searchable when the
    call returns. Larger batches go through ``/jobs``."""

    documents: Annotated[list[DocumentInput], msgspec.Meta(min_length=1, max_length=256)]
    chunking: ChunkingOptions = msgspec.field(default_factory=ChunkingOptions)
    collection_id: Id = ""


class DocumentFileRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/rag/collections/{collection_id}/files`` (multipart): a txt, Markdown, PDF or
    HTML file, extracted to text and added as one document."""

    file: FilePart
    #: A JSON object of metadata, as text.
    metadata: JsonObjectText | None = None
    id: Id | None = None
    chunk_size: Annotated[int, msgspec.Meta(ge=100, le=32_000)] = 1000
    chunk_overlap: Annotated[int, msgspec.Meta(ge=0, le=16_000)] = 150
    collection_id: Id = ""


class DocumentRecord(msgspec.Struct, kw_only=True):
    id: str
    collection_id: str
    metadata: dict[str, Any]
    created_at: int
    chunk_count: int
    characters: int
    #: The full text; only ``GET`` of one document carries it.
    text: str | None = None
    filename: str | None = None
    object: Literal["rag.document"] = "rag.document"


class Documents(msgspec.Struct, kw_only=True):
    data: list[DocumentRecord]
    object: Literal["list"] = "list"


class DocumentList(msgspec.Struct, kw_only=True):
    data: list[DocumentRecord]
    has_more: bool
    object: Literal["list"] = "list"


class DocumentListRequest(msgspec.Struct, kw_only=True):
    """``GET /v1/rag/collections/{collection_id}/documents``: ordered by id, ``after`` pages."""

    collection_id: Id
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    after: Id | None = None


class DocumentRef(msgspec.Struct, kw_only=True):
    collection_id: Id
    document_id: Id


class DocumentUpdateRequest(msgspec.Struct, kw_only=True):
    """``PATCH .../documents/{document_id}``: the metadata replaced as a whole."""

    metadata: dict[str, Any]
    collection_id: Id = ""
    document_id: Id = ""


class DocumentDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["rag.document.deleted"] = "rag.document.deleted"


class SearchRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/rag/collections/{collection_id}/search``: ``query`` text, or a ``vector``."""

    query: str | None = None
    vector: list[float] | None = None
    top_k: TopK = 5
    #: Metadata filter applied inside the search: every hit matches it, and up to ``top_k``
    #: matching chunks are found however rare they are.
    filter: Filter | None = None
    #: ``vector`` ranks by cosine similarity; ``lexical`` by BM25; ``hybrid`` fuses both
    #: rankings (reciprocal rank fusion).
    mode: SearchMode = "hybrid"
    #: Hits whose cosine similarity to the query is lower are left out (lexical mode: BM25).
    score_threshold: float | None = None
    collection_id: Id = ""


class SearchHit(msgspec.Struct, kw_only=True):
    chunk_id: str
    document_id: str
    text: str
    #: The ranking score of the mode: cosine similarity, BM25, or the fused RRF score.
    score: float
    metadata: dict[str, Any]
    #: Characters of the document this chunk spans.
    start: int
    end: int


class SearchResult(msgspec.Struct, kw_only=True):
    data: list[SearchHit]
    mode: SearchMode
    object: Literal["list"] = "list"


class IngestJobRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/rag/collections/{collection_id}/jobs``: documents ingested in the
    background. The job and its documents are stored before the call returns, so a restart
    resumes it."""

    documents: Annotated[list[DocumentInput], msgspec.Meta(min_length=1, max_length=100_000)]
    chunking: ChunkingOptions = msgspec.field(default_factory=ChunkingOptions)
    collection_id: Id = ""


class JobError(msgspec.Struct, kw_only=True):
    index: int
    message: str


class IngestJob(msgspec.Struct, kw_only=True):
    id: str
    collection_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    total: int
    completed: int
    failed: int
    document_ids: list[str]
    errors: list[JobError]
    created_at: int
    object: Literal["rag.job"] = "rag.job"


class JobRef(msgspec.Struct, kw_only=True):
    job_id: Id


class MemoryMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class MemoryAddRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/rag/conversations/{conversation_id}/messages``: turns appended in order."""

    messages: Annotated[list[MemoryMessage], msgspec.Meta(min_length=1, max_length=256)]
    conversation_id: Id = ""


class MemoryTurn(msgspec.Struct, kw_only=True):
    id: str
    conversation_id: str
    turn: int
    role: str
    content: str
    metadata: dict[str, Any]
    created_at: int
    #: Similarity to the query (search results only).
    score: float | None = None
    object: Literal["rag.memory"] = "rag.memory"


class MemoryList(msgspec.Struct, kw_only=True):
    data: list[MemoryTurn]
    object: Literal["list"] = "list"


class MemoryListRequest(msgspec.Struct, kw_only=True):
    """``GET /v1/rag/conversations/{conversation_id}/messages``: the latest ``limit`` turns,
    oldest first."""

    conversation_id: Id
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100


class MemorySearchRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``POST /v1/rag/conversations/{conversation_id}/search``: the turns most relevant to
    ``query``."""

    query: Annotated[str, msgspec.Meta(min_length=1)]
    top_k: TopK = 5
    role: Literal["system", "user", "assistant", "tool"] | None = None
    conversation_id: Id = ""


class ConversationRef(msgspec.Struct, kw_only=True):
    conversation_id: Id


class MemoryDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["rag.conversation.deleted"] = "rag.conversation.deleted"


class RagChatOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The ``rag`` extension of chat completions: retrieve from ``collection`` with the last
    user message, answer from those sources, and return them as ``citations``."""

    collection: Id
    top_k: Annotated[int, msgspec.Meta(ge=1, le=50)] = 4
    filter: Filter | None = None
    mode: SearchMode = "hybrid"
    score_threshold: float | None = None
    #: Re-order a wider candidate list with the rerank engine before keeping ``top_k``.
    rerank: bool = False
    #: Also recall relevant earlier turns of this conversation, and remember this exchange.
    conversation_id: Id | None = None


class Citation(msgspec.Struct, kw_only=True):
    """One source the answer was given: ``[index]`` in the prompt and, usually, the answer."""

    index: int
    collection_id: str
    document_id: str
    chunk_id: str
    score: float
    text: str
    metadata: dict[str, Any]
    #: Whether the answer refers to it as ``[index]``.
    cited: bool = False
