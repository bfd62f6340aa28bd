"""The diarization kind's operation table.
A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.audio import DiarizationRequest, DiarizationResult
from aiplatform.audio.examples import example_wav_part
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["DIARIZE"]

DIARIZE: Operation[DiarizationRequest, DiarizationResult, NoChunk] = Operation(
    name="diarize",
    method="POST",
    path="/v1/audio/diarizations",
    request=DiarizationRequest,
    response=DiarizationResult,
    form=True,
    example=Example(request=lambda _: DiarizationRequest(file=example_wav_part())),
    summary="Who spoke when: speaker turns and a voice embedding per speaker",
    tags=("audio",),
)
