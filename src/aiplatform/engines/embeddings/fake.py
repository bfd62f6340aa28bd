"""A deterministic fake embeddings backend: feature hashing over words, no weights.

Texts that share words get similar vectors, so search-shaped tests behave sensibly; the same text
always gives the same vector on every machine. Shipped so tests and users can run the server
without a model.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Sequence

import numpy as np

from aiplatform.engines.embeddings.backend import EncodedBatch

__all__ = ["FakeEmbeddingBackend"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


class FakeEmbeddingBackend:
    def __init__(
        self,
        *,
        dimension: int = 384,
        normalize: bool = True,
        latency_s: float = 0.0,
        max_tokens: int = 512,
    ) -> None:
        self._dimension = dimension
        self._normalize = normalize
        self._latency_s = latency_s
        self._max_tokens = max_tokens

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def load(self) -> None:
        """Nothing to load."""

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        if self._latency_s:
            time.sleep(self._latency_s)
        vectors = np.zeros((len(texts), self._dimension), dtype=np.float32)
        counts: list[int] = []
        rows: list[int] = []
        hashes: list[int] = []
        for row, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())
            counts.append(len(tokens))
            kept = tokens[: self._max_tokens]
            rows.extend([row] * len(kept))
            hashes.extend(map(_token_hash, kept))
        if hashes:
            values = np.array(hashes, dtype=np.uint64)
            where = np.array(rows, dtype=np.intp)
            signs = np.where(values & np.uint64(1), 1.0, -1.0).astype(np.float32)
            size = np.uint64(self._dimension)
            # sums of ±1 and ±0.5 are exact in float32, so the order of adding does not matter
            np.add.at(vectors, (where, ((values >> np.uint64(1)) % size).astype(np.intp)), signs)
            np.add.at(
                vectors, (where, ((values >> np.uint64(33)) % size).astype(np.intp)), 0.5 * signs
            )
        if self._normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.where(norms == 0, 1.0, norms)
        return EncodedBatch(vectors, counts)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return " ".join(f"t{token_id}" for token_id in token_ids)


@functools.lru_cache(maxsize=1 << 16)
def _token_hash(token: str) -> int:
    """The token's 64-bit hash: its sign is the low bit, its two slots the bits above."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
