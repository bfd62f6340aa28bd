"""The diarization section, ``[engines.diarization]``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.engines.settings import AudioInputSettings, PositiveFloat

__all__ = ["DiarizationSettings"]


class DiarizationSettings(AudioInputSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``resemblyzer`` (silero VAD + the GE2E voice encoder), ``nemo`` (silero VAD + a ``.nemo``
    #: speaker model), or ``fake`` (energy VAD, spectral profile).
    backend: Literal["resemblyzer", "nemo", "fake"] = "resemblyzer"
    #: nemo: the ``.nemo`` speaker-verification checkpoint (an ``EncDecSpeakerLabelModel``,
    #: such as TitaNet); ``pip install 'aiplatform[nemo]'``.
    path: str | None = None
    #: Torch device (``cuda`` with a GPU build of torch).
    device: str = "cpu"
    #: Length of the windows embedded inside each speech region.
    window_s: PositiveFloat = 1.5
    #: Hop between those windows.
    hop_s: PositiveFloat = 0.75
    #: Upper bound of the estimated number of speakers.
    max_speakers: Annotated[int, msgspec.Meta(ge=1, le=32)] = 8
    #: Cosine similarity above which two clusters are one speaker, when their number is
    #: estimated; unset: the backend's calibrated value.
    merge_threshold: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None = None
