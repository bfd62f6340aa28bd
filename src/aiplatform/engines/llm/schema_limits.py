"""Bounds on the JSON schemas a request may carry (``response_format`` and tool parameters).

A schema becomes a llama.cpp grammar that spells out every repetition: ``{"type": "array",
"minItems": 10000000}`` is a 170 MB grammar, and ``1e9`` would be ~17 GB. The fake backend builds
the smallest instance of the schema, and jsonschema walks it recursively; both have their own
way to run out of memory or stack. So every schema is measured when the request is read, before
any backend sees it, with an iterative walk (no recursion of its own), and refused with a 400
naming the field when it passes one of the limits below.

The grammar estimate is an upper bound on the length of llama.cpp's grammar for the schema
(``tests/unit/test_schema_limits.py`` checks it against the real converter), so an accepted
schema never builds a grammar beyond :data:`MAX_GRAMMAR_BYTES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiplatform.errors import InvalidRequestError

__all__ = [
    "MAX_ENUM_VALUES",
    "MAX_GRAMMAR_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_OBJECT_PROPERTIES",
    "MAX_PATTERN_LENGTH",
    "MAX_PROPERTIES",
    "MAX_REPETITION",
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_NODES",
    "MAX_SMALLEST_OUTPUT",
    "SchemaSize",
    "check_limits",
    "check_total",
    "measure",
]

#: Objects and arrays nested in the schema document (``{"items": {...}}`` is two levels).
MAX_SCHEMA_DEPTH = 32
#: JSON values in the whole schema document: objects, arrays, strings, numbers.
MAX_SCHEMA_NODES = 20_000
#: Largest ``minItems``, ``maxItems``, ``minLength``, ``maxLength``, ``minProperties``,
#: ``maxProperties``, ``minContains``, ``maxContains``, and ``{m,n}`` count in a ``pattern``.
MAX_REPETITION = 10_000
#: Items and characters in the smallest document the schema allows: ``minItems`` and
#: ``minLength`` multiplied through nested arrays.
MAX_SMALLEST_OUTPUT = 10_000
#: Properties of one object (llama.cpp's rule for optional properties grows with their cube).
MAX_OBJECT_PROPERTIES = 128
#: Properties over the whole schema (``allOf`` parts counted in the object they merge into).
MAX_PROPERTIES = 1024
#: ``enum`` values plus ``const`` over the whole schema.
MAX_ENUM_VALUES = 1024
#: Characters of a property name (grammar rule names are built from them).
MAX_NAME_LENGTH = 256
#: Characters of a ``pattern``.
MAX_PATTERN_LENGTH = 1_000
#: The grammar the schema becomes on llama.cpp, in bytes (estimated before it is built).
MAX_GRAMMAR_BYTES = 1 << 20

_REPETITION_KEYS = (
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)
_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
#: Grammar bytes of one rule, beyond its name; and of one repetition, beyond the item's name.
_RULE_BYTES = 48
_REPEAT_BYTES = 24
#: llama.cpp's rules for JSON values, strings, numbers: added once to any grammar that uses them.
_PRIMITIVE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class SchemaSize:
    """What a schema costs; sizes of several schemas add up when one grammar holds them all."""

    properties: int = 0
    enum_values: int = 0
    grammar_bytes: int = 0

    def __add__(self, other: SchemaSize) -> SchemaSize:
        return SchemaSize(
            self.properties + other.properties,
            self.enum_values + other.enum_values,
            self.grammar_bytes + other.grammar_bytes,
        )


class _TooLargeError(Exception):
    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a value sits: its key under its parent (a linked path, rendered only on error)."""

    parent: _Place | None
    key: str

    def pointer(self) -> str:
        keys: list[str] = []
        place: _Place | None = self
        while place is not None and place.parent is not None:
            keys.append(place.key.replace("~", "~0").replace("/", "~1"))
            place = place.parent
        return "/" + "/".join(reversed(keys)) if keys else "the top level"


def check_limits(schema: Any, param: str, *, prefix: int = 0) -> SchemaSize:
    """Measure ``schema`` and refuse it, naming ``param``, when it passes a limit."""
    try:
        size = measure(schema, prefix=prefix)
    except _TooLargeError as exc:
        raise _refusal(param, f"at {exc.where}, {exc.message}") from None
    check_total(size, param)
    return size


def check_total(size: SchemaSize, param: str) -> None:
    """Refuse a schema (or several held by one grammar) whose totals pass the limits."""
    if size.properties > MAX_PROPERTIES:
        raise _refusal(param, f"it has more than {MAX_PROPERTIES} properties in all")
    if size.enum_values > MAX_ENUM_VALUES:
        raise _refusal(param, f"it has more than {MAX_ENUM_VALUES} enum and const values")
    if size.grammar_bytes > MAX_GRAMMAR_BYTES:
        raise _refusal(
            param,
            f"its grammar would be about {size.grammar_bytes} bytes, above the limit of "
            f"{MAX_GRAMMAR_BYTES} (lower minItems/maxItems/maxLength or split the schema)",
        )


def measure(schema: Any, *, prefix: int = 0) -> SchemaSize:
    """The size of ``schema``; raises ``_TooLargeError`` at the first value past a per-node limit.

    ``prefix``: the length of the name its grammar rules start with when the schema sits inside
    another (a tool's parameters are ``alternative-N-arguments`` of the call's grammar).

    The walk is iterative and stops as soon as a total is passed, so its own work is bounded by
    the limits, not by the document.
    """
    stack = [_Node(schema, _Place(None, ""), _SCHEMA, 1, 4 + prefix, 1)]
    nodes = properties = enum_values = 0
    grammar = _PRIMITIVE_BYTES
    while stack:
        node = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise _TooLargeError(f"it has more than {MAX_SCHEMA_NODES} values", "the top level")
        value = node.value
        if node.kind == _CONSTANT:  # a literal of the grammar: about its JSON length, escaped
            grammar += 8 + (3 * len(value) if isinstance(value, str) else 24)
        if not isinstance(value, dict | list):
            continue
        if nodes + len(stack) + len(value) > MAX_SCHEMA_NODES:
            raise _TooLargeError(f"it has more than {MAX_SCHEMA_NODES} values", "the top level")
        if node.depth > MAX_SCHEMA_DEPTH:
            raise _TooLargeError(
                f"it is nested more than {MAX_SCHEMA_DEPTH} objects and arrays deep",
                node.place.pointer(),
            )
        if node.kind == _SCHEMA and isinstance(value, dict):
            cost, items_repeat, size = _schema_node(value, node, schema)
            grammar += cost
            properties += size.properties
            enum_values += size.enum_values
            if (
                properties > MAX_PROPERTIES
                or enum_values > MAX_ENUM_VALUES
                or grammar > MAX_GRAMMAR_BYTES
            ):
                break  # check_total names it
            stack.extend(_schema_children(value, node, items_repeat))
        else:
            kind = _SCHEMA if node.kind in (_MAP, _SCHEMAS) else node.kind
            entries = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in entries:
                name = node.name + min(len(str(key)), MAX_NAME_LENGTH) + 1
                place = _Place(node.place, str(key))
                stack.append(_Node(child, place, kind, node.depth + 1, name, node.repeat))
    return SchemaSize(properties, enum_values, grammar)


#: What a value is to the grammar: a schema, a map of names to schemas, a list of schemas,
#: a constant (``enum``, ``const``) or data the grammar never reads (``default``, ...).
_SCHEMA, _MAP, _SCHEMAS, _CONSTANT, _DATA = range(5)
_KEYWORD_KINDS = {
    **dict.fromkeys(
        ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas"), _MAP
    ),
    **dict.fromkeys(("allOf", "anyOf", "oneOf", "prefixItems"), _SCHEMAS),
    **dict.fromkeys(
        (
            "items",
            "additionalItems",
            "additionalProperties",
            "unevaluatedItems",
            "unevaluatedProperties",
            "contains",
            "propertyNames",
            "not",
            "if",
            "then",
            "else",
            "contentSchema",
        ),
        _SCHEMA,
    ),
    **dict.fromkeys(("enum", "const"), _CONSTANT),
}


@dataclass(frozen=True, slots=True)
class _Node:
    value: Any
    place: _Place
    kind: int
    depth: int
    #: length of the grammar rule's name (built from the path)
    name: int
    #: how many times the smallest document the schema allows holds this value
    repeat: int


def _schema_node(value: dict[str, Any], node: _Node, root: Any) -> tuple[int, int, SchemaSize]:
    """One schema object's own grammar bytes, the repeat of its items, and its counts."""
    grammar = _RULE_BYTES + node.name
    items_repeat = node.repeat
    for key in _REPETITION_KEYS:
        count = _count(value.get(key), key, node.place)
        if key in ("minItems", "minLength") and count * node.repeat > MAX_SMALLEST_OUTPUT:
            raise _TooLargeError(
                f"the smallest document it allows has more than {MAX_SMALLEST_OUTPUT} "
                f"items or characters ({key} multiplied through nested arrays)",
                node.place.pointer(),
            )
        if key == "minItems":
            items_repeat = node.repeat * max(count, 1)
        per_item = 10 if key in ("minLength", "maxLength") else node.name + _REPEAT_BYTES
        grammar += count * per_item
    grammar += _pattern_bytes(value.get("pattern"), node.name, node.place)
    enum = value.get("enum")
    enum_values = (len(enum) if isinstance(enum, list) else 0) + ("const" in value)
    properties = 0
    own = _own_properties(value, root, node.place)
    if own is not None:
        names, optional = own
        own_names = value.get("properties")
        properties = len(own_names) if isinstance(own_names, dict) else 0
        longest = max(len(key) for key in names)
        per_name = node.name + longest + _RULE_BYTES
        grammar += (3 * len(names) + 3 * optional) * per_name
    return grammar, items_repeat, SchemaSize(properties, enum_values, 0)


def _schema_children(value: dict[str, Any], node: _Node, items_repeat: int) -> list[_Node]:
    children = []
    for key, child in value.items():
        kind = _KEYWORD_KINDS.get(key, _DATA)
        if kind == _SCHEMA and isinstance(child, list):
            kind = _SCHEMAS  # items as a list of schemas (older drafts)
        name = node.name + min(len(key), MAX_NAME_LENGTH) + 1
        repeat = items_repeat if key == "items" else node.repeat
        children.append(_Node(child, _Place(node.place, key), kind, node.depth + 1, name, repeat))
    return children


def _count(value: Any, key: str, place: _Place) -> int:
    """A repetition keyword's value, refused above :data:`MAX_REPETITION`; 0 when absent or
    not a number (jsonschema then says what is wrong with it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if value > MAX_REPETITION:
        raise _TooLargeError(f"{key} is above the limit of {MAX_REPETITION}", place.pointer())
    return max(int(value), 0)


def _pattern_bytes(pattern: Any, name: int, place: _Place) -> int:
    if not isinstance(pattern, str):
        return 0
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _TooLargeError(
            f"the pattern is longer than {MAX_PATTERN_LENGTH} characters", place.pointer()
        )
    counts = 0
    for match in _COUNT.finditer(pattern):
        low, high = match.group(1), match.group(2)
        digits = max(len(low), len(high or ""))
        count = max(int(low), int(high or 0)) if digits <= 6 else MAX_REPETITION + 1
        if count > MAX_REPETITION:
            raise _TooLargeError(
                f"a count in the pattern is above the limit of {MAX_REPETITION}", place.pointer()
            )
        counts += count
    return 8 * len(pattern) + counts * (name + _REPEAT_BYTES)


def _own_properties(
    schema: dict[str, Any], root: Any, place: _Place
) -> tuple[list[str], int] | None:
    """The names of the properties one object rule holds, and how many are optional.

    ``allOf`` parts (and the local ``$ref`` targets they name) merge into one object on
    llama.cpp, so their properties count as this object's.
    """
    names: list[str] = []
    required: set[str] = set()
    parts = [schema]
    every = schema.get("allOf")
    for part in every if isinstance(every, list) else ():
        if isinstance(part, dict) and isinstance(part.get("anyOf"), list):
            parts.extend(_resolve(item, root) for item in part["anyOf"])
        else:
            parts.append(_resolve(part, root))
    for part in parts:
        if not isinstance(part, dict):
            continue
        props = part.get("properties")
        if isinstance(props, dict):
            names.extend(str(key) for key in props)
        listed = part.get("required")
        if isinstance(listed, list):
            required.update(str(key) for key in listed)
    if not names:
        return None
    if len(names) > MAX_OBJECT_PROPERTIES:
        raise _TooLargeError(
            f"one object has more than {MAX_OBJECT_PROPERTIES} properties", place.pointer()
        )
    for key in names:
        if len(key) > MAX_NAME_LENGTH:
            raise _TooLargeError(
                f"a property name is longer than {MAX_NAME_LENGTH} characters", place.pointer()
            )
    optional = sum(1 for key in names if key not in required)
    return names, optional


def _resolve(part: Any, root: Any) -> Any:
    """A local ``$ref`` (``#/$defs/x``) followed one step; anything else as it is."""
    if not isinstance(part, dict) or not isinstance(part.get("$ref"), str):
        return part
    ref: str = part["$ref"]
    if not ref.startswith("#/"):
        return part
    target: Any = root
    for escaped in ref[2:].split("/"):
        key = escaped.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            return part
    return target


def _refusal(param: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The JSON schema in {param} is too large: {reason}.",
        param=param,
        code="schema_too_large",
    )
