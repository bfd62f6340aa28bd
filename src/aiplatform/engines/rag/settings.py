"""The RAG section, ``[engines.rag]``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.engines.settings import EngineSettings, PositiveInt

__all__ = ["RagSettings"]


class RagSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    """The RAG engine embeds through the embeddings engine (``engines.embeddings``: the one this
    server runs, or, on a pod without it, one built from that section: in-process, or remote
    when it has a ``url``)."""

    #: Blocking store calls (searches, writes) that may run at once.
    max_concurrency: PositiveInt = 4
    #: Where collections, documents and their indexes are kept: ``sqlite`` (embedded: a SQLite
    #: file and in-memory FAISS, lexical and metadata indexes under ``data_dir``, for one
    #: server) or ``postgres`` (a PostgreSQL database with pgvector at ``database_url``, which
    #: several RAG replicas share; each searches with the same in-memory indexes, built from
    #: the database and kept in step with every replica's changes).
    store: Literal["sqlite", "postgres"] = "sqlite"
    #: The PostgreSQL database of ``store = "postgres"``
    #: (``postgresql://user:password@host:5432/db``; needs ``aiplatform[postgres]`` and the
    #: ``vector`` extension). Best given from a Secret as ``AIPLATFORM_ENGINES__RAG__DATABASE_URL``.
    database_url: Annotated[str, msgspec.Meta(pattern=r"^postgres(ql)?://")] | None = None
    #: Connections to ``database_url`` this server holds at most.
    database_connections: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    #: Collections, documents and indexes are kept here; unset: ``<data dir>/rag``.
    data_dir: str | None = None
    #: Longer documents are refused with 400 ``document_too_large``.
    max_document_chars: PositiveInt = 2_000_000
    #: Chunks one call that adds documents (or uploads a file) may make; more is refused
    #: with 400 ``too_many_chunks`` before anything is embedded.
    max_chunks_per_request: PositiveInt = 10_000
    #: Chunks the documents of one ingest job may make together; more is refused with 400
    #: ``too_many_chunks`` when the job is submitted.
    max_chunks_per_job: PositiveInt = 200_000
    #: Pages read of an uploaded PDF; a longer one is refused with 400 ``document_too_large``.
    max_pdf_pages: PositiveInt = 2000
    #: Seconds of extraction one upload may take (checked between pages, and between
    #: operators of a page); past it, 400 ``extraction_too_slow``.
    extract_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: Chunks embedded per call to the embeddings engine.
    embed_batch_size: PositiveInt = 64
    #: Embedded store: a collection's index files are rewritten after this many changes, or
    #: after as many changes as they held when last written if that is more (and at shutdown);
    #: between rewrites the database is the durable record, and loading catches up from it.
    checkpoint_every: PositiveInt = 5000
    #: HNSW: neighbours per node.
    hnsw_m: Annotated[int, msgspec.Meta(ge=4, le=128)] = 32
    #: HNSW: the breadth of the search.
    hnsw_ef_search: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 128
    #: IVF and IVF-PQ: a collection is clustered once it holds this many vectors (exact search
    #: before).
    ivf_min_train: Annotated[int, msgspec.Meta(ge=256)] = 20_000
    #: IVF and IVF-PQ: clusters searched.
    ivf_nprobe: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 16
    #: sq8: a collection is quantized once it holds this many vectors (exact search before).
    sq_min_train: Annotated[int, msgspec.Meta(ge=256)] = 1000
    #: IVF-PQ: dimensions each one-byte code stands for (a vector takes dimension / this bytes).
    ivfpq_dims_per_code: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    #: A filtered search matching at most this many chunks scores them all exactly.
    exact_filter_limit: PositiveInt = 4096
    #: Collection indexes kept in memory together, in MiB; beyond it the least recently used
    #: are written out and dropped (and loaded again when used; on the PostgreSQL store, built
    #: again from the database). Unset: no limit.
    index_memory_mb: PositiveInt | None = 4096

    def __post_init__(self) -> None:
        if self.store == "postgres" and self.database_url is None and self.url is None:
            raise ValueError('[engines.rag] store = "postgres" needs database_url')
