"""Wire shapes of ``POST /v1/rerank``, as Cohere and Jina define it (and TEI-compatible servers
accept): a query, candidate documents, and the documents ordered by relevance."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["RerankDocument", "RerankRequest", "RerankResponse", "RerankResult", "RerankUsage"]


class RerankDocument(msgspec.Struct, kw_only=True):
    text: str


class RerankRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    query: Annotated[str, msgspec.Meta(min_length=1)]
    documents: Annotated[list[str | RerankDocument], msgspec.Meta(min_length=1, max_length=1000)]
    model: str | None = None
    #: Keep only the best ``top_n``; unset: every document.
    top_n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    return_documents: bool = True


class RerankResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(msgspec.Struct, kw_only=True):
    total_tokens: int


class RerankResponse(msgspec.Struct, kw_only=True):
    model: str
    results: list[RerankResult]
    usage: RerankUsage
    id: str = ""
    object: Literal["rerank"] = "rerank"
