"""OpenAI's wire shapes for the endpoints the platform serves (errors, models, embeddings)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "Embedding",
    "EmbeddingInput",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ErrorBody",
    "ErrorResponse",
    "ModelCard",
    "ModelList",
]

#: OpenAI's own ceiling on inputs in one embeddings request; engines may set a lower one.
MAX_EMBEDDING_INPUTS = 2048


class ErrorBody(msgspec.Struct, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(msgspec.Struct, kw_only=True):
    """``{"error": {...}}``: the body of every non-2xx response."""

    error: ErrorBody


class ModelCard(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "aiplatform"


class ModelList(msgspec.Struct, kw_only=True):
    data: list[ModelCard]
    object: Literal["list"] = "list"


#: A string, a list of strings, a list of token ids, or a list of token-id lists. msgspec allows
#: one array type per union, so the list's items are a union and homogeneity is checked by the
#: engine.
EmbeddingInput = (
    str
    | Annotated[
        list[str | int | list[int]], msgspec.Meta(min_length=1, max_length=MAX_EMBEDDING_INPUTS)
    ]
)


class EmbeddingRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    input: EmbeddingInput
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None


class Embedding(msgspec.Struct, kw_only=True):
    index: int
    #: floats, or base64 of little-endian float32 when ``encoding_format="base64"``.
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"
