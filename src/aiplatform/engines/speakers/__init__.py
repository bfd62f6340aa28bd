"""The speakers engine kind: enrollment, identification and voice embeddings."""

from aiplatform.engines.speakers.operations import (
    DELETE_SPEAKER,
    EMBED_SPEAKER,
    ENROLL_SPEAKER,
    IDENTIFY_SPEAKERS,
    LIST_SPEAKERS,
    SPEAKERS,
)

__all__ = [
    "DELETE_SPEAKER",
    "EMBED_SPEAKER",
    "ENROLL_SPEAKER",
    "IDENTIFY_SPEAKERS",
    "LIST_SPEAKERS",
    "SPEAKERS",
]
