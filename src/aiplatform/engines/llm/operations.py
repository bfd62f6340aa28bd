"""The LLM kind's operation table. A leaf: imports no model library and nothing of the engine."""

from __future__ import annotations

from aiplatform.api.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Completion,
    CompletionChunk,
    CompletionRequest,
    ModelLoadRequest,
    ModelState,
    ModelStates,
    ModelStatesRequest,
)
from aiplatform.engines.base import Example, ExampleContext, NoChunk, Operation

__all__ = ["CHAT", "COMPLETE", "LOAD_MODEL", "MODEL_STATES", "UNLOAD_MODEL"]


def _default_model(context: ExampleContext) -> ModelLoadRequest:
    return ModelLoadRequest(model=context.model or "")


CHAT: Operation[ChatCompletionRequest, ChatCompletion, ChatCompletionChunk] = Operation(
    name="chat",
    method="POST",
    path="/v1/chat/completions",
    request=ChatCompletionRequest,
    response=ChatCompletion,
    chunk=ChatCompletionChunk,
    example=Example(
        request=ChatCompletionRequest(
            messages=[ChatMessage(role="user", content="Name three colours.")],
            max_tokens=16,
            temperature=0.0,
            seed=7,
        )
    ),
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
    example=Example(
        request=CompletionRequest(prompt="Once upon a time", max_tokens=8, temperature=0.0, seed=1)
    ),
    summary="Create a text completion (OpenAI-compatible; SSE when stream=true)",
    tags=("llm",),
)


LOAD_MODEL: Operation[ModelLoadRequest, ModelState, NoChunk] = Operation(
    name="load_model",
    method="POST",
    path="/v1/llm/models/load",
    request=ModelLoadRequest,
    response=ModelState,
    example=Example(request=_default_model),
    summary="Load a configured model into memory now",
    tags=("llm",),
    admin_only=True,
)

UNLOAD_MODEL: Operation[ModelLoadRequest, ModelState, NoChunk] = Operation(
    name="unload_model",
    method="POST",
    path="/v1/llm/models/unload",
    request=ModelLoadRequest,
    response=ModelState,
    example=Example(request=_default_model),
    summary="Release a model's memory; it loads again on its next request",
    tags=("llm",),
    admin_only=True,
)


MODEL_STATES: Operation[ModelStatesRequest, ModelStates, NoChunk] = Operation(
    name="model_states",
    method="GET",
    path="/v1/llm/models",
    request=ModelStatesRequest,
    response=ModelStates,
    example=Example(request=ModelStatesRequest()),
    summary="Every configured model: loaded or not, and its running generations",
    tags=("llm",),
)
