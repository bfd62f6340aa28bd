"""A deterministic stand-in for an emotion classifier: a handful of keywords per label."""

from __future__ import annotations

from collections.abc import Sequence

from aiplatform.api.emotion import EMOTION_LABELS
from aiplatform.engines.emotion.backend import Scores

__all__ = ["FakeEmotionBackend"]

_KEYWORDS = {
    "anger": ("angry", "furious", "hate"),
    "disgust": ("disgusting", "gross"),
    "fear": ("afraid", "scared", "terrified"),
    "joy": ("happy", "glad", "wonderful", "love"),
    "sadness": ("sad", "unhappy", "cry"),
    "surprise": ("surprised", "wow", "unexpected"),
}


class FakeEmotionBackend:
    def load(self) -> None:
        pass

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        results = []
        for text in texts:
            lowered = text.lower()
            votes = {
                label: float(sum(lowered.count(word) for word in _KEYWORDS.get(label, ())))
                for label in EMOTION_LABELS
            }
            votes["neutral"] = 0.5
            total = sum(votes.values())
            results.append({label: round(value / total, 6) for label, value in votes.items()})
        return results
