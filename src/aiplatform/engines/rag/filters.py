"""Metadata filters, compiled to SQL over the documents' JSON metadata so that the database
selects the matching chunks before the vector search ranks them.

The language is MongoDB's subset that Chroma and most vector stores share::

    {"lang": "en"}                              equality (several keys: all must hold)
    {"year": {"$gte": 2020, "$lt": 2025}}       $eq $ne $gt $gte $lt $lte
    {"kind": {"$in": ["faq", "guide"]}}         $in $nin
    {"tags": {"$contains": "billing"}}          an array field holding the value
    {"draft": {"$exists": false}}
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}

Fields are metadata keys; ``a.b`` reaches into nested objects. Values compare as SQLite
compares JSON values: numbers by value (true and false are 1 and 0), strings by code point, and
numbers before strings; a missing field (or a null) matches only ``$ne``, ``$nin``, ``$exists:
false`` and a ``$not`` around anything else.

A filter is bounded so that it always compiles to a statement SQLite accepts: at most
:data:`MAX_FILTER_DEPTH` nested ``$and``/``$or``/``$not``, :data:`MAX_FILTER_CONDITIONS`
conditions, :data:`MAX_FILTER_VALUES` values, integers within SQLite's signed 64 bits, finite
numbers, and strings that are valid Unicode. Conditions are joined as balanced trees, so a long
``$or`` stays shallow for SQLite's expression-depth limit (1000). Past a bound: a 400 with
``param`` ``filter`` and code ``invalid_filter``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from aiplatform.errors import InvalidRequestError

__all__ = [
    "MAX_FILTER_CONDITIONS",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_VALUES",
    "compile_filter",
]

#: ``$and``/``$or``/``$not`` nested in one another.
MAX_FILTER_DEPTH = 16
#: Conditions in one filter: each comparison of a field, and each ``$and``/``$or``/``$not``.
MAX_FILTER_CONDITIONS = 1000
#: Values in one filter, ``$in``/``$nin`` list items included (each is one SQL parameter).
MAX_FILTER_VALUES = 1000

_FIELD = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_COMPARISONS = {"$eq": "IS", "$ne": "IS NOT", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_INT64 = range(-(1 << 63), 1 << 63)
#: Conditions joined flat before the join is split in two (SQLite's depth grows with each).
_FLAT_JOIN = 8
Scalar = str | int | float | bool | None


def compile_filter(spec: dict[str, Any], column: str) -> tuple[str, list[Any]]:
    """A SQL condition on the JSON ``column`` and its parameters; a 400 naming what is wrong."""
    if not isinstance(spec, dict):
        raise _bad("a filter must be a JSON object")
    compiler = _Compiler(column)
    return compiler.object(spec, 0), compiler.params


class _Compiler:
    def __init__(self, column: str) -> None:
        self.column = column
        self.params: list[Any] = []
        self.conditions = 0

    def object(self, spec: dict[str, Any], depth: int) -> str:
        if depth > MAX_FILTER_DEPTH:
            raise _bad(f"the filter nests $and/$or/$not more than {MAX_FILTER_DEPTH} deep")
        if not spec:
            return "1"
        parts = []
        for key, value in spec.items():
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise _bad(f"{key} takes a non-empty list of filters")
                self._count(1)
                if self.conditions + len(value) > MAX_FILTER_CONDITIONS:  # before reading them
                    raise _too_many_conditions()
                items = [self.object(_require_object(item, key), depth + 1) for item in value]
                parts.append(_join(items, key[1:].upper()))
            elif key == "$not":
                self._count(1)
                inner = self.object(_require_object(value, key), depth + 1)
                parts.append(f"NOT coalesce({inner}, 0)")  # a missing field is "not matching"
            elif key.startswith("$"):
                raise _bad(f"unknown operator {key[:40]} (fields are compared with $eq, $in, ...)")
            else:
                parts.append(self.field(key, value))
        return _join(parts, "AND")

    def field(self, name: str, condition: Any) -> str:
        if not _FIELD.fullmatch(name):
            raise _bad(f"'{name[:40]}' is not a valid metadata field name")
        path = "$" + "".join(f'."{part}"' for part in name.split("."))
        extract = f"json_extract({self.column}, '{path}')"
        if not isinstance(condition, dict):
            self._count(1)
            return f"{extract} IS {self._bind(condition, name)}"
        if not condition:
            raise _bad(f"the condition on '{name}' is empty")
        parts = []
        for operator, operand in condition.items():
            self._count(1)
            parts.append(self._operator(name, path, extract, operator, operand))
        return _join(parts, "AND")

    def _operator(self, name: str, path: str, extract: str, operator: Any, operand: Any) -> str:
        if operator in _COMPARISONS:
            if operand is None and operator not in ("$eq", "$ne"):
                raise _bad(f"{operator} on '{name}' needs a value, not null")
            return f"{extract} {_COMPARISONS[operator]} {self._bind(operand, name)}"
        if operator in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise _bad(f"{operator} on '{name}' takes a non-empty list")
            if len(operand) > MAX_FILTER_VALUES:
                raise _too_many_values()
            marks = ", ".join(self._bind(item, name) for item in operand)
            negate = "NOT " if operator == "$nin" else ""
            return f"coalesce({extract} {negate}IN ({marks}), {int(bool(negate))})"
        if operator == "$contains":
            mark = self._bind(operand, name)
            each = f"json_each({self.column}, '{path}')"
            return f"EXISTS (SELECT 1 FROM {each} WHERE value IS {mark})"
        if operator == "$exists":
            if not isinstance(operand, bool):
                raise _bad(f"$exists on '{name}' takes true or false")
            test = "IS NOT NULL" if operand else "IS NULL"
            return f"json_type({self.column}, '{path}') {test}"
        raise _bad(f"unknown operator {str(operator)[:40]} on '{name}'")

    def _bind(self, value: Any, name: str) -> str:
        if len(self.params) >= MAX_FILTER_VALUES:
            raise _too_many_values()
        self.params.append(_scalar(value, name))
        return "?"

    def _count(self, conditions: int) -> None:
        self.conditions += conditions
        if self.conditions > MAX_FILTER_CONDITIONS:
            raise _too_many_conditions()


def _join(parts: list[str], operator: str) -> str:
    """``parts`` joined by ``operator`` as a balanced tree: its depth grows with the log of
    their number, not with the number."""
    if len(parts) <= _FLAT_JOIN:
        return "(" + f" {operator} ".join(parts) + ")"
    middle = len(parts) // 2
    return f"({_join(parts[:middle], operator)} {operator} {_join(parts[middle:], operator)})"


def _scalar(value: Any, name: str) -> Scalar:
    """A value as SQLite binds it (true and false as 1 and 0), refused when it cannot be."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if value not in _INT64:
            raise _bad(f"an integer compared with '{name}' is beyond 64 bits (-2^63 to 2^63-1)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(f"a number compared with '{name}' is not finite")
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"a string compared with '{name}' is not valid Unicode") from None
        return value
    if value is None:
        return None
    raise _bad(f"'{name}' is compared with a {type(value).__name__}; use a string, number, bool")


def _require_object(value: Any, operator: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{operator} takes filter objects")
    return value


def _too_many_conditions() -> InvalidRequestError:
    return _bad(f"the filter has more than {MAX_FILTER_CONDITIONS} conditions")


def _too_many_values() -> InvalidRequestError:
    return _bad(f"the filter has more than {MAX_FILTER_VALUES} values")


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid filter: {message}.", param="filter", code="invalid_filter")
