"""Speakers onto words and segments: each word goes to the speaker whose turns cover most of
it (the nearest turn when none does), each segment to the speaker of most of its words' time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from aiplatform.api.audio import SpeakerTurn, TranscriptionSegment, TranscriptionWord

__all__ = ["label_segments", "label_words", "speaker_at", "speakers_in_order"]


def speaker_at(turns: Sequence[SpeakerTurn], start: float, end: float) -> str | None:
    """The speaker who covers most of ``[start, end]``; the nearest one when nobody does."""
    if not turns:
        return None
    overlap: dict[str, float] = defaultdict(float)
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] += shared
    if overlap:
        return max(overlap.items(), key=lambda item: item[1])[0]
    middle = (start + end) / 2
    nearest = min(turns, key=lambda turn: min(abs(turn.start - middle), abs(turn.end - middle)))
    return nearest.speaker


def label_words(words: Sequence[TranscriptionWord], turns: Sequence[SpeakerTurn]) -> None:
    for word in words:
        word.speaker = speaker_at(turns, word.start, word.end)


def label_segments(
    segments: Sequence[TranscriptionSegment],
    words: Sequence[TranscriptionWord],
    turns: Sequence[SpeakerTurn],
) -> None:
    """Each segment's speaker: by its words' time when it has words, else by its own span."""
    for segment in segments:
        weight: dict[str, float] = defaultdict(float)
        for word in words:
            if word.speaker and segment.start <= (word.start + word.end) / 2 <= segment.end:
                weight[word.speaker] += max(word.end - word.start, 0.01)
        if weight:
            segment.speaker = max(weight.items(), key=lambda item: item[1])[0]
        else:
            segment.speaker = speaker_at(turns, segment.start, segment.end)


def speakers_in_order(segments: Sequence[TranscriptionSegment]) -> list[str]:
    """Speakers by first appearance."""
    seen: dict[str, None] = {}
    for segment in segments:
        if segment.speaker:
            seen.setdefault(segment.speaker, None)
    return list(seen)
