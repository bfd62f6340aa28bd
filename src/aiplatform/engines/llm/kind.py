"""The llm kind: its operations, its settings and how its in-process engine is built.

The engine module is imported only when an in-process engine is built, so declaring the kind
(mounting its routes, forwarding it) imports no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import EngineKind
from aiplatform.engines.llm.operations import (
    CHAT,
    COMPLETE,
    LOAD_MODEL,
    MODEL_STATES,
    UNLOAD_MODEL,
)
from aiplatform.engines.llm.settings import LLMSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["LLM"]


def _build_local(settings: LLMSettings, _: Needs) -> Engine:
    from aiplatform.engines.llm.engine import LocalLLMEngine

    return LocalLLMEngine(settings)


LLM: EngineKind[LLMSettings] = EngineKind(
    name="llm",
    summary="Chat and text completion (llama.cpp GGUF)",
    operations=(CHAT, COMPLETE, LOAD_MODEL, UNLOAD_MODEL, MODEL_STATES),
    settings_type=LLMSettings,
    build_local=_build_local,
)
