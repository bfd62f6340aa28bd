"""The embeddings engine kind: ``/v1/embeddings`` served by sentence-transformers or the fake."""

from aiplatform.engines.embeddings.kind import EMBEDDINGS
from aiplatform.engines.embeddings.operations import EMBED

__all__ = ["EMBED", "EMBEDDINGS"]
