"""Emotion over time: per-segment scores smoothed with an exponential moving average whose
weight follows the time between segments, so a single outburst does not swing the mood."""

from __future__ import annotations

import math
from collections.abc import Sequence

from aiplatform.api.audio import EmotionPoint
from aiplatform.api.emotion import TimedText
from aiplatform.engines.emotion.backend import Scores

__all__ = ["smoothed_timeline", "top_label"]


def top_label(scores: Scores) -> str:
    return max(scores.items(), key=lambda item: item[1])[0]


def smoothed_timeline(
    segments: Sequence[TimedText], scores: Sequence[Scores], smoothing_s: float
) -> list[EmotionPoint]:
    """One point per segment (sorted by start): its scores averaged with the past, each past
    segment weighing ``exp(-elapsed / smoothing_s)`` against the present one."""
    points: list[EmotionPoint] = []
    state: Scores | None = None
    last_time = 0.0
    order = sorted(range(len(segments)), key=lambda index: segments[index].start)
    for index in order:
        segment, current = segments[index], scores[index]
        middle = (segment.start + segment.end) / 2
        if state is None or smoothing_s == 0:
            state = dict(current)
        else:
            keep = math.exp(-max(middle - last_time, 0.0) / smoothing_s)
            state = {label: keep * state[label] + (1 - keep) * current[label] for label in state}
        last_time = middle
        rounded = {label: round(value, 6) for label, value in state.items()}
        points.append(
            EmotionPoint(
                start=segment.start, end=segment.end, label=top_label(rounded), scores=rounded
            )
        )
    return points
