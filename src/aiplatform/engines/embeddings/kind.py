"""The embeddings kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import EngineKind
from aiplatform.engines.embeddings.operations import EMBED
from aiplatform.engines.embeddings.settings import EmbeddingsSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["EMBEDDINGS"]


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
