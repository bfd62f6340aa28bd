"""The diarization kind's operation table. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.audio import DiarizationRequest, DiarizationResult
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import DiarizationSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["DIARIZATION", "DIARIZE"]

DIARIZE: Operation[DiarizationRequest, DiarizationResult, NoChunk] = Operation(
    name="diarize",
    method="POST",
    path="/v1/audio/diarizations",
    request=DiarizationRequest,
    response=DiarizationResult,
    form=True,
    summary="Who spoke when: speaker turns and a voice embedding per speaker",
    tags=("audio",),
)


def _build_local(settings: DiarizationSettings, _: Needs) -> Engine:
    from aiplatform.engines.diarization.engine import LocalDiarizationEngine

    return LocalDiarizationEngine(settings)


DIARIZATION: EngineKind[DiarizationSettings] = EngineKind(
    name="diarization",
    summary="Speaker diarization (silero VAD, voice embeddings, clustering)",
    operations=(DIARIZE,),
    settings_type=DiarizationSettings,
    build_local=_build_local,
)
