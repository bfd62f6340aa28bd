"""The RAG engine's vectors, asked of the embeddings engine (in-process or remote, whichever
this server has): unit vectors in a collection's embedding space, and that space chosen when a
collection is created."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np

from aiplatform.api.openai import Embedding, EmbeddingRequest
from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.operations import EMBED
from aiplatform.engines.rag.collections import CollectionRow
from aiplatform.engines.rag.index import Vectors
from aiplatform.errors import InternalError, InvalidRequestError, NotFoundError

__all__ = ["Embedder", "unit"]


class Embedder:
    def __init__(self, embeddings: Engine, *, batch_size: int) -> None:
        self._embeddings = embeddings
        self._batch_size = batch_size

    async def embed(self, row: CollectionRow, texts: list[str]) -> Vectors:
        """Unit vectors of ``texts`` in the collection's embedding space; of the model's own
        size unless the collection holds shortened vectors."""
        vectors = await self.embed_with(
            row.embedding_model, row.dimension if row.shortened else None, texts
        )
        if vectors.shape[0] and vectors.shape[1] != row.dimension:
            raise InvalidRequestError(
                f"The embeddings engine returned {vectors.shape[1]}-dimensional vectors; this "
                f"collection holds {row.dimension}-dimensional ones.",
                code="dimension_mismatch",
            )
        return vectors

    async def embed_with(
        self, model: str | None, dimension: int | None, texts: list[str]
    ) -> Vectors:
        """Unit vectors of ``texts``, filled into one float32 array batch by batch. They are
        asked for as base64 (little-endian float32): no Python float is made per component;
        an engine that answers floats all the same is understood too."""
        size = self._batch_size
        out: Vectors | None = None
        for start in range(0, len(texts), size):
            batch: list[str | int | list[int]] = list(texts[start : start + size])
            request = EmbeddingRequest(
                input=batch, model=model, dimensions=dimension, encoding_format="base64"
            )
            response = await self._embeddings.invoke(EMBED, request)
            answered = _answered(response.data, len(batch))
            del response
            if out is None:
                out = np.empty((len(texts), answered.shape[1]), dtype=np.float32)
            elif answered.shape[1] != out.shape[1]:
                raise InternalError("The embeddings engine answered vectors of different sizes.")
            out[start : start + answered.shape[0]] = unit(answered)
        if out is None:
            return np.zeros((0, dimension or 0), dtype=np.float32)
        return out

    async def embedding_space(
        self, model: str | None, dimension: int | None
    ) -> tuple[str, int, bool]:
        """The embedding model a new collection uses, its vector size, and whether that is
        shorter than the model's own; asked of the embeddings engine, so a model it does not
        serve, or a size it cannot give, is refused now rather than at the first document."""
        if model is None:
            cards = await self._embeddings.list_models()
            if not cards:
                raise InvalidRequestError(
                    "The embeddings engine lists no model; name one as embedding_model.",
                    param="embedding_model",
                )
            model = cards[0].id
        try:
            probe = await self.embed_with(model, None, ["dimension probe"])
        except NotFoundError as exc:
            raise InvalidRequestError(exc.message, param="embedding_model") from exc
        native = int(probe.shape[1])
        if dimension is None or dimension == native:
            return model, native, False
        if dimension > native:
            raise InvalidRequestError(
                f"dimension {dimension} is larger than the {native} dimensions of the "
                f"model '{model}'.",
                param="dimension",
                code="dimension_mismatch",
            )
        try:
            shortened = await self.embed_with(model, dimension, ["dimension probe"])
        except InvalidRequestError as exc:
            raise InvalidRequestError(exc.message, param="dimension") from exc
        if shortened.shape[1] != dimension:
            raise InvalidRequestError(
                f"The model '{model}' cannot shorten its vectors to {dimension} dimensions.",
                param="dimension",
                code="dimension_mismatch",
            )
        return model, dimension, True


def unit(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _answered(items: Sequence[Embedding], count: int) -> Vectors:
    """The vectors of an answer to ``count`` texts, in the texts' order, one row each."""
    ordered = sorted(items, key=lambda item: item.index)
    if len(ordered) != count:
        raise InternalError(
            f"The embeddings engine answered {len(ordered)} vectors for {count} texts."
        )
    rows = [
        np.frombuffer(base64.b64decode(item.embedding), dtype="<f4")
        if isinstance(item.embedding, str)
        else np.asarray(item.embedding, dtype=np.float32)
        for item in ordered
    ]
    if len({row.size for row in rows}) > 1:
        raise InternalError("The embeddings engine answered vectors of different sizes.")
    return np.stack(rows).astype(np.float32, copy=False)
