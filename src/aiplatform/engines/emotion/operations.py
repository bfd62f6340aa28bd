"""The emotion kind's operation table. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.emotion import EmotionRequest, EmotionResponse
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import EmotionSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["CLASSIFY_EMOTION", "EMOTION"]

CLASSIFY_EMOTION: Operation[EmotionRequest, EmotionResponse, NoChunk] = Operation(
    name="classify",
    method="POST",
    path="/v1/emotion",
    request=EmotionRequest,
    response=EmotionResponse,
    summary="Emotion of texts, or of a transcript's segments with a smoothed timeline",
    tags=("emotion",),
)


def _build_local(settings: EmotionSettings, _: Needs) -> Engine:
    from aiplatform.engines.emotion.engine import LocalEmotionEngine

    return LocalEmotionEngine(settings)


EMOTION: EngineKind[EmotionSettings] = EngineKind(
    name="emotion",
    summary="Emotion classification of text and transcripts (lexicon, transformers)",
    operations=(CLASSIFY_EMOTION,),
    settings_type=EmotionSettings,
    build_local=_build_local,
)
