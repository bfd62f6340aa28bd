"""The diarization kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import EngineKind
from aiplatform.engines.diarization.operations import DIARIZE
from aiplatform.engines.diarization.settings import DiarizationSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["DIARIZATION"]


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
