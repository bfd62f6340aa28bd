"""Live audio cut into utterances: audio arrives in small chunks, and the segmenter says when
the open utterance deserves a partial transcript (it grew by ``partial_every_s``) and when it
is final (a pause of ``end_silence_s`` after speech, or ``max_utterance_s`` reached)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from aiplatform.audio.decode import SAMPLE_RATE, Samples
from aiplatform.audio.energy import LOUDNESS_THRESHOLD, loud_frames

__all__ = ["LiveSegmenter", "Utterance"]

_FRAME = SAMPLE_RATE * 30 // 1000


@dataclass(frozen=True, slots=True)
class Utterance:
    index: int
    #: Seconds from the start of the session.
    start: float
    samples: Samples
    kind: Literal["partial", "final"]

    @property
    def end(self) -> float:
        return self.start + self.samples.size / SAMPLE_RATE


class LiveSegmenter:
    def __init__(
        self,
        *,
        partial_every_s: float = 1.0,
        end_silence_s: float = 0.6,
        max_utterance_s: float = 15.0,
        energy_threshold: float = LOUDNESS_THRESHOLD,
    ) -> None:
        self._partial_every = int(partial_every_s * SAMPLE_RATE)
        self._end_silence = int(end_silence_s * SAMPLE_RATE)
        self._max_utterance = int(max_utterance_s * SAMPLE_RATE)
        self._threshold = energy_threshold
        self._buffer: list[Samples] = []
        self._size = 0
        self._offset = 0  # samples of the session before the open utterance
        self._heard_speech = False
        self._trailing_silence = 0
        self._last_partial = 0
        self._index = 0

    def feed(self, chunk: Samples) -> Utterance | None:
        """Add audio; return the utterance when a partial or final transcript is due."""
        if chunk.size == 0:
            return None
        self._buffer.append(chunk)
        self._size += chunk.size
        self._track_silence(chunk)
        if not self._heard_speech:
            self._drop_leading_silence()
            return None
        if self._trailing_silence >= self._end_silence or self._size >= self._max_utterance:
            return self._finish()
        if self._size - self._last_partial >= self._partial_every:
            self._last_partial = self._size
            return Utterance(self._index, self._start_s(), self._samples(), "partial")
        return None

    def flush(self) -> Utterance | None:
        """The open utterance as final (the client ended the session), if it has speech."""
        return self._finish() if self._heard_speech else None

    def _finish(self) -> Utterance:
        utterance = Utterance(self._index, self._start_s(), self._samples(), "final")
        self._index += 1
        self._offset += self._size
        self._buffer, self._size = [], 0
        self._heard_speech, self._trailing_silence, self._last_partial = False, 0, 0
        return utterance

    def _track_silence(self, chunk: Samples) -> None:
        loud = np.flatnonzero(loud_frames(chunk, _FRAME, self._threshold))
        if loud.size:
            self._heard_speech = True
            self._trailing_silence = max(0, chunk.size - (int(loud[-1]) + 1) * _FRAME)
        else:
            self._trailing_silence += chunk.size

    def _drop_leading_silence(self) -> None:
        """Keep at most a little silence before speech starts (context for the model)."""
        keep = SAMPLE_RATE // 4
        if self._size > keep:
            samples = self._samples()[-keep:]
            self._offset += self._size - keep
            self._buffer, self._size = [samples], keep
            self._trailing_silence = min(self._trailing_silence, keep)

    def _samples(self) -> Samples:
        if len(self._buffer) > 1:
            self._buffer = [np.concatenate(self._buffer)]
        return self._buffer[0] if self._buffer else np.zeros(0, dtype=np.float32)

    def _start_s(self) -> float:
        return round(self._offset / SAMPLE_RATE, 3)
