"""The speakers engine kind: enrollment, identification and voice embeddings."""

from aiplatform.engines.speakers.kind import SPEAKERS
from aiplatform.engines.speakers.operations import (
    DELETE_SPEAKER,
    EMBED_SPEAKER,
    ENROLL_SPEAKER,
    IDENTIFY_SPEAKERS,
    LIST_SPEAKERS,
)

__all__ = [
    "DELETE_SPEAKER",
    "EMBED_SPEAKER",
    "ENROLL_SPEAKER",
    "IDENTIFY_SPEAKERS",
    "LIST_SPEAKERS",
    "SPEAKERS",
]
