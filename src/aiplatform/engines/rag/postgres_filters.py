"""Metadata filters (:mod:`~aiplatform.engines.rag.filters`) compiled to PostgreSQL, selecting
exactly what the SQLite store selects.

A document's metadata is kept twice: as ``jsonb`` (``fields``: fast to navigate and compare)
and as ``json`` (``metadata``: the exact text the SQLite store keeps, ``json_text`` of the
value). Filters read the ``jsonb``, and the ``json`` only where SQLite's semantics need the text
of an array or object (compared with a string that starts with ``[`` or ``{``).

SQLite's rules, kept here: a missing field and a JSON null are both NULL; true and false are the
numbers 1 and 0; numbers order before strings; strings (and the JSON text of arrays and
objects) compare by code point (``COLLATE "C"``); ``$contains`` looks at an array's items, an
object's values, or a scalar itself. The operand's type is known when the filter compiles, so
each comparison becomes a few plain tests on ``jsonb_typeof`` and a ``jsonb`` comparison of its
own type (numbers compare as numbers there). Every value is a parameter; field names, checked
by the language's pattern, are spliced as literals.

One difference remains, beyond anything the language is meant for: numbers compare as exact
decimals, whereas SQLite reads integers beyond 64 bits as doubles and compares an integer with
a double by the double's binary value, so an integer and a float that differ only past 2^53 may
compare differently.

PostgreSQL cannot keep the character U+0000 in text or ``jsonb``: the store refuses metadata
that holds it, so no stored string holds it, and a filter's string that does is compared by
what precedes it (it can equal nothing, and orders just after that prefix).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from aiplatform.engines.rag.database import json_text
from aiplatform.engines.rag.filters import compile_filter

__all__ = ["compile_postgres_filter"]

_ORDERINGS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "$gt": (">", operator.gt),
    "$gte": (">=", operator.ge),
    "$lt": ("<", operator.lt),
    "$lte": ("<=", operator.le),
}
#: The first character of the JSON text of an array and of an object, with their jsonb types.
_CONTAINERS = (("[", "array"), ("{", "object"))
#: Strings and the JSON text of arrays and objects: all of them order after every number.
_TEXTUAL = "('string', 'array', 'object')"
_NUMERIC = "('number', 'boolean')"
#: Values of one ``$in`` looked up in the GIN index one by one, at most.
_MAX_LOOKUPS = 64


def compile_postgres_filter(
    spec: dict[str, Any], fields: str, metadata: str
) -> tuple[str, list[Any]]:
    """A SQL condition (never NULL) on the ``jsonb`` column ``fields`` and the ``json`` column
    ``metadata`` holding the same metadata, and its parameters (psycopg's ``%s``); the same 400
    as the SQLite store for a filter outside the language or its bounds."""
    compile_filter(spec, "metadata")  # the language's checks, bounds and errors, in one place
    compiler = _Compiler(fields, metadata)
    condition = compiler.object(spec)
    lookups = [
        "("
        + " OR ".join(f"{fields} @> {compiler.bind(json_text(value))}::jsonb" for value in any_of)
        + ")"
        for any_of in _containments(spec)
    ]
    return " AND ".join([condition, *lookups]), compiler.params


def _containments(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Containment tests (``fields @> {...}``) that every match passes: for each equality the
    filter requires (outside ``$or`` and ``$not``), the objects one of which the metadata
    contains. They add nothing to the condition but let PostgreSQL find the candidates through
    the GIN index on ``fields`` instead of reading every document of the collection."""
    required: list[list[dict[str, Any]]] = []
    for key, value in spec.items():
        if key == "$and":
            for item in value:
                required += _containments(item)
        elif not key.startswith("$"):
            conditions = value if isinstance(value, dict) else {"$eq": value}
            for op, operand in conditions.items():
                equal = [operand] if op == "$eq" else operand if op == "$in" else None
                alternatives = _equal_values(equal) if equal is not None else None
                if alternatives:
                    required.append([_nested(key, item) for item in alternatives])
    return required


def _equal_values(operands: list[Any]) -> list[Any] | None:
    """The JSON values a field equal to one of ``operands`` holds (true for 1, false for 0);
    None when one cannot be found by containment (null, or the text of an array or object)
    or there are too many to look up one by one."""
    values: list[Any] = []
    for operand in operands:
        if operand is None or (isinstance(operand, str) and _container_text(operand)):
            return None
        if isinstance(operand, str):
            if "\x00" not in operand:  # equal to nothing stored
                values.append(operand)
            continue
        number = _number(operand)
        values.append(number)
        values += [bit == 1 for _, bit in _BOOLEANS if bit == number]
    return values if len(values) <= _MAX_LOOKUPS else None


def _nested(name: str, value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for the field ``a.b``."""
    for part in reversed(name.split(".")):
        value = {part: value}
    result: dict[str, Any] = value
    return result


class _Compiler:
    def __init__(self, fields: str, metadata: str) -> None:
        self.fields = fields
        self.metadata = metadata
        self.params: list[Any] = []

    def object(self, spec: dict[str, Any]) -> str:
        parts = []
        for key, value in spec.items():
            if key in ("$and", "$or"):
                items = [self.object(item) for item in value]
                parts.append(_join(items, key[1:].upper()))
            elif key == "$not":
                parts.append(f"NOT {self.object(value)}")
            else:
                parts.append(self.field(key, value))
        return _join(parts, "AND") if parts else "TRUE"

    def field(self, name: str, condition: Any) -> str:
        field = _Field(name, self.fields, self.metadata)
        if not isinstance(condition, dict):
            return self.equals(field, condition)
        return _join(
            [self.condition(field, op, operand) for op, operand in condition.items()], "AND"
        )

    def condition(self, field: _Field, op: str, operand: Any) -> str:
        if op == "$eq":
            return self.equals(field, operand)
        if op == "$ne":
            return f"NOT {self.equals(field, operand)}"
        if op in _ORDERINGS:
            return self.ordered(field, op, operand)
        if op in ("$in", "$nin"):
            found = self.any_of(field, operand)
            return f"NOT {found}" if op == "$nin" else found
        if op == "$contains":
            return self.contains(field, operand)
        assert op == "$exists"  # compile_filter refused every other
        return f"({field.value} IS {'NOT ' if operand else ''}NULL)"

    # -- equality --------------------------------------------------------------------------

    def equals(self, field: _Field, operand: Any) -> str:
        """``field IS operand`` as SQLite has it (null: missing or null)."""
        if operand is None:
            return f"(coalesce(jsonb_typeof({field.value}), 'null') = 'null')"
        tests = self.equal_scalar(field.value, operand)
        if isinstance(operand, str) and _container_text(operand) and "\x00" not in operand:
            tests.append(f"({field.text_of_json} = {self.bind(operand)})")
        return _never_null(tests)

    def equal_scalar(self, value: str, operand: Any) -> list[str]:
        """Tests (any may hold) that the ``jsonb`` ``value`` equals the non-null ``operand``
        as a number, a boolean or a string (not as the text of an array or object)."""
        if isinstance(operand, str):
            if "\x00" in operand:
                return []  # no stored string holds U+0000
            return [f"{value} = {self.bind(json_text(operand))}::jsonb"]
        number = _number(operand)
        tests = [f"{value} = {self.bind(json_text(number))}::jsonb"]
        tests.extend(f"{value} = '{literal}'::jsonb" for literal, bit in _BOOLEANS if bit == number)
        return tests

    def any_of(self, field: _Field, operands: list[Any]) -> str:
        """``$in``: equal to one of the operands (null never is)."""
        scalars = [
            json_text(item if isinstance(item, str) else _number(item))
            for item in operands
            if item is not None and not (isinstance(item, str) and "\x00" in item)
        ]
        if not scalars:
            return "FALSE"
        tests = [f"{field.value} = ANY({self.bind(scalars)}::jsonb[])"]
        numbers = {
            _number(item) for item in operands if item is not None and not isinstance(item, str)
        }
        tests.extend(
            f"{field.value} = '{literal}'::jsonb" for literal, bit in _BOOLEANS if bit in numbers
        )
        texts = [
            item
            for item in operands
            if isinstance(item, str) and _container_text(item) and "\x00" not in item
        ]
        if texts:
            tests.append(f"{field.text_of_json} = ANY({self.bind(texts)}::text[])")
        return _never_null(tests)

    def contains(self, field: _Field, operand: Any) -> str:
        """An array item, an object value, or the scalar itself equal to ``operand``."""
        if isinstance(operand, str) and "\x00" in operand:
            return "FALSE"  # no stored string holds U+0000
        value = field.value
        items = (
            f"CASE WHEN {value} IS NULL OR jsonb_typeof({value}) = 'object' THEN '[]'::jsonb "
            f"WHEN jsonb_typeof({value}) = 'array' THEN {value} ELSE jsonb_build_array({value}) END"
        )
        values = f"CASE WHEN jsonb_typeof({value}) = 'object' THEN {value} ELSE '{{}}'::jsonb END"
        found = [
            f"EXISTS (SELECT 1 FROM jsonb_array_elements({items}) AS i(e) "
            f"WHERE {self.member_equals(operand)})",
            f"EXISTS (SELECT 1 FROM jsonb_each({values}) AS v(k, e) "
            f"WHERE {self.member_equals(operand)})",
        ]
        if isinstance(operand, str) and _container_text(operand):
            found += self.contained_text(field.json, operand)
        return "(" + " OR ".join(found) + ")"

    def member_equals(self, operand: Any) -> str:
        """The ``jsonb`` member ``e`` equals ``operand`` (with its own parameters)."""
        if operand is None:
            return "jsonb_typeof(e) = 'null'"
        return " OR ".join(self.equal_scalar("e", operand))

    def contained_text(self, raw: str, operand: str) -> list[str]:
        """Tests that an item or value of the ``json`` ``raw`` is an array or object whose exact
        text is ``operand``."""
        items = f"CASE WHEN json_typeof({raw}) = 'array' THEN {raw} ELSE '[]'::json END"
        values = f"CASE WHEN json_typeof({raw}) = 'object' THEN {raw} ELSE '{{}}'::json END"
        return [
            f"EXISTS (SELECT 1 FROM json_array_elements({items}) AS ji(e) "
            f"WHERE e::text = {self.bind(operand)})",
            f"EXISTS (SELECT 1 FROM json_each({values}) AS jv(k, e) "
            f"WHERE e::text = {self.bind(operand)})",
        ]

    # -- order -------------------------------------------------------------------------------

    def ordered(self, field: _Field, op: str, operand: Any) -> str:
        """``field <op> operand`` for a non-null operand: numbers (and booleans as 1 and 0)
        by value, before every string, array and object; those by their text's code points."""
        if isinstance(operand, str):
            return self.ordered_text(field, *_ORDERINGS[op], operand)
        sql_op, holds = _ORDERINGS[op]
        value, number = field.value, _number(operand)
        mark = self.bind(json_text(number))
        tests = [f"(jsonb_typeof({value}) = 'number' AND {value} {sql_op} {mark}::jsonb)"]
        tests += [
            f"{value} = '{literal}'::jsonb" for literal, bit in _BOOLEANS if holds(bit, number)
        ]
        if sql_op[0] == ">":
            tests.append(f"jsonb_typeof({value}) IN {_TEXTUAL}")
        return _never_null(tests)

    def ordered_text(
        self, field: _Field, sql_op: str, holds: Callable[[Any, Any], bool], operand: str
    ) -> str:
        if "\x00" in operand:
            # no stored text equals it; it sorts right after the part before U+0000
            operand = operand[: operand.index("\x00")]
            sql_op, holds = (">", operator.gt) if sql_op[0] == ">" else ("<=", operator.le)
        value = field.value
        text = f'{field.text} COLLATE "C" {sql_op} {self.bind(operand)}'
        tests = [f"(jsonb_typeof({value}) = 'string' AND {text})"]
        if sql_op[0] == "<":
            tests.append(f"jsonb_typeof({value}) IN {_NUMERIC}")
        for opener, kind in _CONTAINERS:
            if operand.startswith(opener):
                json = f'{field.text_of_json} COLLATE "C" {sql_op} {self.bind(operand)}'
                tests.append(f"(jsonb_typeof({value}) = '{kind}' AND {json})")
            elif holds(opener, operand):  # decided by the first character alone
                tests.append(f"jsonb_typeof({value}) = '{kind}'")
        return _never_null(tests)

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "%s"


class _Field:
    """The SQL that reads one metadata field (``a.b``: the field ``b`` of the object ``a``)."""

    def __init__(self, name: str, fields: str, metadata: str) -> None:
        keys = [f"'{part}'" for part in name.split(".")]  # the field pattern admits no quote
        path = "".join(f" -> {key}" for key in keys[:-1])
        #: The value as ``jsonb``; SQL NULL when missing (a JSON null is ``'null'``).
        self.value = f"({fields}{path} -> {keys[-1]})"
        #: A string value's text.
        self.text = f"({fields}{path} ->> {keys[-1]})"
        #: The value as ``json``: its exact text as stored.
        self.json = f"({metadata}{path} -> {keys[-1]})"
        #: That text (an array's or object's as SQLite reads it).
        self.text_of_json = f"({self.json}::text)"


_BOOLEANS = (("true", 1), ("false", 0))


def _number(operand: Any) -> int | float:
    """A non-null, non-string operand as SQLite binds it (true and false as 1 and 0)."""
    number: int | float = int(operand) if isinstance(operand, bool) else operand
    return number


def _container_text(operand: str) -> bool:
    """Whether the text of an array or object could equal (or share a first character with)
    ``operand``."""
    return operand.startswith(("[", "{"))


def _never_null(tests: list[str]) -> str:
    if not tests:
        return "FALSE"
    return f"coalesce({' OR '.join(tests)}, FALSE)"


def _join(parts: list[str], operator_: str) -> str:
    return "(" + f" {operator_} ".join(parts) + ")"
