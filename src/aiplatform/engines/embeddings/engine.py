"""The in-process embeddings engine: validates requests, micro-batches texts, shapes responses."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence

import anyio.abc
import numpy as np
import numpy.typing as npt

from aiplatform.api.openai import (
    Embedding,
    EmbeddingInput,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelCard,
)
from aiplatform.engines.batching import MicroBatcher
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.kind import EMBEDDINGS
from aiplatform.engines.embeddings.operations import EMBED
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.local import LocalEngine
from aiplatform.errors import InvalidRequestError, check_model
from aiplatform.observability.metrics_engines import observe_batch

__all__ = ["LocalEmbeddingsEngine", "make_backend"]

Vector = npt.NDArray[np.float32]


def make_backend(settings: EmbeddingsSettings) -> EmbeddingBackend:
    """The backend the settings name; model libraries are imported only when it loads."""
    if settings.backend == "fake":
        from aiplatform.engines.embeddings.fake import FakeEmbeddingBackend

        return FakeEmbeddingBackend(
            dimension=settings.dimension,
            normalize=settings.normalize,
            latency_s=settings.fake_latency_ms / 1000,
        )
    from aiplatform.engines.embeddings.sbert import SentenceTransformersBackend

    return SentenceTransformersBackend(
        path=settings.path,
        device=settings.device,
        normalize=settings.normalize,
        threads=settings.threads,
    )


class LocalEmbeddingsEngine(LocalEngine):
    def __init__(
        self, settings: EmbeddingsSettings, backend: EmbeddingBackend | None = None
    ) -> None:
        super().__init__(EMBEDDINGS, settings=settings)
        self._settings = settings
        self._backend = backend if backend is not None else make_backend(settings)
        self._created = int(time.time())
        # Requests wait (bounded) in the batcher; its batches then start at once on the threads.
        self._batcher: MicroBatcher[str, tuple[Vector, int]] = MicroBatcher(
            self._encode_batch,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000,
            max_concurrency=settings.max_concurrency,
            max_queue=settings.max_queue,
            queue_timeout_s=settings.queue_timeout_s,
            label=f"Engine '{EMBEDDINGS.name}'",
        )
        self.track(self._batcher)
        self.bind(EMBED, self.embed)

    def load(self) -> None:
        self._backend.load()

    async def start_background(self, task_group: anyio.abc.TaskGroup) -> None:
        await task_group.start(self._batcher.run)

    async def list_models(self) -> list[ModelCard]:
        return [ModelCard(id=self._settings.model, created=self._created)]

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        check_model(request.model, (self._settings.model,))
        texts = self._texts(request.input)
        dimension = self._backend.dimension
        if request.dimensions is not None and request.dimensions > dimension:
            raise InvalidRequestError(
                f"dimensions={request.dimensions} is larger than the model's {dimension}.",
                param="dimensions",
            )
        results = await self._batcher.submit(texts)
        counts = [count for _, count in results]
        limit = self._backend.max_tokens
        if self._settings.truncate:
            counts = [min(count, limit) for count in counts]
        else:
            for index, count in enumerate(counts):
                if count > limit:
                    raise InvalidRequestError(
                        f"input[{index}] has {count} tokens; this model embeds at most {limit}. "
                        "Shorten the input, or enable truncation (engines.embeddings.truncate).",
                        param="input",
                        code="context_length_exceeded",
                    )
        vectors = np.stack([vector for vector, _ in results])
        if request.dimensions is not None and request.dimensions < dimension:
            vectors = _shorten(vectors, request.dimensions, renormalize=self._settings.normalize)
        data = [
            Embedding(index=index, embedding=_encode(vector, request.encoding_format))
            for index, vector in enumerate(vectors)
        ]
        used = sum(counts)
        return EmbeddingResponse(
            data=data,
            model=self._settings.model,
            usage=EmbeddingUsage(prompt_tokens=used, total_tokens=used),
        )

    async def _encode_batch(self, texts: list[str]) -> list[tuple[Vector, int]]:
        batch = await self.run_blocking(self._backend.encode, texts)
        observe_batch(len(texts))
        return list(zip(batch.vectors, batch.token_counts, strict=True))

    def _texts(self, value: EmbeddingInput) -> list[str]:
        """Turn OpenAI's four input forms into texts, refusing what cannot be embedded."""
        if isinstance(value, str):
            items: Sequence[str | int | list[int]] = [value]
        else:
            items = value
        if not items:
            raise InvalidRequestError("input must not be an empty list.", param="input")
        if len(items) > self._settings.max_inputs:
            raise InvalidRequestError(
                f"{len(items)} inputs in one request; at most {self._settings.max_inputs} allowed.",
                param="input",
            )
        if all(isinstance(item, str) for item in items):
            texts = [item for item in items if isinstance(item, str)]
        elif all(isinstance(item, int) for item in items):
            texts = [self._detokenize([item for item in items if isinstance(item, int)], 0)]
        elif all(isinstance(item, list) for item in items):
            texts = [
                self._detokenize(item, index)
                for index, item in enumerate(items)
                if isinstance(item, list)
            ]
        else:
            raise InvalidRequestError(
                "input must be a string, a list of strings, a list of token ids, or a list of "
                "token-id lists; do not mix them.",
                param="input",
            )
        for index, text in enumerate(texts):
            if not text:
                raise InvalidRequestError(f"input[{index}] is empty.", param="input")
        return texts

    def _detokenize(self, token_ids: list[int], index: int) -> str:
        if not token_ids:
            raise InvalidRequestError(f"input[{index}] is an empty token list.", param="input")
        if any(token_id < 0 for token_id in token_ids):
            raise InvalidRequestError(f"input[{index}] has a negative token id.", param="input")
        try:
            return self._backend.detokenize(token_ids)
        except ValueError as exc:
            raise InvalidRequestError(f"input[{index}]: {exc}", param="input") from exc


def _shorten(vectors: Vector, dimensions: int, *, renormalize: bool) -> Vector:
    """Keep the first ``dimensions`` components (Matryoshka-style), re-normalized."""
    short = np.ascontiguousarray(vectors[:, :dimensions])
    if renormalize:
        norms = np.linalg.norm(short, axis=1, keepdims=True)
        short /= np.where(norms == 0, 1.0, norms)
    return short


def _encode(vector: Vector, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.tolist()
    return values
