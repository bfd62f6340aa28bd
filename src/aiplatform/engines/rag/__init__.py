"""The RAG kind: collections of documents searched by vector, lexically or both, ingest jobs,
conversation memory; and the ``rag`` extension of chat completions."""

from aiplatform.engines.rag.kind import RAG

__all__ = ["RAG"]
