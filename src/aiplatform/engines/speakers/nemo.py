"""Speaker embeddings from a NeMo speaker-verification checkpoint (``.nemo``: TitaNet,
ECAPA-TDNN, SpeakerNet; any ``EncDecSpeakerLabelModel``), through ``nemo_toolkit[asr]``."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from aiplatform.audio.decode import Samples
from aiplatform.engines.asr.nemo import load_nemo_model
from aiplatform.engines.speakers.encoder import Matrix

__all__ = ["NemoVoiceEncoder"]

#: Windows embedded per forward pass.
_BATCH = 32


class NemoVoiceEncoder:
    """The checkpoint's speaker embeddings, unit-normalized.

    Thresholds: 0.7 is NeMo's own default for verifying two utterances as one speaker with
    TitaNet; short windows scatter more. Both are starting points: a checkpoint of another
    family should have ``threshold`` / ``merge_threshold`` set from its own measurements."""

    same_voice_threshold = 0.7
    window_threshold = 0.6

    def __init__(self, *, path: str, device: str = "cpu") -> None:
        self._path = os.path.abspath(path)  # NeMo's restore moves the process's working dir
        self._device = device
        self._model: Any = None
        self._width: int | None = None
        self._turn = threading.Lock()

    def load(self) -> None:
        self._model = load_nemo_model(self._path, self._device, "EncDecSpeakerLabelModel")

    def embed(self, samples: Samples) -> Matrix:
        vector: Matrix = self._embed([samples])[0]
        return vector

    def embed_windows(self, samples: Samples, windows: Sequence[tuple[int, int]]) -> Matrix:
        if not windows:
            return np.zeros((0, self._dimensions()), dtype=np.float32)
        # In batches: an hour of speech is thousands of windows, too many for one forward pass.
        pieces = [samples[start:end] for start, end in windows]
        return np.concatenate(
            [self._embed(pieces[i : i + _BATCH]) for i in range(0, len(pieces), _BATCH)]
        )

    def _embed(self, pieces: Sequence[Samples]) -> Matrix:
        """One batch through the model: pieces padded to the longest, with their lengths."""
        import torch

        model = self._model
        if model is None:
            raise RuntimeError("model not loaded")
        longest = max(piece.size for piece in pieces)
        batch = np.zeros((len(pieces), longest), dtype=np.float32)
        for row, piece in enumerate(pieces):
            batch[row, : piece.size] = piece
        signal = torch.from_numpy(batch).to(model.device)
        lengths = torch.tensor([piece.size for piece in pieces], device=model.device)
        with self._turn, torch.inference_mode():
            _, embeddings = model.forward(input_signal=signal, input_signal_length=lengths)
        vectors = embeddings.float().cpu().numpy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def _dimensions(self) -> int:
        """The embedding width, measured once (a forward pass) rather than per empty request."""
        if self._width is None:
            self._width = int(self._embed([np.zeros(16000, dtype=np.float32)]).shape[1])
        return self._width
