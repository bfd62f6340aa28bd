"""The emotion engine kind: ``POST /v1/emotion``."""

from aiplatform.engines.emotion.kind import EMOTION
from aiplatform.engines.emotion.operations import CLASSIFY_EMOTION

__all__ = ["CLASSIFY_EMOTION", "EMOTION"]
