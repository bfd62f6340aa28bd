"""The rerank kind: candidate documents ordered by relevance to a query (``/v1/rerank``)."""

from aiplatform.engines.rerank.kind import RERANKING
from aiplatform.engines.rerank.operations import RERANK

__all__ = ["RERANK", "RERANKING"]
