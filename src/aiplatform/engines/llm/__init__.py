"""The LLM engine kind: ``/v1/chat/completions`` and ``/v1/completions``."""

from aiplatform.engines.llm.kind import LLM
from aiplatform.engines.llm.operations import (
    CHAT,
    COMPLETE,
    LOAD_MODEL,
    MODEL_STATES,
    UNLOAD_MODEL,
)

__all__ = ["CHAT", "COMPLETE", "LLM", "LOAD_MODEL", "MODEL_STATES", "UNLOAD_MODEL"]
