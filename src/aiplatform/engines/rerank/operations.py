"""The rerank kind's operation table. A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.rerank import RerankRequest, RerankResponse
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["RERANK"]

RERANK: Operation[RerankRequest, RerankResponse, NoChunk] = Operation(
    name="rerank",
    method="POST",
    path="/v1/rerank",
    request=RerankRequest,
    response=RerankResponse,
    example=Example(
        request=RerankRequest(
            query="Where is the Eiffel Tower?",
            documents=[
                "The Colosseum is in Rome.",
                "The Eiffel Tower stands in Paris.",
                "Big Ben is in London.",
            ],
            top_n=2,
        )
    ),
    summary="Order documents by relevance to a query (Cohere / Jina shape)",
    tags=("rerank",),
)
