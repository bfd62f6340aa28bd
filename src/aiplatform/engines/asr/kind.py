"""The asr kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.asr.operations import TRANSCRIBE, TRANSLATE
from aiplatform.engines.asr.settings import ASRSettings
from aiplatform.engines.base import EngineKind

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["ASR"]


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
