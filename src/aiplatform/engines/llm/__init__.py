"""The LLM engine kind: ``/v1/chat/completions`` and ``/v1/completions``."""

from aiplatform.engines.llm.operations import CHAT, COMPLETE, LLM

__all__ = ["CHAT", "COMPLETE", "LLM"]
