"""The rerank section, ``[engines.rerank]``."""

from __future__ import annotations

from typing import Literal

from aiplatform.engines.settings import EngineSettings, PositiveInt

__all__ = ["RerankSettings"]


class RerankSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``embeddings`` scores by cosine similarity through the embeddings engine (the shipped
    #: default); ``cross_encoder`` loads a sentence-transformers CrossEncoder folder (``path``).
    backend: Literal["embeddings", "cross_encoder", "fake"] = "embeddings"
    #: The name ``/v1/models`` lists; unset: the embeddings model's, or the folder's name.
    model: str | None = None
    #: The CrossEncoder folder.
    path: str | None = None
    #: Torch device.
    device: str = "cpu"
    #: Pairs per model call.
    max_batch_size: PositiveInt = 32
