"""What litestar cannot see of an operation, added to its OpenAPI description.

Routes that read a form or a query string take the request from the connection themselves
(litestar's lenient conversion is not theirs), so litestar documents neither their body nor
their query parameters; their path parameters it documents as bare strings. A streamed
operation answers ``text/event-stream`` beside JSON, and one that renders formats answers
text. :func:`documented_operation` gives a route's ``operation_class``, which completes the
description from the operation's own request type (its msgspec JSON Schema), so that generated
clients and schema-driven tests reach every operation as it is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    Parameter,
    RequestBody,
)
from litestar.openapi.spec import (
    Operation as OpenAPIOperation,
)

from aiplatform.api.openai import ErrorResponse
from aiplatform.engines.base import Operation
from aiplatform.forms import FilePart

__all__ = ["JSON_ONLY", "documented_operation", "error_response", "field_schemas"]

_BINARY = {"type": "string", "format": "binary"}
_SSE = "text/event-stream"


def field_schemas(request_type: type[msgspec.Struct]) -> tuple[dict[str, Any], frozenset[str]]:
    """Each field's JSON Schema by wire name (references resolved inline, uploads as binary
    strings), and the names of the required fields."""
    schema = msgspec.json.schema(request_type)
    definitions: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str):
            name = reference.rsplit("/", 1)[-1]
            return dict(_BINARY) if name == FilePart.__name__ else resolve(definitions[name])
        return {key: resolve(value) for key, value in node.items() if key != "title"}

    body = resolve(schema)
    return body.get("properties", {}), frozenset(body.get("required", ()))


def documented_operation(op: Operation[Any, Any, Any]) -> type[OpenAPIOperation]:
    """The OpenAPI operation class of ``op``'s route."""
    properties, required = field_schemas(op.request)
    path_params = set(op.path_params)
    path_schemas = {
        name: {key: value for key, value in properties[name].items() if key != "default"}
        for name in path_params
        if name in properties
    }
    form_body = _form_body(properties, required, path_params) if op.body == "form" else None
    query = _query_parameters(properties, required, path_params) if op.body == "query" else []
    extra_content: dict[str, OpenAPIMediaType] = {}
    if op.chunk is not None:
        extra_content[_SSE] = OpenAPIMediaType(
            schema=cast(
                Any,
                {
                    "type": "string",
                    "description": (
                        f"Server-sent events, one {op.chunk.__name__} as JSON per 'data:' "
                        f"line, then 'data: [DONE]' (when '{op.stream_field}' is true)"
                    ),
                },
            )
        )
    if op.render is not None:
        extra_content["text/*"] = OpenAPIMediaType(
            schema=cast(
                Any,
                {"type": "string", "description": "The response in the text format asked for"},
            )
        )

    @dataclass
    class Documented(OpenAPIOperation):
        def __post_init__(self) -> None:
            for parameter in self.parameters or ():
                if isinstance(parameter, Parameter) and parameter.name in path_schemas:
                    parameter.schema = cast(Any, path_schemas[parameter.name])
            if query:
                self.parameters = [*(self.parameters or ()), *query]
            if form_body is not None:
                self.request_body = form_body
            ok = (self.responses or {}).get("200")
            content = getattr(ok, "content", None)
            if extra_content and isinstance(content, dict):
                content.update(extra_content)

    Documented.__name__ = Documented.__qualname__ = f"Documented_{op.name}"
    return Documented


def _text_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as a form or a query string carries it: absent, never null."""
    members = schema.get("anyOf")
    if isinstance(members, list):
        kept = [member for member in members if member != {"type": "null"}]
        if len(kept) == 1:
            return {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept[0]}
    return schema


def _form_body(
    properties: dict[str, Any], required: frozenset[str], path_params: set[str]
) -> RequestBody:
    fields = {
        name: _text_field(schema) for name, schema in properties.items() if name not in path_params
    }
    schema: dict[str, Any] = {"type": "object", "properties": fields}
    needed = sorted(name for name in required if name in fields)
    if needed:
        schema["required"] = needed
    return RequestBody(
        required=True,
        content={"multipart/form-data": OpenAPIMediaType(schema=cast(Any, schema))},
    )


def _query_parameters(
    properties: dict[str, Any], required: frozenset[str], path_params: set[str]
) -> list[Parameter]:
    return [
        Parameter(
            name=name,
            param_in="query",
            schema=cast(Any, _text_field(schema)),
            required=name in required,
            description=_text_field(schema).get("description"),
        )
        for name, schema in sorted(properties.items())
        if name not in path_params
    ]


#: What a JSON route answers a body sent as something else (415).
JSON_ONLY = "The body is not sent as JSON (Content-Type: application/json)"


def error_response(description: str) -> ResponseSpec:
    """An error answer as the description shows it: OpenAI's error shape, without generated
    (random) examples, so the committed description is the same in every run."""
    return ResponseSpec(
        data_container=ErrorResponse, description=description, generate_examples=False
    )
