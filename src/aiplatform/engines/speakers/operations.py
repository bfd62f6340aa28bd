"""The speakers kind's operation table: enrollment, listing, deletion, embedding and
identification. A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

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
from aiplatform.audio.examples import example_wav_part
from aiplatform.engines.base import Example, NoChunk, Operation

__all__ = [
    "DELETE_SPEAKER",
    "EMBED_SPEAKER",
    "ENROLL_SPEAKER",
    "IDENTIFY_SPEAKERS",
    "LIST_SPEAKERS",
]

ENROLL_SPEAKER: Operation[SpeakerEnrollRequest, Speaker, NoChunk] = Operation(
    name="enroll",
    method="POST",
    path="/v1/speakers",
    request=SpeakerEnrollRequest,
    response=Speaker,
    form=True,
    example=Example(request=lambda _: SpeakerEnrollRequest(file=example_wav_part(), name="Ada")),
    summary="Enroll a speaker from a voice sample",
    tags=("speakers",),
)

LIST_SPEAKERS: Operation[SpeakerListRequest, SpeakerList, NoChunk] = Operation(
    name="list",
    method="GET",
    path="/v1/speakers",
    request=SpeakerListRequest,
    response=SpeakerList,
    example=Example(request=SpeakerListRequest()),
    summary="List enrolled speakers",
    tags=("speakers",),
)

DELETE_SPEAKER: Operation[SpeakerDeleteRequest, SpeakerDeleted, NoChunk] = Operation(
    name="delete",
    method="DELETE",
    path="/v1/speakers/{speaker_id}",
    request=SpeakerDeleteRequest,
    response=SpeakerDeleted,
    example=Example(
        setup=(
            (ENROLL_SPEAKER, lambda _: SpeakerEnrollRequest(file=example_wav_part(), name="Bo")),
        ),
        request=lambda context: SpeakerDeleteRequest(speaker_id=context.answers[0].id),
    ),
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
    example=Example(request=lambda _: SpeakerEmbeddingRequest(file=example_wav_part())),
    summary="Voice embedding of an audio file",
    tags=("speakers",),
)

IDENTIFY_SPEAKERS: Operation[SpeakerIdentifyRequest, SpeakerMatches, NoChunk] = Operation(
    name="identify",
    method="POST",
    path="/v1/speakers/identify",
    request=SpeakerIdentifyRequest,
    response=SpeakerMatches,
    example=Example(
        setup=((EMBED_SPEAKER, lambda _: SpeakerEmbeddingRequest(file=example_wav_part())),),
        request=lambda context: SpeakerIdentifyRequest(embeddings=[context.answers[0].embedding]),
    ),
    summary="The enrolled speaker of each voice embedding, if any is close enough",
    tags=("speakers",),
)
