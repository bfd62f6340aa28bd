"""The diarization engine kind: ``POST /v1/audio/diarizations``."""

from aiplatform.engines.diarization.operations import DIARIZATION, DIARIZE

__all__ = ["DIARIZATION", "DIARIZE"]
