"""The rerank kind's operation table. A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.rerank import RerankRequest, RerankResponse
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["RERANK"]


def _results_within_documents(request: RerankRequest, response: RerankResponse) -> str | None:
    count = len(request.documents)
    most = min(count, request.top_n or count)
    indexes = [result.index for result in response.results]
    if len(indexes) > most or len(set(indexes)) < len(indexes):
        return f"{len(indexes)} results for {count} documents (top_n={request.top_n})"
    if any(not 0 <= index < count for index in indexes):
        return f"a result for a document that was not sent (of {count})"
    return None


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
    check_upstream=_results_within_documents,
    summary="Order documents by relevance to a query (Cohere / Jina shape)",
    tags=("rerank",),
)
