"""The emotion engine kind: ``POST /v1/emotion``."""

from aiplatform.engines.emotion.operations import CLASSIFY_EMOTION, EMOTION

__all__ = ["CLASSIFY_EMOTION", "EMOTION"]
