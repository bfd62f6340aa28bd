"""Metadata filters, compiled to SQL over the documents' JSON metadata so that the database
selects the matching chunks before the vector search ranks them.

The language is MongoDB's subset that Chroma and most vector stores share::

    {"lang": "en"}                              equality (several keys: all must hold)
    {"year": {"$gte": 2020, "$lt": 2025}}       $eq $ne $gt $gte $lt $lte
    {"kind": {"$in": ["faq", "guide"]}}         $in $nin
    {"tags": {"$contains": "billing"}}          an array field holding the value
    {"draft": {"$exists": false}}
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}

Fields are metadata keys; ``a.b`` reaches into nested objects.
"""

from __future__ import annotations

import re
from typing import Any

from aiplatform.errors import InvalidRequestError

__all__ = ["compile_filter"]

_FIELD = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_COMPARISONS = {"$eq": "IS", "$ne": "IS NOT", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_MAX_DEPTH = 16
Scalar = str | int | float | bool | None


def compile_filter(spec: dict[str, Any], column: str) -> tuple[str, list[Any]]:
    """A SQL condition on the JSON ``column`` and its parameters; a 400 naming what is wrong."""
    if not isinstance(spec, dict):
        raise _bad("a filter must be a JSON object")
    params: list[Any] = []
    sql = _object(spec, column, params, 0)
    return sql, params


def _object(spec: dict[str, Any], column: str, params: list[Any], depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise _bad("the filter is nested too deeply")
    if not spec:
        return "1"
    parts = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise _bad(f"{key} takes a non-empty list of filters")
            joined = f" {key[1:].upper()} ".join(
                _object(_require_object(item, key), column, params, depth + 1) for item in value
            )
            parts.append(f"({joined})")
        elif key == "$not":
            inner = _object(_require_object(value, key), column, params, depth + 1)
            parts.append(f"NOT coalesce({inner}, 0)")  # a missing field is "not matching"
        elif key.startswith("$"):
            raise _bad(f"unknown operator {key} (fields are compared with $eq, $in, ...)")
        else:
            parts.append(_field(key, value, column, params))
    return "(" + " AND ".join(parts) + ")"


def _field(name: str, condition: Any, column: str, params: list[Any]) -> str:
    if not _FIELD.fullmatch(name):
        raise _bad(f"'{name[:40]}' is not a valid metadata field name")
    path = "$" + "".join(f'."{part}"' for part in name.split("."))
    extract = f"json_extract({column}, '{path}')"
    if not isinstance(condition, dict):
        return f"{extract} IS {_bind(_scalar(condition, name), params)}"
    if not condition:
        raise _bad(f"the condition on '{name}' is empty")
    parts = []
    for operator, operand in condition.items():
        if operator in _COMPARISONS:
            value = _scalar(operand, name)
            if value is None and operator not in ("$eq", "$ne"):
                raise _bad(f"{operator} on '{name}' needs a value, not null")
            parts.append(f"{extract} {_COMPARISONS[operator]} {_bind(value, params)}")
        elif operator in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise _bad(f"{operator} on '{name}' takes a non-empty list")
            marks = ", ".join(_bind(_scalar(item, name), params) for item in operand)
            negate = "NOT " if operator == "$nin" else ""
            parts.append(f"coalesce({extract} {negate}IN ({marks}), {int(bool(negate))})")
        elif operator == "$contains":
            mark = _bind(_scalar(operand, name), params)
            parts.append(
                f"EXISTS (SELECT 1 FROM json_each({column}, '{path}') WHERE value IS {mark})"
            )
        elif operator == "$exists":
            if not isinstance(operand, bool):
                raise _bad(f"$exists on '{name}' takes true or false")
            test = "IS NOT NULL" if operand else "IS NULL"
            parts.append(f"json_type({column}, '{path}') {test}")
        else:
            raise _bad(f"unknown operator {operator} on '{name}'")
    return "(" + " AND ".join(parts) + ")"


def _bind(value: Scalar, params: list[Any]) -> str:
    params.append(int(value) if isinstance(value, bool) else value)
    return "?"


def _scalar(value: Any, name: str) -> Scalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _bad(f"'{name}' is compared with a {type(value).__name__}; use a string, number, bool")


def _require_object(value: Any, operator: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{operator} takes filter objects")
    return value


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid filter: {message}.", param="filter", code="invalid_filter")
