"""The rerank kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import EngineKind
from aiplatform.engines.rerank.operations import RERANK
from aiplatform.engines.rerank.settings import RerankSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["RERANKING"]


def _build_local(settings: RerankSettings, needs: Needs) -> Engine:
    from aiplatform.engines.rerank.engine import LocalRerankEngine

    return LocalRerankEngine(settings, embeddings=needs.get("embeddings"))


RERANKING: EngineKind[RerankSettings] = EngineKind(
    name="rerank",
    summary="Reranking: a cross-encoder from a folder, or cosine similarity of embeddings",
    operations=(RERANK,),
    settings_type=RerankSettings,
    build_local=_build_local,
    uses=("embeddings",),
    needs_when=lambda settings: ("embeddings",) if settings.backend == "embeddings" else (),
)
