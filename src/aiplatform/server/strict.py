"""Strict decoding of JSON request bodies.

litestar converts a handler's ``data`` leniently (``"true"`` becomes a bool, ``"5"`` an int),
as it must for query strings and forms, which are text. A JSON body has types of its own, and
OpenAI refuses ``"stream": "true"`` or ``"max_tokens": "5"`` with a 400; so do we. A route
names :class:`StrictJSON` as its DTO (``StrictJSON[RequestType]``): litestar hands it the body's
bytes, it decodes them with msgspec in strict mode, and the route's OpenAPI description is
the request type's schema as before.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.dto import AbstractDTO

from aiplatform.api.ids import explain_id_error
from aiplatform.errors import InvalidRequestError
from aiplatform.forms import param_of

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto.data_structures import DTOFieldDefinition
    from litestar.openapi.spec import Reference, Schema
    from litestar.typing import FieldDefinition

__all__ = ["StrictJSON", "decode_strict", "strict_json"]


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(request_type: type[Any]) -> msgspec.json.Decoder[Any]:
    decoder = _DECODERS.get(request_type)
    if decoder is None:
        decoder = _DECODERS[request_type] = msgspec.json.Decoder(request_type, strict=True)
    return decoder


def decode_strict(body: bytes, request_type: type[Any]) -> Any:
    """``body`` as ``request_type``, with JSON's own types (no strings read as numbers or
    booleans). A body that is not JSON, not of that shape, or nested too deeply is a 400; one
    with a bad field names it."""
    try:
        return _decoder(request_type).decode(body)
    except msgspec.ValidationError as exc:
        message = explain_id_error(str(exc))
        param = param_of(message)
        if param is None:
            raise InvalidRequestError(f"Invalid request body: {message}") from exc
        raise InvalidRequestError(f"Invalid value for '{param}': {message}", param=param) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidRequestError(
            "The request body is JSON nested too deeply.", code="nested_too_deeply"
        ) from exc


def strict_json(request_type: type[Any]) -> type[StrictJSON]:
    """The DTO that decodes a body strictly as ``request_type``."""
    dto: type[StrictJSON] = StrictJSON[request_type]  # type: ignore[misc]
    return dto


class StrictJSON(AbstractDTO[Any]):
    """A DTO that only decodes: the body strictly as the route's request type
    (``model_type``). Responses are built by the route itself, so it never encodes."""

    def decode_bytes(self, value: bytes) -> Any:
        return decode_strict(value, self.model_type)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        return msgspec.convert(value, self.model_type, strict=True)

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: Any = None,
    ) -> None:
        """Nothing to prepare: decoding needs no transfer model."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(field_definition)
