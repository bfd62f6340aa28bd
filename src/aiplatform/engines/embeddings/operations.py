"""The embeddings kind's operation table.
A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.openai import EmbeddingRequest, EmbeddingResponse
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["EMBED"]

EMBED: Operation[EmbeddingRequest, EmbeddingResponse, NoChunk] = Operation(
    name="embed",
    method="POST",
    path="/v1/embeddings",
    request=EmbeddingRequest,
    response=EmbeddingResponse,
    example=Example(
        request=EmbeddingRequest(input=["The cat sits on the mat.", "Revenue grew by a tenth."])
    ),
    summary="Create embeddings (OpenAI-compatible)",
    tags=("embeddings",),
)
