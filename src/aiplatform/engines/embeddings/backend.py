"""What an embeddings backend provides to the engine: blocking calls, run in worker threads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingBackend", "EncodedBatch"]


class EncodedBatch:
    """Vectors (one row per text, float32) and each text's token count before truncation."""

    __slots__ = ("token_counts", "vectors")

    def __init__(self, vectors: npt.NDArray[np.float32], token_counts: list[int]) -> None:
        self.vectors = vectors
        self.token_counts = token_counts


class EmbeddingBackend(Protocol):
    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The longest input, in tokens, the model embeds without truncating."""
        ...

    def load(self) -> None: ...

    def encode(self, texts: Sequence[str]) -> EncodedBatch: ...

    def detokenize(self, token_ids: Sequence[int]) -> str:
        """Text for a list of the model's own token ids (for token-array inputs)."""
        ...
