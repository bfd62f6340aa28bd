"""The embeddings kind's operation table.
A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.openai import EmbeddingRequest, EmbeddingResponse
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["EMBED"]


def _one_embedding_per_input(request: EmbeddingRequest, response: EmbeddingResponse) -> str | None:
    inputs = request.input
    tokens = bool(inputs) and isinstance(inputs[0], int)  # one input as token ids
    count = 1 if isinstance(inputs, str) or tokens else len(inputs)
    indexes = sorted(item.index for item in response.data)
    if indexes != list(range(count)):
        return f"{len(response.data)} embeddings (indexes {indexes[:8]}) for {count} inputs"
    return None


EMBED: Operation[EmbeddingRequest, EmbeddingResponse, NoChunk] = Operation(
    name="embed",
    method="POST",
    path="/v1/embeddings",
    request=EmbeddingRequest,
    response=EmbeddingResponse,
    example=Example(
        request=EmbeddingRequest(input=["The cat sits on the mat.", "Revenue grew by a tenth."])
    ),
    check_upstream=_one_embedding_per_input,
    summary="Create embeddings (OpenAI-compatible)",
    tags=("embeddings",),
)
