"""The in-process rerank engine: a relevance score per (query, document), highest first.

Backends: ``embeddings`` (the default) scores by the cosine similarity of embeddings computed by
the embeddings engine, so it works with the model that ships with the platform; a
``cross_encoder`` (a sentence-transformers CrossEncoder folder) reads query and document
together and ranks better; ``fake`` scores by shared words, for tests.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import numpy as np

from aiplatform.api.openai import EmbeddingRequest, ModelCard
from aiplatform.api.rerank import (
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankUsage,
)
from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.operations import EMBED
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.rerank.kind import RERANKING
from aiplatform.engines.rerank.operations import RERANK
from aiplatform.engines.rerank.settings import RerankSettings
from aiplatform.errors import EngineUnavailableError, InvalidRequestError, check_model

__all__ = ["LocalRerankEngine"]

_WORD = re.compile(r"\w+")


class LocalRerankEngine(LocalEngine):
    def __init__(self, settings: RerankSettings, *, embeddings: Engine | None = None) -> None:
        super().__init__(RERANKING, settings=settings)
        if settings.backend == "embeddings" and embeddings is None:
            raise ValueError("the embeddings rerank backend needs the embeddings engine")
        if settings.backend == "cross_encoder" and not settings.path:
            raise ValueError("engines.rerank.path must name a CrossEncoder folder")
        self._settings = settings
        self._embeddings = embeddings
        self._model: Any = None
        self._name = settings.model or _default_name(settings)
        self.bind(RERANK, self.rerank)

    def load(self) -> None:
        if self._settings.backend == "cross_encoder":
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(self._settings.path, device=self._settings.device)

    def unload(self) -> None:
        self._model = None

    async def list_models(self) -> list[ModelCard]:
        return [ModelCard(id=await self._model_name())]

    async def _model_name(self) -> str:
        if self._name is None and self._embeddings is not None:
            cards = await self._embeddings.list_models()
            if cards:
                self._name = cards[0].id
        return self._name or "rerank"

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        name = await self._model_name()
        check_model(request.model, (name,))
        texts = [d if isinstance(d, str) else d.text for d in request.documents]
        if self._settings.backend == "embeddings":
            scores, tokens = await self._embedding_scores(request.query, texts)
        elif self._settings.backend == "cross_encoder":
            scores, tokens = await self.run_blocking(
                self._cross_encoder_scores, request.query, texts
            )
        else:
            scores, tokens = _shared_words(request.query, texts), _word_count(request.query, texts)
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        if request.top_n is not None:
            order = order[: request.top_n]
        results = [
            RerankResult(
                index=i,
                relevance_score=round(float(scores[i]), 6),
                document=RerankDocument(text=texts[i]) if request.return_documents else None,
            )
            for i in order
        ]
        return RerankResponse(
            id=f"rerank-{uuid.uuid4().hex[:16]}",
            model=name,
            results=results,
            usage=RerankUsage(total_tokens=tokens),
        )

    async def _embedding_scores(self, query: str, texts: list[str]) -> tuple[list[float], int]:
        if self._embeddings is None:
            raise EngineUnavailableError("The rerank engine has no embeddings engine.")
        response = await self._embeddings.invoke(
            EMBED, EmbeddingRequest(input=[query, *texts], model=self._settings.model)
        )
        rows = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if not all(isinstance(row, list) for row in rows):
            raise InvalidRequestError("The embeddings engine answered base64 vectors.")
        vectors = np.asarray(rows, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores = vectors[1:] @ vectors[0]
        return [float(score) for score in scores], response.usage.prompt_tokens

    def _cross_encoder_scores(self, query: str, texts: list[str]) -> tuple[list[float], int]:
        pairs = [(query, text) for text in texts]
        scores = self._model.predict(
            pairs, batch_size=self._settings.max_batch_size, show_progress_bar=False
        )
        tokenizer = self._model.tokenizer
        tokens = sum(len(ids) for ids in tokenizer([query] * len(texts), texts)["input_ids"])
        return [float(score) for score in np.asarray(scores).reshape(len(texts), -1)[:, -1]], tokens


def _default_name(settings: RerankSettings) -> str | None:
    if settings.backend == "cross_encoder" and settings.path:
        return settings.path.rstrip("/").rsplit("/", 1)[-1]
    if settings.backend == "fake":
        return "fake-rerank"
    return None  # the embeddings model's name, asked when first needed


def _shared_words(query: str, texts: list[str]) -> list[float]:
    wanted = {word.lower() for word in _WORD.findall(query)}
    scores = []
    for text in texts:
        words = {word.lower() for word in _WORD.findall(text)}
        scores.append(len(wanted & words) / len(wanted | words) if wanted | words else 0.0)
    return scores


def _word_count(query: str, texts: list[str]) -> int:
    return sum(len(_WORD.findall(query)) + len(_WORD.findall(text)) for text in texts)
