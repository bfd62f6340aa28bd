"""From OpenAI request fields to what a generation needs: messages, stops, formats."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage, CompletionRequest
from aiplatform.engines.llm.generation import SamplingParams
from aiplatform.engines.llm.schema_limits import SchemaSize, check_limits
from aiplatform.errors import InvalidRequestError

__all__ = [
    "check_schema",
    "context_overflow",
    "json_format",
    "only_one_choice",
    "plain_message",
    "sampling_params",
    "stop_sequences",
    "with_max_tokens",
]


def with_max_tokens(params: SamplingParams, max_tokens: int) -> SamplingParams:
    return replace(params, max_tokens=max_tokens)


def sampling_params(
    request: ChatCompletionRequest | CompletionRequest,
    *,
    max_tokens: int | None,
    logprobs: int | None,
    json_mode: bool = False,
    json_schema: dict[str, Any] | None = None,
) -> SamplingParams:
    """The sampling fields chat and completions share, with OpenAI's defaults."""
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        stop=stop_sequences(request.stop),
        seed=request.seed,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        json_mode=json_mode,
        json_schema=json_schema,
        logprobs=logprobs,
    )


def context_overflow(
    prompt_tokens: int, max_tokens: int | None, context_length: int
) -> InvalidRequestError:
    """The 400 for a prompt plus requested output that do not fit the model's context."""
    wanted = f" + max_tokens {max_tokens}" if max_tokens else ""
    return InvalidRequestError(
        f"This model's context is {context_length} tokens; the prompt has {prompt_tokens}"
        f"{wanted}. Shorten the messages or lower max_tokens.",
        param="messages",
        code="context_length_exceeded",
    )


def only_one_choice(n: int) -> None:
    if n != 1:
        raise InvalidRequestError(f"n={n} is not supported; ask for one choice (n=1).", param="n")


def plain_message(message: ChatMessage, index: int) -> dict[str, str]:
    """A message as the template sees it: role and text."""
    for part in message.content if isinstance(message.content, list) else ():
        if part.type != "text" or part.text is None:
            raise InvalidRequestError(
                f"messages[{index}] has a '{part.type}' part; only text is served.",
                param="messages",
            )
    text = message.text
    if message.tool_calls:
        calls = ", ".join(
            f'{{"name": "{call.function.name}", "arguments": {call.function.arguments}}}'
            for call in message.tool_calls
        )
        text = f"{text}\n[{calls}]".strip()
    if not text and message.role == "user":
        raise InvalidRequestError(f"messages[{index}] has no content.", param="messages")
    role = "system" if message.role == "developer" else message.role
    return {"role": role, "content": text}


def json_format(request: ChatCompletionRequest) -> tuple[bool, dict[str, object] | None]:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return False, None
    if fmt.type == "json_object":
        return True, None
    if fmt.json_schema is None or not isinstance(fmt.json_schema.json_schema, dict):
        raise InvalidRequestError(
            "response_format json_schema needs a 'json_schema' with a 'schema' object.",
            param="response_format",
        )
    schema = fmt.json_schema.json_schema
    check_schema(schema, "response_format")
    return True, schema


def check_schema(schema: dict[str, Any], param: str, *, prefix: int = 0) -> SchemaSize:
    """Refuse a JSON schema past the limits of ``schema_limits`` or that is not valid JSON
    Schema, naming ``param`` and what is wrong; its size when it is accepted.

    The limits are checked first: jsonschema recurses through the schema, and a deep one would
    overflow the stack.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    size = check_limits(schema, param, prefix=prefix)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        raise InvalidRequestError(
            f"The JSON schema is invalid at {where}: {exc.message}", param=param
        ) from exc
    return size


def stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if any(not s for s in stops):
        raise InvalidRequestError("stop sequences must not be empty.", param="stop")
    return stops
