"""The emotion kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import EngineKind
from aiplatform.engines.emotion.operations import CLASSIFY_EMOTION
from aiplatform.engines.emotion.settings import EmotionSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["EMOTION"]


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
