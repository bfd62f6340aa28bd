"""Multipart forms <-> request Structs, for operations that take file uploads (OpenAI's audio).

A request type declares its uploads as :class:`FilePart` fields and everything else as scalars
or lists of scalars. The route decodes a form into the Struct; the remote adapter encodes the
Struct back into a form, so a forwarded upload reaches the upstream as the client sent it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
from urllib3 import encode_multipart_formdata

from aiplatform.errors import InvalidRequestError

__all__ = ["FilePart", "decode_form", "encode_form"]

T = TypeVar("T", bound=msgspec.Struct)


class FilePart(msgspec.Struct, kw_only=True):
    """One uploaded file: its name and type as the client sent them, and its bytes."""

    filename: str = "upload"
    content_type: str = "application/octet-stream"
    data: bytes = b""


@cache
def _field_shapes(request_type: type[msgspec.Struct]) -> dict[str, str]:
    """Each field's encode name and shape: ``file``, ``list`` or ``scalar``."""
    info = mi.type_info(request_type)
    assert isinstance(info, mi.StructType)
    shapes: dict[str, str] = {}
    for field in info.fields:
        shapes[field.encode_name] = _shape(field.type)
    return shapes


def _shape(kind: mi.Type) -> str:
    if isinstance(kind, mi.UnionType):
        shapes = {_shape(member) for member in kind.types if not isinstance(member, mi.NoneType)}
        return shapes.pop() if len(shapes) == 1 else "scalar"
    if isinstance(kind, mi.StructType) and kind.cls is FilePart:
        return "file"
    if isinstance(kind, mi.ListType | mi.SetType | mi.VarTupleType):
        return "list"
    return "scalar"


def decode_form(items: Iterable[tuple[str, str | FilePart]], request_type: type[T]) -> T:
    """The request a form's items describe. Lists take repeated ``name`` or ``name[]`` items
    (the OpenAI SDK sends ``timestamp_granularities[]``); unknown items are ignored."""
    shapes = _field_shapes(request_type)
    data: dict[str, Any] = {}
    for raw_name, value in items:
        name = raw_name.removesuffix("[]")
        shape = shapes.get(name)
        if shape is None:
            continue
        if shape == "file":
            if not isinstance(value, FilePart):
                raise InvalidRequestError(f"'{name}' must be an uploaded file.", param=name)
            data[name] = value
        elif isinstance(value, FilePart):
            raise InvalidRequestError(f"'{name}' must be a form field, not a file.", param=name)
        elif shape == "list":
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    try:
        return msgspec.convert(data, request_type, strict=False)
    except msgspec.ValidationError as exc:
        param = _param_of(str(exc))
        raise InvalidRequestError(f"Invalid form: {exc}", param=param) from exc


def encode_form(request: msgspec.Struct) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type for ``request`` (unset fields left
    out)."""
    shapes = _field_shapes(type(request))
    fields: list[tuple[str, Any]] = []
    for name, value in msgspec.structs.asdict(request).items():
        encode_name = _encode_name(type(request), name)
        if value is None:
            continue
        shape = shapes[encode_name]
        if shape == "file":
            fields.append((encode_name, (value.filename, value.data, value.content_type)))
        elif shape == "list":
            fields.extend((f"{encode_name}[]", _text(item)) for item in value)
        else:
            fields.append((encode_name, _text(value)))
    body, content_type = encode_multipart_formdata(fields)
    return body, content_type


@cache
def _encode_names(request_type: type[msgspec.Struct]) -> dict[str, str]:
    return dict(
        zip(request_type.__struct_fields__, request_type.__struct_encode_fields__, strict=True)
    )


def _encode_name(request_type: type[msgspec.Struct], name: str) -> str:
    return _encode_names(request_type)[name]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, msgspec.Struct | dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


def _param_of(message: str) -> str | None:
    """The field a msgspec validation message names (``... at `$.language` ...``)."""
    marker = "`$."
    start = message.find(marker)
    if start < 0:
        missing = "missing required field `"
        at = message.find(missing)
        return message[at + len(missing) :].split("`", 1)[0] if at >= 0 else None
    return message[start + len(marker) :].split("`", 1)[0].split("[", 1)[0] or None
