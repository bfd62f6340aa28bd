"""The ASR engine kind: OpenAI's ``/v1/audio/transcriptions`` and ``/v1/audio/translations``."""

from aiplatform.engines.asr.operations import ASR, TRANSCRIBE, TRANSLATE

__all__ = ["ASR", "TRANSCRIBE", "TRANSLATE"]
