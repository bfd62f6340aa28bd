"""The rerank kind's operation table. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.rerank import RerankRequest, RerankResponse
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import RerankSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["RERANK", "RERANKING"]

RERANK: Operation[RerankRequest, RerankResponse, NoChunk] = Operation(
    name="rerank",
    method="POST",
    path="/v1/rerank",
    request=RerankRequest,
    response=RerankResponse,
    summary="Order documents by relevance to a query (Cohere / Jina shape)",
    tags=("rerank",),
)


def _build_local(settings: RerankSettings, needs: Needs) -> Engine:
    from aiplatform.engines.rerank.engine import LocalRerankEngine

    return LocalRerankEngine(settings, embeddings=needs.get("embeddings"))


RERANKING: EngineKind[RerankSettings] = EngineKind(
    name="rerank",
    summary="Reranking: a cross-encoder from a folder, or cosine similarity of embeddings",
    operations=(RERANK,),
    settings_type=RerankSettings,
    build_local=_build_local,
    needs=lambda settings: ("embeddings",) if settings.backend == "embeddings" else (),
)
