"""The ASR kind's operation table: OpenAI's transcriptions and translations. Light: imports no
model library."""

from __future__ import annotations

import msgspec

from aiplatform.api.audio import (
    Transcription,
    TranscriptionEvent,
    TranscriptionRequest,
    TranslationRequest,
)
from aiplatform.audio.examples import example_wav_part
from aiplatform.audio.formats import render_transcription
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["TRANSCRIBE", "TRANSLATE"]


def _structured_transcription(request: TranscriptionRequest) -> TranscriptionRequest:
    """Ask the upstream for verbose JSON (segments, and words when wanted); the route renders
    the format the client asked for."""
    granularities = ["segment", "word"] if request.wants_words else ["segment"]
    return msgspec.structs.replace(
        request, response_format="verbose_json", timestamp_granularities=granularities
    )


def _structured_translation(request: TranslationRequest) -> TranslationRequest:
    return msgspec.structs.replace(request, response_format="verbose_json")


TRANSCRIBE: Operation[TranscriptionRequest, Transcription, TranscriptionEvent] = Operation(
    name="transcribe",
    method="POST",
    path="/v1/audio/transcriptions",
    request=TranscriptionRequest,
    response=Transcription,
    chunk=TranscriptionEvent,
    form=True,
    render=lambda request, result: render_transcription(request.response_format, result),
    upstream_request=_structured_transcription,
    example=Example(
        request=lambda _: TranscriptionRequest(
            file=example_wav_part(), timestamp_granularities=["word", "segment"]
        )
    ),
    summary="Transcribe audio (OpenAI-compatible; extensions: diarize, emotion)",
    tags=("audio",),
)

TRANSLATE: Operation[TranslationRequest, Transcription, NoChunk] = Operation(
    name="translate",
    method="POST",
    path="/v1/audio/translations",
    request=TranslationRequest,
    response=Transcription,
    form=True,
    render=lambda request, result: render_transcription(request.response_format, result),
    upstream_request=_structured_translation,
    example=Example(request=lambda _: TranslationRequest(file=example_wav_part())),
    summary="Translate speech into English text (OpenAI-compatible)",
    tags=("audio",),
)
