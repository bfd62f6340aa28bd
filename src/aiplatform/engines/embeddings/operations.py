"""The embeddings kind's operation table. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.openai import EmbeddingRequest, EmbeddingResponse
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import EmbeddingsSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["EMBED", "EMBEDDINGS"]

EMBED: Operation[EmbeddingRequest, EmbeddingResponse, NoChunk] = Operation(
    name="embed",
    method="POST",
    path="/v1/embeddings",
    request=EmbeddingRequest,
    response=EmbeddingResponse,
    summary="Create embeddings (OpenAI-compatible)",
    tags=("embeddings",),
)


def _build_local(settings: EmbeddingsSettings, _: Needs) -> Engine:
    from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine

    return LocalEmbeddingsEngine(settings)


EMBEDDINGS: EngineKind[EmbeddingsSettings] = EngineKind(
    name="embeddings",
    summary="Text embeddings (sentence-transformers)",
    operations=(EMBED,),
    settings_type=EmbeddingsSettings,
    build_local=_build_local,
)
