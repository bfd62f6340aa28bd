"""From generated pieces to OpenAI response shapes: usage, log-probabilities, chunks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from aiplatform.api.chat import (
    ChoiceLogprobs,
    CompletionChoice,
    CompletionChunk,
    CompletionLogprobs,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from aiplatform.engines.llm.generation import Piece

__all__ = ["chat_logprobs", "completion_chunk", "completion_logprobs", "new_id", "usage"]


def usage(prompt_tokens: int, pieces: Sequence[Piece]) -> Usage:
    completion = sum(piece.tokens for piece in pieces)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        total_tokens=prompt_tokens + completion,
    )


def chat_logprobs(pieces: Sequence[Piece]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            TokenLogprob(
                token=choice.text,
                logprob=choice.logprob,
                bytes=list(choice.text.encode()),
                top_logprobs=[
                    TopLogprob(token=text, logprob=logprob, bytes=list(text.encode()))
                    for text, logprob in choice.alternatives
                ],
            )
            for piece in pieces
            for choice in piece.logprobs or ()
        ]
    )


def completion_logprobs(pieces: Sequence[Piece]) -> CompletionLogprobs:
    choices = [choice for piece in pieces for choice in piece.logprobs or ()]
    offsets, offset = [], 0
    for choice in choices:
        offsets.append(offset)
        offset += len(choice.text)
    return CompletionLogprobs(
        tokens=[choice.text for choice in choices],
        token_logprobs=[choice.logprob for choice in choices],
        top_logprobs=[dict(choice.alternatives) for choice in choices],
        text_offset=offsets,
    )


def completion_chunk(
    ident: str,
    created: int,
    model: str,
    text: str,
    finish: str | None,
    *,
    logprobs: CompletionLogprobs | None = None,
) -> CompletionChunk:
    choice = CompletionChoice(
        index=0,
        text=text,
        finish_reason=finish,  # type: ignore[arg-type]
        logprobs=logprobs,
    )
    return CompletionChunk(id=ident, created=created, model=model, choices=[choice])


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
