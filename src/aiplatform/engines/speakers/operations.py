"""The speakers kind's operation table: enrollment, listing, deletion, embedding and
identification. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.audio import (
    Speaker,
    SpeakerDeleted,
    SpeakerDeleteRequest,
    SpeakerEmbedding,
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    SpeakerList,
    SpeakerListRequest,
    SpeakerMatches,
)
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import SpeakersSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = [
    "DELETE_SPEAKER",
    "EMBED_SPEAKER",
    "ENROLL_SPEAKER",
    "IDENTIFY_SPEAKERS",
    "LIST_SPEAKERS",
    "SPEAKERS",
]

ENROLL_SPEAKER: Operation[SpeakerEnrollRequest, Speaker, NoChunk] = Operation(
    name="enroll",
    method="POST",
    path="/v1/speakers",
    request=SpeakerEnrollRequest,
    response=Speaker,
    form=True,
    summary="Enroll a speaker from a voice sample",
    tags=("speakers",),
)

LIST_SPEAKERS: Operation[SpeakerListRequest, SpeakerList, NoChunk] = Operation(
    name="list",
    method="GET",
    path="/v1/speakers",
    request=SpeakerListRequest,
    response=SpeakerList,
    summary="List enrolled speakers",
    tags=("speakers",),
)

DELETE_SPEAKER: Operation[SpeakerDeleteRequest, SpeakerDeleted, NoChunk] = Operation(
    name="delete",
    method="DELETE",
    path="/v1/speakers/{speaker_id}",
    request=SpeakerDeleteRequest,
    response=SpeakerDeleted,
    summary="Delete an enrolled speaker",
    tags=("speakers",),
)

EMBED_SPEAKER: Operation[SpeakerEmbeddingRequest, SpeakerEmbedding, NoChunk] = Operation(
    name="embed",
    method="POST",
    path="/v1/speakers/embeddings",
    request=SpeakerEmbeddingRequest,
    response=SpeakerEmbedding,
    form=True,
    summary="Voice embedding of an audio file",
    tags=("speakers",),
)

IDENTIFY_SPEAKERS: Operation[SpeakerIdentifyRequest, SpeakerMatches, NoChunk] = Operation(
    name="identify",
    method="POST",
    path="/v1/speakers/identify",
    request=SpeakerIdentifyRequest,
    response=SpeakerMatches,
    summary="The enrolled speaker of each voice embedding, if any is close enough",
    tags=("speakers",),
)


def _build_local(settings: SpeakersSettings, _: Needs) -> Engine:
    from aiplatform.engines.speakers.engine import LocalSpeakersEngine

    return LocalSpeakersEngine(settings)


SPEAKERS: EngineKind[SpeakersSettings] = EngineKind(
    name="speakers",
    summary="Speaker embeddings, enrollment and identification (resemblyzer)",
    operations=(ENROLL_SPEAKER, LIST_SPEAKERS, DELETE_SPEAKER, EMBED_SPEAKER, IDENTIFY_SPEAKERS),
    settings_type=SpeakersSettings,
    build_local=_build_local,
)
