"""The one place that reads local-vs-remote: settings in, engines out."""

from __future__ import annotations

from typing import Any

import httpx

from aiplatform.audio.pipeline import TranscriptionPipeline
from aiplatform.engines.base import Engine, EngineKind
from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.remote.client import RemoteEngine
from aiplatform.settings import EngineSettings, Settings

__all__ = ["build_engine", "build_engines", "compose_audio"]


def build_engine(
    kind: EngineKind[Any],
    settings: EngineSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Engine:
    """The remote adapter when the section has a ``url``, else the kind's in-process engine."""
    if settings.is_remote:
        return RemoteEngine(kind, settings, transport=transport)
    if not isinstance(settings, kind.settings_type):
        raise TypeError(f"engine {kind.name!r} needs {kind.settings_type.__name__}")
    return kind.build_local(settings)


def build_engines(settings: Settings) -> dict[str, Engine]:
    """Every enabled engine of ``settings``, by name."""
    engines: dict[str, Engine] = {}
    for name, kind in ENGINE_KINDS.items():
        section = settings.engine(name)
        if section.enabled:
            engines[name] = build_engine(kind, section)
    return compose_audio(engines)


def compose_audio(engines: dict[str, Engine]) -> dict[str, Engine]:
    """The ASR engine wrapped with whichever diarization, speakers and emotion engines run
    here, for transcriptions with ``diarize`` / ``emotion``."""
    asr = engines.get("asr")
    if asr is None or isinstance(asr, TranscriptionPipeline):
        return engines
    return {
        **engines,
        "asr": TranscriptionPipeline(
            asr,
            diarization=engines.get("diarization"),
            speakers=engines.get("speakers"),
            emotion=engines.get("emotion"),
        ),
    }
