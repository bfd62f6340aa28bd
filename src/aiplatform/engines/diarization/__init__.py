"""The diarization engine kind: ``POST /v1/audio/diarizations``."""

from aiplatform.engines.diarization.kind import DIARIZATION
from aiplatform.engines.diarization.operations import DIARIZE

__all__ = ["DIARIZATION", "DIARIZE"]
