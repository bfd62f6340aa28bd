"""The LLM kind's operation table. Light: imports no model library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.api.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionChunk,
    CompletionRequest,
)
from aiplatform.engines.base import EngineKind, Operation
from aiplatform.settings import LLMSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine

__all__ = ["CHAT", "COMPLETE", "LLM"]

CHAT: Operation[ChatCompletionRequest, ChatCompletion, ChatCompletionChunk] = Operation(
    name="chat",
    method="POST",
    path="/v1/chat/completions",
    request=ChatCompletionRequest,
    response=ChatCompletion,
    chunk=ChatCompletionChunk,
    summary="Create a chat completion (OpenAI-compatible; SSE when stream=true)",
    tags=("llm",),
)

COMPLETE: Operation[CompletionRequest, Completion, CompletionChunk] = Operation(
    name="complete",
    method="POST",
    path="/v1/completions",
    request=CompletionRequest,
    response=Completion,
    chunk=CompletionChunk,
    summary="Create a text completion (OpenAI-compatible; SSE when stream=true)",
    tags=("llm",),
)


def _build_local(settings: LLMSettings) -> Engine:
    from aiplatform.engines.llm.engine import LocalLLMEngine

    return LocalLLMEngine(settings)


LLM: EngineKind[LLMSettings] = EngineKind(
    name="llm",
    summary="Chat and text completion (llama.cpp GGUF)",
    operations=(CHAT, COMPLETE),
    settings_type=LLMSettings,
    build_local=_build_local,
)
