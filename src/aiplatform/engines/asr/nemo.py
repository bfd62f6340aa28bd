"""NeMo ASR checkpoints (``.nemo``: Parakeet, Canary, any CTC/TDT/RNNT model) through
``nemo_toolkit[asr]``, an optional extra. Words and segments come from NeMo's own timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiplatform.api.audio import TranscriptionSegment, TranscriptionWord
from aiplatform.audio.decode import Samples
from aiplatform.engines.asr.backend import AsrOptions, AsrRun, RecognizedSegment
from aiplatform.errors import InvalidRequestError

__all__ = ["NemoBackend"]


class NemoBackend:
    def __init__(self, *, path: str, device: str = "cpu") -> None:
        self._path = path
        self._device = device
        self._model: Any = None

    def load(self) -> None:
        try:
            from nemo.collections.asr.models import ASRModel
        except ImportError as exc:
            raise RuntimeError(
                "the nemo backend needs NeMo: pip install 'aiplatform[nemo]'"
            ) from exc
        if not self._path.endswith(".nemo"):
            raise ValueError(f"the nemo backend loads a .nemo checkpoint, not {self._path!r}")
        model = ASRModel.restore_from(self._path, map_location=self._device)
        model.eval()
        self._model = model

    def unload(self) -> None:
        self._model = None

    def transcribe(self, samples: Samples, options: AsrOptions) -> AsrRun:
        if self._model is None:
            raise RuntimeError("model not loaded")
        if options.task == "translate":
            raise InvalidRequestError(
                "This NeMo model transcribes only; translation is not supported.", param="model"
            )
        hypotheses = self._model.transcribe(
            [samples], batch_size=1, timestamps=options.word_timestamps, verbose=False
        )
        hypothesis = hypotheses[0]
        if isinstance(hypothesis, list):  # RNNT/TDT models return n-best lists
            hypothesis = hypothesis[0]
        text = hypothesis if isinstance(hypothesis, str) else str(hypothesis.text)
        stamps = getattr(hypothesis, "timestamp", None) or {}
        duration = samples.size / 16000
        return AsrRun(
            language=options.language or "en",
            segments=_segments(text, stamps, duration, options.word_timestamps),
        )


def _segments(
    text: str, stamps: dict[str, Any], duration: float, with_words: bool
) -> Iterator[RecognizedSegment]:
    words = [
        TranscriptionWord(
            word=str(item.get("word", "")),
            start=round(float(item.get("start", 0.0)), 3),
            end=round(float(item.get("end", 0.0)), 3),
        )
        for item in stamps.get("word", [])
    ]
    found = stamps.get("segment") or []
    if not found:
        if text.strip():
            segment = TranscriptionSegment(id=0, start=0.0, end=round(duration, 3), text=text)
            yield RecognizedSegment(segment, words if with_words else [])
        return
    for index, item in enumerate(found):
        start, end = round(float(item["start"]), 3), round(float(item["end"]), 3)
        segment = TranscriptionSegment(
            id=index, start=start, end=end, text=" " + str(item.get("segment", "")).strip()
        )
        inside = [word for word in words if start <= word.start < end] if with_words else []
        yield RecognizedSegment(segment, inside)
