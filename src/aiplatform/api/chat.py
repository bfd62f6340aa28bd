"""OpenAI's chat-completions and (legacy) completions wire shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from aiplatform.api.rag import Citation, RagChatOptions

__all__ = [
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatDelta",
    "ChatMessage",
    "ChoiceLogprobs",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionLogprobs",
    "CompletionRequest",
    "ContentPart",
    "FunctionCall",
    "FunctionDefinition",
    "JsonSchemaFormat",
    "ModelLoadRequest",
    "ModelState",
    "ModelStates",
    "ModelStatesRequest",
    "NamedToolChoice",
    "ResponseFormat",
    "StreamOptions",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "TopLogprob",
    "Usage",
]

Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
TopP = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1)]
Stop = str | Annotated[list[str], msgspec.Meta(max_length=4)]
Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class ContentPart(msgspec.Struct, kw_only=True):
    """One part of a multi-part message; only ``text`` parts are served."""

    type: str
    text: str | None = None


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    #: JSON text, as OpenAI sends it.
    arguments: str


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The content's text: the string, or its text parts joined (other parts left out)."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if part.text is not None)
        return self.content or ""


class FunctionDefinition(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, kw_only=True):
    function: FunctionDefinition
    type: Literal["function"] = "function"


class NamedFunction(msgspec.Struct, kw_only=True):
    name: str


class NamedToolChoice(msgspec.Struct, kw_only=True):
    function: NamedFunction
    type: Literal["function"] = "function"


class JsonSchemaFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str = "response"
    #: named ``schema`` on the wire; a Python attribute of that name would shadow Struct's API.
    json_schema: dict[str, Any] | None = msgspec.field(default=None, name="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    model: str | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: Stop | None = None
    seed: int | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] = 1
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    #: The platform's extension: answer from a RAG collection, with citations.
    rag: RagChatOptions | None = None


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = msgspec.field(default_factory=list)


class ChoiceLogprobs(msgspec.Struct, kw_only=True):
    content: list[TokenLogprob] | None = None


class AssistantMessage(msgspec.Struct, kw_only=True):
    content: str | None
    role: Literal["assistant"] = "assistant"
    tool_calls: list[ToolCall] | None = None


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    object: Literal["chat.completion"] = "chat.completion"
    #: With ``rag``: the sources the answer was given (left out otherwise).
    citations: list[Citation] | msgspec.UnsetType = msgspec.UNSET


class ToolCallDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCall | None = None


class ChatDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    #: With ``rag``: the sources, on the first chunk only.
    citations: list[Citation] | msgspec.UnsetType = msgspec.UNSET


class CompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    prompt: str | Annotated[list[str], msgspec.Meta(min_length=1, max_length=1)]
    model: str | None = None
    max_tokens: MaxTokens | None = 16
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: Stop | None = None
    seed: int | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] = 1
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    echo: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


class CompletionLogprobs(msgspec.Struct, kw_only=True):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(msgspec.Struct, kw_only=True):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: CompletionLogprobs | None = None


class Completion(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    object: Literal["text_completion"] = "text_completion"


class CompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    object: Literal["text_completion"] = "text_completion"


class ModelLoadRequest(msgspec.Struct, kw_only=True):
    """Load or unload one of the LLM engine's configured models."""

    model: str


class ModelState(msgspec.Struct, kw_only=True):
    id: str
    loaded: bool
    #: generations running on the model right now
    active: int = 0
    object: Literal["model.state"] = "model.state"


class ModelStatesRequest(msgspec.Struct, kw_only=True):
    """No parameters: every model's state."""


class ModelStates(msgspec.Struct, kw_only=True):
    data: list[ModelState]
    object: Literal["list"] = "list"
