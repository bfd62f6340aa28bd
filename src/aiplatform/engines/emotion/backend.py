"""What an emotion backend provides: a score per label (``EMOTION_LABELS``) for each text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["EmotionBackend", "Scores"]

#: One text's scores: every label of ``EMOTION_LABELS``, summing to 1.
Scores = dict[str, float]


class EmotionBackend(Protocol):
    def load(self) -> None: ...

    def classify(self, texts: Sequence[str]) -> list[Scores]: ...
