"""The documents the PostgreSQL store's tests store (the server is
:func:`tests.unit.auth_store.postgres_server.postgres_server`: PostgreSQL 16 with pgvector)."""

from __future__ import annotations

import numpy as np

from aiplatform.engines.rag.chunking import split_text
from aiplatform.engines.rag.index import Vectors
from aiplatform.engines.rag.store import PreparedDocument

__all__ = ["DIMENSION", "document", "unit_vectors"]

DIMENSION = 16


def unit_vectors(count: int, seed: int, dimension: int = DIMENSION) -> Vectors:
    rows = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    unit: Vectors = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


def document(
    key: str, seed: int, words: str = "", metadata: dict[str, object] | None = None
) -> PreparedDocument:
    """A one-chunk document whose vector is ``unit_vectors(1, seed)``."""
    text = f"Document {key} {words}".strip()
    return PreparedDocument(
        id=key,
        text=text,
        metadata={"n": seed} if metadata is None else metadata,
        chunks=split_text(text, 1000, 0),
        vectors=unit_vectors(1, seed),
    )
