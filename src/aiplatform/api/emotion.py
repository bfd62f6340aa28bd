"""Wire shapes of the emotion engine: ``POST /v1/emotion`` for texts or a timed transcript."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.api.audio import EmotionPoint

__all__ = [
    "EMOTION_LABELS",
    "EmotionPoint",
    "EmotionRequest",
    "EmotionResponse",
    "EmotionResult",
    "TimedText",
]

#: The labels every backend scores (Ekman's six and neutral), in this order.
EMOTION_LABELS: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "joy",
    "neutral",
    "sadness",
    "surprise",
)


class TimedText(msgspec.Struct, kw_only=True):
    start: Annotated[float, msgspec.Meta(ge=0)]
    end: Annotated[float, msgspec.Meta(ge=0)]
    text: str


class EmotionRequest(msgspec.Struct, kw_only=True):
    """Texts to classify (``input``), or a transcript's segments (``segments``), which also get
    a smoothed timeline."""

    input: str | Annotated[list[str], msgspec.Meta(max_length=2048)] | None = None
    segments: Annotated[list[TimedText], msgspec.Meta(max_length=10000)] | None = None
    model: str | None = None
    #: Time constant, in seconds, of the timeline's exponential smoothing (0: none).
    smoothing_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 10.0


class EmotionResult(msgspec.Struct, kw_only=True):
    index: int
    label: str
    scores: dict[str, float]


class EmotionResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    data: list[EmotionResult]
    model: str
    timeline: list[EmotionPoint] | None = None
    object: Literal["list"] = "list"
