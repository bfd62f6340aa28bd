"""The speech-to-text section, ``[engines.asr]``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.engines.settings import AudioInputSettings, PositiveInt

__all__ = ["ASRSettings"]


class ASRSettings(AudioInputSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``faster_whisper``, ``nemo`` (a ``.nemo`` checkpoint; ``pip install 'aiplatform[nemo]'``),
    #: or ``fake``.
    backend: Literal["faster_whisper", "nemo", "fake"] = "faster_whisper"
    #: The name ``/v1/models`` lists; requests may also name one of ``aliases``.
    model: str = "whisper-base"
    #: Other names requests may use.
    aliases: list[str] = msgspec.field(default_factory=lambda: ["whisper-1"])
    #: faster_whisper: a CTranslate2 Whisper folder, or ``shipped:whisper-base`` /
    #: ``shipped:whisper-tiny.en`` (models shipped in PyPI packages). nemo: a ``.nemo`` file.
    path: str = "shipped:whisper-base"
    #: ``cuda`` with a GPU build of CTranslate2 (faster_whisper) or of torch (nemo).
    device: str = "cpu"
    #: nemo: the language the checkpoint transcribes (ISO-639-1), reported in responses; a
    #: request naming another is refused. faster_whisper detects or checks it itself.
    language: str = "en"
    #: CTranslate2 weight type (int8 is fastest on CPUs).
    compute_type: str = "int8"
    #: CPU threads per transcription (nemo: torch's threads, for the whole process); unset:
    #: every core.
    threads: PositiveInt | None = None
    #: 1 decodes greedily (fastest); larger values search more hypotheses.
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1
    #: Assembled shipped models are cached here; unset: ``$XDG_CACHE_HOME/aiplatform``.
    cache_dir: str | None = None
