"""The speakers section, ``[engines.speakers]``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.engines.settings import AudioInputSettings

__all__ = ["SpeakersSettings"]


class SpeakersSettings(AudioInputSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``resemblyzer`` (the GE2E voice encoder), ``nemo`` (a ``.nemo`` speaker model), or
    #: ``fake``.
    backend: Literal["resemblyzer", "nemo", "fake"] = "resemblyzer"
    #: nemo: the ``.nemo`` speaker-verification checkpoint (an ``EncDecSpeakerLabelModel``,
    #: such as TitaNet); ``pip install 'aiplatform[nemo]'``.
    path: str | None = None
    #: Torch device (``cuda`` with a GPU build of torch).
    device: str = "cpu"
    #: Enrolled speakers are kept here; unset: ``<data dir>/speakers``.
    data_dir: str | None = None
    #: Cosine similarity from which a voice is taken to be an enrolled speaker; unset: the
    #: backend's calibrated value.
    threshold: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None = None
