"""Multipart forms <-> request Structs, for operations that take file uploads (OpenAI's audio).

A request type declares its uploads as :class:`FilePart` fields and everything else as scalars
or lists of scalars. The route decodes a form into the Struct; the remote adapter encodes the
Struct back into a form, so a forwarded upload reaches the upstream as the client sent it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import msgspec.inspect as mi
from urllib3 import encode_multipart_formdata

from aiplatform.api.ids import explain_id_error
from aiplatform.errors import InvalidRequestError

__all__ = [
    "JSON_TEXT",
    "FilePart",
    "FormError",
    "JsonObjectText",
    "convert_fields",
    "decode_form",
    "encode_form",
    "param_of",
]

T = TypeVar("T", bound=msgspec.Struct)
Shape = Literal["file", "list", "scalar", "json"]


#: How a form field that carries JSON text is marked in its type's JSON Schema.
JSON_TEXT = {"contentMediaType": "application/json"}

#: A form field holding a JSON object as text (a form has no nested values). The form is
#: refused with a 400 naming the field when the text is not one; the engine reads it again.
JsonObjectText = Annotated[
    str, msgspec.Meta(extra_json_schema={**JSON_TEXT, "description": "A JSON object, as text."})
]


class FormError(InvalidRequestError):
    """A body that cannot be read as a form at all (no boundary, broken parts)."""


class FilePart(msgspec.Struct, kw_only=True):
    """One uploaded file: its name and type as the client sent them, and its bytes."""

    filename: str = "upload"
    content_type: str = "application/octet-stream"
    data: bytes = b""


@cache
def _fields(request_type: type[msgspec.Struct]) -> dict[str, tuple[str, Shape]]:
    """Each field by its wire (encode) name: its attribute name and its shape."""
    info = mi.type_info(request_type)
    assert isinstance(info, mi.StructType)
    return {field.encode_name: (field.name, _shape(field.type)) for field in info.fields}


def _shape(kind: mi.Type) -> Shape:
    if isinstance(kind, mi.UnionType):
        shapes = {_shape(member) for member in kind.types if not isinstance(member, mi.NoneType)}
        return shapes.pop() if len(shapes) == 1 else "scalar"
    if isinstance(kind, mi.StructType) and kind.cls is FilePart:
        return "file"
    if isinstance(kind, mi.Metadata):
        extra = kind.extra_json_schema or {}
        if all(extra.get(key) == value for key, value in JSON_TEXT.items()):
            return "json"
        return _shape(kind.type)
    if isinstance(kind, mi.ListType | mi.SetType | mi.VarTupleType):
        return "list"
    return "scalar"


def decode_form(items: Iterable[tuple[str, str | FilePart]], request_type: type[T]) -> T:
    """The request a form's items describe. Lists take repeated ``name`` or ``name[]`` items
    (the OpenAI SDK sends ``timestamp_granularities[]``); unknown items are ignored."""
    fields = _fields(request_type)
    data: dict[str, Any] = {}
    for raw_name, value in items:
        name = raw_name.removesuffix("[]")
        if name not in fields:
            continue
        shape = fields[name][1]
        if shape == "file":
            if not isinstance(value, FilePart):
                raise InvalidRequestError(f"'{name}' must be an uploaded file.", param=name)
            data[name] = value
        elif isinstance(value, FilePart):
            raise InvalidRequestError(f"'{name}' must be a form field, not a file.", param=name)
        elif shape == "list":
            data.setdefault(name, []).append(value)
        else:
            if shape == "json":
                _check_json_object(name, value)
            data[name] = value
    return convert_fields(data, request_type, "form")


def _check_json_object(name: str, text: str) -> None:
    """A 400 naming the field unless ``text`` is empty or a JSON object (nested no deeper
    than the decoder allows: deeper input is refused, never a server error)."""
    if not text.strip():
        return
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"'{name}' is not valid JSON: {exc}", param=name) from exc
    except RecursionError as exc:
        raise InvalidRequestError(
            f"'{name}' is JSON nested too deeply.", param=name, code="nested_too_deeply"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(f"'{name}' must be a JSON object.", param=name)


def convert_fields(data: dict[str, Any], request_type: type[T], where: str) -> T:
    """``request_type`` from text fields (a form, a query string), read leniently: ``"true"``
    is a bool and ``"0.5"`` a float. A bad field is a 400 that names it."""
    try:
        return msgspec.convert(data, request_type, strict=False)
    except msgspec.ValidationError as exc:
        message = explain_id_error(str(exc))
        raise InvalidRequestError(f"Invalid {where}: {message}", param=param_of(message)) from exc


def encode_form(request: msgspec.Struct) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type for ``request`` (unset fields left
    out)."""
    parts: list[tuple[str, Any]] = []
    for encode_name, (name, shape) in _fields(type(request)).items():
        value = getattr(request, name)
        if value is None:
            continue
        if shape == "file":
            parts.append((encode_name, (value.filename, value.data, value.content_type)))
        elif shape == "list":
            parts.extend((f"{encode_name}[]", _text(item)) for item in value)
        else:
            parts.append((encode_name, _text(value)))
    return encode_multipart_formdata(parts)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def param_of(message: str) -> str | None:
    """The field a msgspec validation message names (``... at `$.language` ...``)."""
    marker = "`$."
    start = message.find(marker)
    if start < 0:
        missing = "missing required field `"
        at = message.find(missing)
        return message[at + len(missing) :].split("`", 1)[0] if at >= 0 else None
    return message[start + len(marker) :].split("`", 1)[0].split("[", 1)[0] or None
