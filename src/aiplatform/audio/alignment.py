"""Speakers onto words and segments: each word goes to the speaker whose turns cover most of
it (the nearest turn when none does), each segment to the speaker of most of its words' time.

Linear in the words and turns (up to sorting): spans are swept in order of their start while
a heap holds the turns that may still overlap them, and the nearest turn is found by bisection.
An hour of speech is tens of thousands of words and thousands of turns, so an algorithm that
compares every word with every turn takes seconds; callers in the server also run this on a
worker thread.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence

from aiplatform.api.audio import SpeakerTurn, TranscriptionSegment, TranscriptionWord

__all__ = ["label_segments", "label_words", "speaker_at", "speakers_in_order"]


class _Turns:
    """Turns ordered for sweeping and for finding the nearest one."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self.turns = list(turns)
        #: turn positions by start, and by start / by end for the nearest-turn search
        self.by_start = sorted(range(len(self.turns)), key=lambda n: (self.turns[n].start, n))
        self.starts = [self.turns[n].start for n in self.by_start]
        self.by_end = sorted(range(len(self.turns)), key=lambda n: (self.turns[n].end, n))
        self.ends = [self.turns[n].end for n in self.by_end]

    def speakers(self, spans: Sequence[tuple[float, float]]) -> list[str | None]:
        """The speaker of each ``(start, end)`` span, as :func:`speaker_at` gives it."""
        found: list[str | None] = [None] * len(spans)
        if not self.turns:
            return found
        order = sorted(range(len(spans)), key=lambda n: spans[n][0])
        active: list[tuple[float, int]] = []  # (end, turn position): a heap by end
        cursor = 0
        for n in order:
            start, end = spans[n]
            while cursor < len(self.by_start) and self.starts[cursor] < end:
                position = self.by_start[cursor]
                heapq.heappush(active, (self.turns[position].end, position))
                cursor += 1
            # later spans start no earlier, so a turn that ends before this one starts is done
            while active and active[0][0] <= start:
                heapq.heappop(active)
            overlap: dict[str, float] = defaultdict(float)
            for position in sorted(position for _, position in active):
                turn = self.turns[position]
                shared = min(end, turn.end) - max(start, turn.start)
                if shared > 0:
                    overlap[turn.speaker] += shared
            if overlap:
                found[n] = max(overlap.items(), key=lambda item: item[1])[0]
            else:
                found[n] = self._nearest((start + end) / 2)
        return found

    def _nearest(self, middle: float) -> str:
        """The speaker of the turn whose start or end is nearest ``middle`` (the first turn
        on a tie)."""
        candidates: set[int] = set()
        for values, positions in ((self.starts, self.by_start), (self.ends, self.by_end)):
            at = bisect_left(values, middle)
            for index in (at - 1, at):
                if 0 <= index < len(values):
                    # the first of the turns with this value (they are sorted by position)
                    candidates.add(positions[bisect_left(values, values[index])])
        best = min(
            candidates,
            key=lambda n: (
                min(abs(self.turns[n].start - middle), abs(self.turns[n].end - middle)),
                n,
            ),
        )
        return self.turns[best].speaker


def speaker_at(turns: Sequence[SpeakerTurn], start: float, end: float) -> str | None:
    """The speaker who covers most of ``[start, end]``; the nearest one when nobody does."""
    return _Turns(turns).speakers([(start, end)])[0]


def label_words(words: Sequence[TranscriptionWord], turns: Sequence[SpeakerTurn]) -> None:
    speakers = _Turns(turns).speakers([(word.start, word.end) for word in words])
    for word, speaker in zip(words, speakers, strict=True):
        word.speaker = speaker


def label_segments(
    segments: Sequence[TranscriptionSegment],
    words: Sequence[TranscriptionWord],
    turns: Sequence[SpeakerTurn],
) -> None:
    """Each segment's speaker: by its words' time when it has words, else by its own span."""
    spoken = [((word.start + word.end) / 2, n) for n, word in enumerate(words) if word.speaker]
    spoken.sort()
    middles = [middle for middle, _ in spoken]
    unlabelled: list[TranscriptionSegment] = []
    for segment in segments:
        low = bisect_left(middles, segment.start)
        high = bisect_right(middles, segment.end)
        weight: dict[str, float] = defaultdict(float)
        for _, n in sorted(spoken[low:high], key=lambda item: item[1]):
            word = words[n]
            assert word.speaker is not None
            weight[word.speaker] += max(word.end - word.start, 0.01)
        if weight:
            segment.speaker = max(weight.items(), key=lambda item: item[1])[0]
        else:
            unlabelled.append(segment)
    speakers = _Turns(turns).speakers([(s.start, s.end) for s in unlabelled])
    for segment, speaker in zip(unlabelled, speakers, strict=True):
        segment.speaker = speaker


def speakers_in_order(segments: Sequence[TranscriptionSegment]) -> list[str]:
    """Speakers by first appearance."""
    seen: dict[str, None] = {}
    for segment in segments:
        if segment.speaker:
            seen.setdefault(segment.speaker, None)
    return list(seen)
