"""The rag kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import NO_SECRETS, EngineKind, Secrets
from aiplatform.engines.rag.operations import (
    ADD_DOCUMENTS,
    ADD_MEMORY,
    CREATE_COLLECTION,
    CREATE_JOB,
    DELETE_COLLECTION,
    DELETE_DOCUMENT,
    DELETE_MEMORY,
    GET_COLLECTION,
    GET_DOCUMENT,
    GET_JOB,
    LIST_COLLECTIONS,
    LIST_DOCUMENTS,
    LIST_MEMORY,
    SEARCH,
    SEARCH_MEMORY,
    UPDATE_DOCUMENT,
    UPLOAD_DOCUMENT,
)
from aiplatform.engines.rag.settings import RagSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["RAG"]


def _build_local(settings: RagSettings, needs: Needs, secrets: Secrets = NO_SECRETS) -> Engine:
    from aiplatform.engines.rag.engine import LocalRagEngine

    return LocalRagEngine(settings, embeddings=needs["embeddings"], storage_key=secrets.storage_key)


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
    build_with_secrets=_build_local,
    uses=("embeddings",),
)
