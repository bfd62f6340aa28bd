"""Voice embeddings: unit vectors whose cosine similarity says whether two stretches of audio
are the same voice. Shared by the speaker engine (enrollment, identification) and the
diarization engine (clustering windows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from aiplatform.audio.decode import Samples

__all__ = [
    "FakeVoiceEncoder",
    "Matrix",
    "ResemblyzerEncoder",
    "VoiceEncoder",
    "make_voice_encoder",
]

Matrix = npt.NDArray[np.float32]


class VoiceEncoder(Protocol):
    #: Cosine similarity from which two utterance embeddings are taken to be the same voice,
    #: as calibrated for this encoder (identification against enrolled speakers).
    same_voice_threshold: float
    #: The same for embeddings of short windows, which scatter more (diarization).
    window_threshold: float

    def load(self) -> None: ...

    def embed(self, samples: Samples) -> Matrix:
        """One unit embedding of the whole utterance."""
        ...

    def embed_windows(self, samples: Samples, windows: Sequence[tuple[int, int]]) -> Matrix:
        """A unit embedding per ``(start, end)`` sample window, one row each."""
        ...


def make_voice_encoder(
    backend: Literal["resemblyzer", "nemo", "fake"], device: str, path: str | None = None
) -> VoiceEncoder:
    """The encoder the settings name; ``path`` is the ``.nemo`` checkpoint of the nemo backend
    (NeMo is imported only when it loads)."""
    if backend == "fake":
        return FakeVoiceEncoder()
    if backend == "nemo":
        from aiplatform.engines.speakers.nemo import NemoVoiceEncoder

        if not path:
            raise ValueError("the nemo speaker backend needs path: a .nemo checkpoint")
        return NemoVoiceEncoder(path=path, device=device)
    return ResemblyzerEncoder(device=device)


class ResemblyzerEncoder:
    """Resemblyzer's pretrained GE2E voice encoder (it ships its weights, 256 dimensions).

    Thresholds sit between what ``bench/diarization.py`` measures for one voice and for
    different voices: whole utterances about 0.85 against 0.65 to 0.71; 1.5-second windows
    separate cleanly from 0.65 to 0.75."""

    same_voice_threshold = 0.78
    window_threshold = 0.7

    def __init__(self, *, device: str = "cpu") -> None:
        self._device = device
        self._encoder: Any = None

    def load(self) -> None:
        from resemblyzer import VoiceEncoder as Encoder

        self._encoder = Encoder(self._device, verbose=False)

    def embed(self, samples: Samples) -> Matrix:
        vector = self._encoder.embed_utterance(samples)
        return np.asarray(vector, dtype=np.float32)

    def embed_windows(self, samples: Samples, windows: Sequence[tuple[int, int]]) -> Matrix:
        import torch
        from resemblyzer.audio import wav_to_mel_spectrogram

        if not windows:
            return np.zeros((0, 256), dtype=np.float32)
        mels = [wav_to_mel_spectrogram(samples[start:end]) for start, end in windows]
        frames = min(mel.shape[0] for mel in mels)
        batch = torch.from_numpy(np.stack([mel[:frames] for mel in mels])).to(self._device)
        with torch.inference_mode():
            embeddings = self._encoder(batch).cpu().numpy()
        return np.asarray(embeddings, dtype=np.float32)


class FakeVoiceEncoder:
    """A deterministic stand-in: the audio's average log spectrum in 32 bands, centred and
    normalized. Voices of different pitch come out apart, which is enough for fast tests."""

    same_voice_threshold = 0.93
    window_threshold = 0.9
    _BANDS = 32
    _FRAME = 512

    def load(self) -> None:
        pass

    def embed(self, samples: Samples) -> Matrix:
        return self._profile(samples)

    def embed_windows(self, samples: Samples, windows: Sequence[tuple[int, int]]) -> Matrix:
        rows = [self._profile(samples[start:end]) for start, end in windows]
        return np.stack(rows) if rows else np.zeros((0, self._BANDS), dtype=np.float32)

    def _profile(self, samples: Samples) -> Matrix:
        frame = self._FRAME
        count = max(1, samples.size // frame)
        padded = np.zeros(count * frame, dtype=np.float32)
        padded[: min(samples.size, padded.size)] = samples[: padded.size]
        spectrum = np.abs(np.fft.rfft(padded.reshape(count, frame), axis=1)).mean(axis=0)
        bands = np.array_split(spectrum[1:], self._BANDS)
        profile = np.log1p(np.array([band.mean() for band in bands]) * 100.0)
        profile -= profile.mean()
        norm = float(np.linalg.norm(profile))
        return (profile / norm if norm > 0 else profile).astype(np.float32)
