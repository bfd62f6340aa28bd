"""A deterministic stand-in for a speech recognizer: one segment per loud stretch of audio,
one word per half second of it. Fast tests and the contract suite run on it."""

from __future__ import annotations

from collections.abc import Iterator

from aiplatform.api.audio import TranscriptionSegment, TranscriptionWord
from aiplatform.audio.decode import Samples
from aiplatform.audio.energy import speech_regions
from aiplatform.engines.asr.backend import AsrOptions, AsrRun, RecognizedSegment

__all__ = ["FakeAsrBackend"]

_WORD_S = 0.5


class FakeAsrBackend:
    def load(self) -> None:
        pass

    def unload(self) -> None:
        pass

    def transcribe(self, samples: Samples, options: AsrOptions) -> AsrRun:
        return AsrRun(language=options.language or "en", segments=self._segments(samples, options))

    def _segments(self, samples: Samples, options: AsrOptions) -> Iterator[RecognizedSegment]:
        verb = "translated" if options.task == "translate" else "word"
        counter = 0
        for index, (start, end) in enumerate(speech_regions(samples)):
            count = max(1, round((end - start) / _WORD_S))
            step = (end - start) / count
            words = [
                TranscriptionWord(
                    word=f"{verb}{counter + offset}",
                    start=round(start + offset * step, 3),
                    end=round(start + (offset + 1) * step, 3),
                    probability=1.0,
                )
                for offset in range(count)
            ]
            counter += count
            text = " " + " ".join(word.word for word in words)
            segment = TranscriptionSegment(id=index, start=start, end=end, text=text)
            yield RecognizedSegment(segment, words if options.word_timestamps else [])
