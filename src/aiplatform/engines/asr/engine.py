"""The in-process ASR engine: decodes uploads, runs the backend, shapes OpenAI's results."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Literal

from aiplatform.api.audio import (
    Transcription,
    TranscriptionEvent,
    TranscriptionRequest,
    TranscriptionSegment,
    TranscriptionUsage,
    TranscriptionWord,
    TranslationRequest,
)
from aiplatform.api.openai import ModelCard
from aiplatform.audio.decode import SAMPLE_RATE, Samples, decode_audio
from aiplatform.engines.asr.backend import AsrBackend, AsrOptions, RecognizedSegment
from aiplatform.engines.asr.kind import ASR
from aiplatform.engines.asr.operations import TRANSCRIBE, TRANSLATE
from aiplatform.engines.asr.settings import ASRSettings
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import default_cache_dir
from aiplatform.errors import check_model

__all__ = ["LocalAsrEngine", "make_backend"]


def make_backend(settings: ASRSettings) -> AsrBackend:
    """The backend the settings name; model libraries are imported only when it loads."""
    if settings.backend == "fake":
        from aiplatform.engines.asr.fake import FakeAsrBackend

        return FakeAsrBackend()
    if settings.backend == "nemo":
        from aiplatform.engines.asr.nemo import NemoBackend

        return NemoBackend(
            path=settings.path,
            device=settings.device,
            language=settings.language,
            threads=settings.threads,
        )
    from aiplatform.engines.asr.whisper import FasterWhisperBackend

    return FasterWhisperBackend(
        path=settings.path,
        cache_dir=settings.cache_dir or default_cache_dir(),
        device=settings.device,
        compute_type=settings.compute_type,
        threads=settings.threads,
        beam_size=settings.beam_size,
    )


class LocalAsrEngine(LocalEngine):
    def __init__(self, settings: ASRSettings, backend: AsrBackend | None = None) -> None:
        super().__init__(ASR, settings=settings)
        self._settings = settings
        self._backend = backend if backend is not None else make_backend(settings)
        self._names = (settings.model, *settings.aliases)
        self._created = int(time.time())
        self.bind(TRANSCRIBE, self.transcribe)
        self.bind_stream(TRANSCRIBE, self.transcribe_stream)
        self.bind(TRANSLATE, self.translate)

    def load(self) -> None:
        self._backend.load()

    def unload(self) -> None:
        self._backend.unload()

    async def list_models(self) -> list[ModelCard]:
        return [ModelCard(id=self._settings.model, created=self._created)]

    async def transcribe(self, request: TranscriptionRequest) -> Transcription:
        options = self._options(request)
        return await self.run_blocking(self._recognize, request.file.data, options)

    async def translate(self, request: TranslationRequest) -> Transcription:
        check_model(request.model, self._names)
        options = AsrOptions(
            task="translate", prompt=request.prompt, temperature=request.temperature
        )
        return await self.run_blocking(self._recognize, request.file.data, options)

    async def transcribe_stream(
        self, request: TranscriptionRequest
    ) -> AsyncIterator[TranscriptionEvent]:
        options = self._options(request)
        data = request.file.data

        def events(stop: threading.Event) -> Iterator[TranscriptionEvent]:
            samples = self._decode(data)
            run = self._backend.transcribe(samples, options)
            texts: list[str] = []
            for recognized in run.segments:
                if stop.is_set():
                    return
                texts.append(recognized.segment.text)
                yield TranscriptionEvent(
                    type="transcript.text.delta",
                    delta=recognized.segment.text,
                    segment=recognized.segment,
                )
            yield TranscriptionEvent(
                type="transcript.text.done",
                text="".join(texts).strip(),
                usage=_usage(samples.size),
            )

        async for event in self.iterate_blocking(events):
            yield event

    # -- blocking work, on the engine's threads -----------------------------------------------

    def _decode(self, data: bytes) -> Samples:
        return decode_audio(data, max_duration_s=self._settings.max_duration_s)

    def _recognize(self, data: bytes, options: AsrOptions) -> Transcription:
        samples = self._decode(data)
        run = self._backend.transcribe(samples, options)
        recognized = list(run.segments)
        return _transcription(recognized, run.language, samples.size, options)

    def _options(self, request: TranscriptionRequest) -> AsrOptions:
        check_model(request.model, self._names)
        return AsrOptions(
            language=request.language,
            prompt=request.prompt,
            temperature=request.temperature,
            word_timestamps=request.wants_words,
        )


def _transcription(
    recognized: list[RecognizedSegment], language: str, sample_count: int, options: AsrOptions
) -> Transcription:
    segments: list[TranscriptionSegment] = [item.segment for item in recognized]
    words: list[TranscriptionWord] | None = None
    if options.word_timestamps:
        words = [word for item in recognized for word in item.words]
    task: Literal["transcribe", "translate"] = options.task
    return Transcription(
        text="".join(segment.text for segment in segments).strip(),
        task=task,
        language=language,
        duration=round(sample_count / SAMPLE_RATE, 3),
        segments=segments,
        words=words,
        usage=_usage(sample_count),
    )


def _usage(sample_count: int) -> TranscriptionUsage:
    return TranscriptionUsage(seconds=round(sample_count / SAMPLE_RATE, 3))
