"""Voice activity detection: where in the audio someone speaks."""

from __future__ import annotations

from typing import Any, Protocol

from aiplatform.audio.decode import SAMPLE_RATE, Samples
from aiplatform.audio.energy import speech_regions

__all__ = ["EnergyVad", "SileroVad", "Vad"]


class Vad(Protocol):
    def load(self) -> None: ...

    def regions(self, samples: Samples) -> list[tuple[float, float]]:
        """``(start, end)`` seconds of each stretch of speech."""
        ...


class SileroVad:
    """Silero VAD, whose model ships in the ``silero-vad`` package."""

    def __init__(self) -> None:
        self._model: Any = None

    def load(self) -> None:
        from silero_vad import load_silero_vad

        # The ONNX build: no TorchScript (deprecated in torch), and faster on CPUs.
        self._model = load_silero_vad(onnx=True)

    def regions(self, samples: Samples) -> list[tuple[float, float]]:
        import torch
        from silero_vad import get_speech_timestamps

        stamps = get_speech_timestamps(
            torch.from_numpy(samples), self._model, sampling_rate=SAMPLE_RATE
        )
        return [
            (round(stamp["start"] / SAMPLE_RATE, 3), round(stamp["end"] / SAMPLE_RATE, 3))
            for stamp in stamps
        ]


class EnergyVad:
    """Frame energy: deterministic and instant, for the fake backend."""

    def load(self) -> None:
        pass

    def regions(self, samples: Samples) -> list[tuple[float, float]]:
        return speech_regions(samples)
