"""The speakers kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import NO_SECRETS, EngineKind, Secrets
from aiplatform.engines.speakers.operations import (
    DELETE_SPEAKER,
    EMBED_SPEAKER,
    ENROLL_SPEAKER,
    IDENTIFY_SPEAKERS,
    LIST_SPEAKERS,
)
from aiplatform.engines.speakers.settings import SpeakersSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["SPEAKERS"]


def _build_local(settings: SpeakersSettings, _: Needs, secrets: Secrets = NO_SECRETS) -> Engine:
    from aiplatform.engines.speakers.engine import LocalSpeakersEngine

    return LocalSpeakersEngine(settings, storage_key=secrets.storage_key)


SPEAKERS: EngineKind[SpeakersSettings] = EngineKind(
    name="speakers",
    summary="Speaker embeddings, enrollment and identification (resemblyzer)",
    operations=(ENROLL_SPEAKER, LIST_SPEAKERS, DELETE_SPEAKER, EMBED_SPEAKER, IDENTIFY_SPEAKERS),
    settings_type=SpeakersSettings,
    build_local=_build_local,
    build_with_secrets=_build_local,
)
