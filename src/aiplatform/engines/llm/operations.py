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
    ModelLoadRequest,
    ModelState,
    ModelStates,
    ModelStatesRequest,
)
from aiplatform.engines.base import EngineKind, NoChunk, Operation
from aiplatform.settings import LLMSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["CHAT", "COMPLETE", "LLM", "LOAD_MODEL", "MODEL_STATES", "UNLOAD_MODEL"]

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


LOAD_MODEL: Operation[ModelLoadRequest, ModelState, NoChunk] = Operation(
    name="load_model",
    method="POST",
    path="/v1/llm/models/load",
    request=ModelLoadRequest,
    response=ModelState,
    summary="Load a configured model into memory now",
    tags=("llm",),
)

UNLOAD_MODEL: Operation[ModelLoadRequest, ModelState, NoChunk] = Operation(
    name="unload_model",
    method="POST",
    path="/v1/llm/models/unload",
    request=ModelLoadRequest,
    response=ModelState,
    summary="Release a model's memory; it loads again on its next request",
    tags=("llm",),
)


MODEL_STATES: Operation[ModelStatesRequest, ModelStates, NoChunk] = Operation(
    name="model_states",
    method="GET",
    path="/v1/llm/models",
    request=ModelStatesRequest,
    response=ModelStates,
    summary="Every configured model: loaded or not, and its running generations",
    tags=("llm",),
)


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
