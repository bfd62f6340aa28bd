"""The embeddings engine kind: ``/v1/embeddings`` served by sentence-transformers or the fake."""

from aiplatform.engines.embeddings.operations import EMBED, EMBEDDINGS

__all__ = ["EMBED", "EMBEDDINGS"]
