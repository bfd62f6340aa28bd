"""The ASR kind's operation table: OpenAI's transcriptions and translations. Light: imports no
model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from aiplatform.api.audio import (
    Transcription,
    TranscriptionEvent,
    TranscriptionRequest,
    TranslationRequest,
)
from aiplatform.audio.formats import render_transcription
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import ASRSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["ASR", "TRANSCRIBE", "TRANSLATE"]


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
    summary="Translate speech into English text (OpenAI-compatible)",
    tags=("audio",),
)


def _build_local(settings: ASRSettings, _: Needs) -> Engine:
    from aiplatform.engines.asr.engine import LocalAsrEngine

    return LocalAsrEngine(settings)


ASR: EngineKind[ASRSettings] = EngineKind(
    name="asr",
    summary="Speech to text with word timestamps (faster-whisper, NeMo)",
    operations=(TRANSCRIBE, TRANSLATE),
    settings_type=ASRSettings,
    build_local=_build_local,
)
