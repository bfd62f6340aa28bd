"""The ASR engine kind: OpenAI's ``/v1/audio/transcriptions`` and ``/v1/audio/translations``."""

from aiplatform.engines.asr.kind import ASR
from aiplatform.engines.asr.operations import TRANSCRIBE, TRANSLATE

__all__ = ["ASR", "TRANSCRIBE", "TRANSLATE"]
