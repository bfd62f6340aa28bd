"""The in-process emotion engine: validates requests, classifies in batches, builds timelines."""

from __future__ import annotations

import time

from aiplatform.api.emotion import EmotionRequest, EmotionResponse, EmotionResult, TimedText
from aiplatform.api.openai import ModelCard
from aiplatform.engines.emotion.backend import EmotionBackend, Scores
from aiplatform.engines.emotion.kind import EMOTION
from aiplatform.engines.emotion.operations import CLASSIFY_EMOTION
from aiplatform.engines.emotion.settings import EmotionSettings
from aiplatform.engines.emotion.timeline import smoothed_timeline, top_label
from aiplatform.engines.finite import finite_float32
from aiplatform.engines.local import LocalEngine
from aiplatform.errors import InvalidRequestError, check_model

__all__ = ["LocalEmotionEngine", "make_backend"]


def make_backend(settings: EmotionSettings) -> EmotionBackend:
    if settings.backend == "fake":
        from aiplatform.engines.emotion.fake import FakeEmotionBackend

        return FakeEmotionBackend()
    if settings.backend == "transformers":
        from aiplatform.engines.emotion.hf import TransformersEmotionBackend

        return TransformersEmotionBackend(path=settings.path, device=settings.device)
    from aiplatform.engines.emotion.lexicon import LexiconEmotionBackend

    return LexiconEmotionBackend()


class LocalEmotionEngine(LocalEngine):
    def __init__(self, settings: EmotionSettings, backend: EmotionBackend | None = None) -> None:
        super().__init__(EMOTION, settings=settings)
        self._settings = settings
        self._backend = backend if backend is not None else make_backend(settings)
        self._created = int(time.time())
        self.bind(CLASSIFY_EMOTION, self.classify)

    def load(self) -> None:
        self._backend.load()

    async def list_models(self) -> list[ModelCard]:
        return [ModelCard(id=self._settings.model, created=self._created)]

    async def classify(self, request: EmotionRequest) -> EmotionResponse:
        check_model(request.model, (self._settings.model,))
        if (request.input is None) == (request.segments is None):
            raise InvalidRequestError(
                "Give either 'input' (texts) or 'segments' (a timed transcript), not both.",
                param="input",
            )
        segments: list[TimedText] | None = request.segments
        if segments is not None:
            texts = [segment.text for segment in segments]
            finite_float32([(segment.start, segment.end) for segment in segments], "segments")
            for index, segment in enumerate(segments):
                if segment.end < segment.start:
                    raise InvalidRequestError(
                        f"segments[{index}] ends before it starts.", param="segments"
                    )
        else:
            texts = [request.input] if isinstance(request.input, str) else list(request.input or [])
        if not texts:
            raise InvalidRequestError("Nothing to classify: the list is empty.", param="input")
        scores = await self._classify(texts)
        data = [
            EmotionResult(index=index, label=top_label(row), scores=row)
            for index, row in enumerate(scores)
        ]
        timeline = (
            smoothed_timeline(segments, scores, request.smoothing_s)
            if segments is not None
            else None
        )
        return EmotionResponse(data=data, model=self._settings.model, timeline=timeline)

    async def _classify(self, texts: list[str]) -> list[Scores]:
        size = self._settings.max_batch_size
        scores: list[Scores] = []
        for start in range(0, len(texts), size):
            scores.extend(
                await self.run_blocking(self._backend.classify, texts[start : start + size])
            )
        return scores
