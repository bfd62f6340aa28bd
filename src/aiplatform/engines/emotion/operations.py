"""The emotion kind's operation table.
A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.emotion import EmotionRequest, EmotionResponse
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = ["CLASSIFY_EMOTION"]

CLASSIFY_EMOTION: Operation[EmotionRequest, EmotionResponse, NoChunk] = Operation(
    name="classify",
    method="POST",
    path="/v1/emotion",
    request=EmotionRequest,
    response=EmotionResponse,
    example=Example(
        request=EmotionRequest(input=["I am so happy today!", "The bus was late again."])
    ),
    summary="Emotion of texts, or of a transcript's segments with a smoothed timeline",
    tags=("emotion",),
)
