"""What a speech-recognition backend provides to the ASR engine: blocking calls, run in the
engine's worker threads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from aiplatform.api.audio import TranscriptionSegment, TranscriptionWord
from aiplatform.audio.decode import Samples

__all__ = ["AsrBackend", "AsrOptions", "AsrRun", "RecognizedSegment"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AsrOptions:
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False


@dataclass(frozen=True, slots=True)
class RecognizedSegment:
    segment: TranscriptionSegment
    #: With word timestamps asked for: the segment's words; otherwise empty.
    words: list[TranscriptionWord]


@dataclass(slots=True)
class AsrRun:
    """A transcription under way: the language (detected or given) and its segments, produced
    lazily so that a stream sends each as soon as it is decoded."""

    language: str
    segments: Iterator[RecognizedSegment]


class AsrBackend(Protocol):
    def load(self) -> None: ...

    def unload(self) -> None: ...

    def transcribe(self, samples: Samples, options: AsrOptions) -> AsrRun: ...
