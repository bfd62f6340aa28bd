"""Whisper through faster-whisper (CTranslate2): the shipped default ASR backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from aiplatform.api.audio import TranscriptionSegment, TranscriptionWord
from aiplatform.audio.decode import Samples
from aiplatform.engines.asr.backend import AsrOptions, AsrRun, RecognizedSegment
from aiplatform.engines.asr.shipped import resolve_whisper_path
from aiplatform.engines.cpus import usable_cpus
from aiplatform.errors import InvalidRequestError

__all__ = ["FasterWhisperBackend"]


class FasterWhisperBackend:
    def __init__(
        self,
        *,
        path: str,
        cache_dir: str,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int | None = None,
        beam_size: int = 1,
    ) -> None:
        self._path = path
        self._cache_dir = cache_dir
        self._device = device
        self._compute_type = compute_type
        self._threads = threads
        self._beam_size = beam_size
        self._model: Any = None

    def load(self) -> None:
        from faster_whisper import WhisperModel

        # faster-whisper logs every file's duration at INFO; the access log says enough.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        folder = resolve_whisper_path(self._path, self._cache_dir)
        self._model = WhisperModel(
            folder,
            device=self._device,
            compute_type=self._compute_type,
            cpu_threads=self._threads or usable_cpus(),
        )

    def unload(self) -> None:
        self._model = None

    @property
    def multilingual(self) -> bool:
        return bool(self._model is not None and self._model.model.is_multilingual)

    def transcribe(self, samples: Samples, options: AsrOptions) -> AsrRun:
        model = self._model
        if model is None:
            raise RuntimeError("model not loaded")
        if not self.multilingual:
            if options.task == "translate":
                raise InvalidRequestError(
                    "This model is English-only and cannot translate.", param="model"
                )
            if options.language not in (None, "en"):
                raise InvalidRequestError(
                    f"This model is English-only; language '{options.language}' is not supported.",
                    param="language",
                )
        language = options.language
        if language is not None and language not in model.supported_languages:
            raise InvalidRequestError(
                f"Unknown language code '{language}'; use an ISO-639-1 code such as 'en'.",
                param="language",
            )
        segments, info = model.transcribe(
            samples,
            language=language,
            task=options.task,
            initial_prompt=options.prompt or None,
            temperature=options.temperature,
            beam_size=self._beam_size,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=True,
        )
        return AsrRun(language=info.language, segments=_recognized(segments))


def _recognized(segments: Iterator[Any]) -> Iterator[RecognizedSegment]:
    for index, raw in enumerate(segments):
        segment = TranscriptionSegment(
            id=index,
            seek=int(raw.seek),
            start=round(float(raw.start), 3),
            end=round(float(raw.end), 3),
            text=raw.text,
            tokens=list(raw.tokens),
            temperature=float(raw.temperature or 0.0),
            avg_logprob=float(raw.avg_logprob),
            compression_ratio=float(raw.compression_ratio),
            no_speech_prob=float(raw.no_speech_prob),
        )
        words = [
            TranscriptionWord(
                word=word.word.strip(),
                start=round(float(word.start), 3),
                end=round(float(word.end), 3),
                probability=round(float(word.probability), 4),
            )
            for word in raw.words or ()
        ]
        yield RecognizedSegment(segment, words)
