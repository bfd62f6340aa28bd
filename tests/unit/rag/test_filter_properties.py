"""The filter language against a reference: any filter either compiles and selects exactly the
documents a plain-Python evaluator selects, or is refused with the filter's 400; never another
error, and never a statement SQLite itself rejects."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiplatform.engines.rag.database import json_text
from aiplatform.engines.rag.filters import (
    MAX_FILTER_CONDITIONS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_VALUES,
    compile_filter,
)
from aiplatform.errors import InvalidRequestError

# -- the reference ------------------------------------------------------------------------------


class RefusedError(Exception):
    """The reference's verdict that a filter is not in the language."""


_MISSING = object()
_FIELD = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_INT64 = range(-(1 << 63), 1 << 63)
_ORDER = {"$gt": (1,), "$gte": (0, 1), "$lt": (-1,), "$lte": (-1, 0)}


def reference_size(spec: Any, depth: int = 0) -> tuple[int, int]:
    """(conditions, values) of a valid filter; RefusedError for an invalid one."""
    if not isinstance(spec, dict):
        raise RefusedError("not an object")
    if depth > MAX_FILTER_DEPTH:
        raise RefusedError("too deep")
    conditions = values = 0
    for key, value in spec.items():
        if key in ("$and", "$or", "$not"):
            items = [value] if key == "$not" else value
            if not isinstance(items, list) or not items:
                raise RefusedError(key)
            conditions += 1
            for item in items:
                inner = reference_size(item, depth + 1)
                conditions, values = conditions + inner[0], values + inner[1]
        elif key.startswith("$") or not _FIELD.fullmatch(key):
            raise RefusedError(key)
        elif not isinstance(value, dict):
            _check_scalar(value)
            conditions, values = conditions + 1, values + 1
        elif not value:
            raise RefusedError("empty condition")
        else:
            for operator, operand in value.items():
                conditions += 1
                values += _operand_values(operator, operand)
    return conditions, values


def _operand_values(operator: str, operand: Any) -> int:
    if operator in ("$eq", "$ne", "$contains", *_ORDER):
        _check_scalar(operand)
        if operand is None and operator in _ORDER:
            raise RefusedError("null ordered")
        return 1
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise RefusedError(operator)
        for item in operand:
            _check_scalar(item)
        return len(operand)
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise RefusedError("$exists")
        return 0
    raise RefusedError(operator)


def _check_scalar(value: Any) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and value in _INT64:
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    if isinstance(value, str) and not any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return
    raise RefusedError(f"scalar {type(value).__name__}")


def reference_match(spec: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Whether ``metadata`` matches a valid ``spec``, as the language defines it."""
    for key, value in spec.items():
        if key == "$and" and not all(reference_match(item, metadata) for item in value):
            return False
        if key == "$or" and not any(reference_match(item, metadata) for item in value):
            return False
        if key == "$not" and reference_match(value, metadata):
            return False
        if not key.startswith("$") and not _field_match(metadata, key, value):
            return False
    return True


def _field_match(metadata: dict[str, Any], name: str, condition: Any) -> bool:
    raw = _lookup(metadata, name)
    value = None if raw is _MISSING else _sql(raw)
    if not isinstance(condition, dict):
        return _is(value, _sql(condition))
    return all(_operator(raw, value, op, operand) for op, operand in condition.items())


def _operator(raw: Any, value: Any, operator: str, operand: Any) -> bool:
    if operator in ("$eq", "$ne"):
        return _is(value, _sql(operand)) == (operator == "$eq")
    if operator in _ORDER:
        return value is not None and _compare(value, _sql(operand)) in _ORDER[operator]
    if operator in ("$in", "$nin"):
        found = value is not None and any(_equal(value, _sql(item)) for item in operand)
        return found == (operator == "$in")
    if operator == "$contains":
        return _contains(raw, operand)
    assert operator == "$exists"
    return bool((raw is not _MISSING) == operand)


def _contains(raw: Any, operand: Any) -> bool:
    """An array holding the value (an object's values, a scalar itself, as json_each walks)."""
    if raw is _MISSING:
        return False
    members = raw if isinstance(raw, list) else raw.values() if isinstance(raw, dict) else [raw]
    return any(_is(_sql(member), _sql(operand)) for member in members)


def _lookup(metadata: Any, name: str) -> Any:
    for part in name.split("."):
        if not isinstance(metadata, dict) or part not in metadata:
            return _MISSING
        metadata = metadata[part]
    return metadata


def _sql(value: Any) -> Any:
    """A JSON value as SQLite's JSON functions hand it to SQL."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value not in _INT64:
        return float(value)
    if isinstance(value, list | dict):
        return json_text(value)
    return value


def _is(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is right
    return _equal(left, right)


def _equal(left: Any, right: Any) -> bool:
    return left is not None and right is not None and _compare(left, right) == 0


def _compare(left: Any, right: Any) -> int:
    """SQLite's order of two non-null values: numbers, then text (by code point)."""
    left_rank, right_rank = isinstance(left, str), isinstance(right, str)
    if left_rank != right_rank:
        return -1 if right_rank else 1
    return int(left > right) - int(left < right)


# -- generated metadata and filters ----------------------------------------------------------------

KEYS = ("a", "b", "tags", "n")
INTS = st.sampled_from([0, 1, -1, 2, 7, (1 << 53) + 1, (1 << 63) - 1, -(1 << 63)]) | st.integers(
    -5, 5
)
# floats SQLite's JSON parser reads back exactly
FLOATS = st.sampled_from([0.5, -2.25, 1.0, 7.0, 1e15, -1e-3, 2.5e100, 0.1])
TEXT = st.text(alphabet=st.sampled_from("abAZ é☃\U0001f600[{\"'\\"), max_size=4)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "a": SCALARS,
        "b": SCALARS | st.lists(SCALARS, max_size=3),
        "tags": st.lists(SCALARS, max_size=4) | SCALARS,
        "n": st.fixed_dictionaries({}, optional={"a": SCALARS, "b": SCALARS}),
    },
)
FIELDS = st.sampled_from([*KEYS, "n.a", "n.b", "a.x", "missing"])
ORDERED = st.booleans() | INTS | FLOATS | TEXT


def _operator_condition(operator: str) -> st.SearchStrategy[dict[str, Any]]:
    if operator in ("$in", "$nin"):
        operand: st.SearchStrategy[Any] = st.lists(SCALARS, min_size=1, max_size=4)
    elif operator == "$exists":
        operand = st.booleans()
    elif operator in _ORDER:
        operand = ORDERED
    else:
        operand = SCALARS
    return operand.map(lambda value: {operator: value})


OPERATOR_CONDITION = st.sampled_from(
    ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$exists"]
).flatmap(_operator_condition)
CONDITION = SCALARS | st.lists(OPERATOR_CONDITION, min_size=1, max_size=2).map(
    lambda parts: {key: value for part in parts for key, value in part.items()}
)
FIELD_FILTER = st.dictionaries(FIELDS, CONDITION, max_size=3)
FILTERS = st.recursive(
    FIELD_FILTER,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"$and": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$or": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$not": inner}),
        st.tuples(inner, inner).map(lambda pair: {**pair[0], **pair[1]}),
    ),
    max_leaves=12,
)
# pieces outside the language: values SQLite cannot take, wrong shapes, unknown names
BAD_SCALARS = st.sampled_from(
    [1 << 63, -(1 << 63) - 1, 1 << 64, 10**30, math.inf, -math.inf, math.nan, "\ud800x"]
)
FAULTS = st.one_of(
    st.tuples(FIELDS, BAD_SCALARS),
    st.tuples(
        FIELDS,
        st.sampled_from(["$eq", "$gt", "$in", "$contains"]).flatmap(
            lambda op: BAD_SCALARS.map(lambda bad: {op: [bad] if op == "$in" else bad})
        ),
    ),
    st.tuples(
        FIELDS,
        st.sampled_from(
            [
                {},
                {"$in": []},
                {"$in": "x"},
                {"$gt": None},
                [1],
                {"$regex": "x"},
                {"$exists": 1},
                {"$eq": {"x": 1}},
            ]
        ),
    ),
    st.tuples(
        st.sampled_from(["bad field", "a..b", "é", "$where", "$or", "$and", "$not"]),
        st.sampled_from([1, [], [1], {}, "x"]),
    ),
)


def _with_fault(spec: dict[str, Any], fault: tuple[str, Any], nest: bool) -> Any:
    broken = {**spec, fault[0]: fault[1]}
    return {"$or": [spec, broken]} if nest else broken


INVALID_FILTERS: st.SearchStrategy[Any] = st.builds(
    _with_fault, FILTERS, FAULTS, st.booleans()
) | st.sampled_from([[], "a", 1, None])


@pytest.fixture(scope="module")
def database() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    connection.execute("CREATE TABLE d (pk INTEGER PRIMARY KEY, metadata TEXT NOT NULL)")
    yield connection
    connection.close()


def _selected(database: sqlite3.Connection, spec: Any, rows: list[dict[str, Any]]) -> set[int]:
    database.execute("DELETE FROM d")
    database.executemany(
        "INSERT INTO d (pk, metadata) VALUES (?, ?)",
        [(pk, json_text(metadata)) for pk, metadata in enumerate(rows)],
    )
    sql, params = compile_filter(spec, "d.metadata")
    return {row[0] for row in database.execute(f"SELECT pk FROM d WHERE {sql}", params)}


def _verdict(spec: Any) -> bool:
    """Whether the reference accepts ``spec`` (the language and its bounds)."""
    try:
        conditions, values = reference_size(spec)
    except RefusedError:
        return False
    return conditions <= MAX_FILTER_CONDITIONS and values <= MAX_FILTER_VALUES


PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(spec=FILTERS | INVALID_FILTERS, rows=st.lists(METADATA, min_size=1, max_size=6))
def test_a_filter_selects_what_the_reference_selects_or_is_refused(
    database: sqlite3.Connection, spec: Any, rows: list[dict[str, Any]]
) -> None:
    if not _verdict(spec):
        with pytest.raises(InvalidRequestError) as refused:
            _selected(database, spec, rows)
        assert (refused.value.param, refused.value.code) == ("filter", "invalid_filter")
        return
    selected = _selected(database, spec, rows)
    expected = {pk for pk, metadata in enumerate(rows) if reference_match(spec, metadata)}
    assert selected == expected


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    width=st.integers(1, 1200),
    depth=st.integers(0, MAX_FILTER_DEPTH + 2),
    shape=st.sampled_from(["$or", "$and", "$in", "keys", "$not"]),
)
def test_large_and_deep_filters_compile_to_sql_sqlite_accepts_or_are_refused(
    width: int, depth: int, shape: str
) -> None:
    """The bounds keep every accepted filter inside SQLite's own limits (expression depth,
    parser stack): SQLite never refuses what the parser accepted."""
    if shape == "$in":
        spec: dict[str, Any] = {"a": {"$in": list(range(width))}}
    elif shape == "keys":
        spec = {f"k{i}": {"$gt": i} for i in range(width)}
    elif shape == "$not":
        spec = {"a": 1}
        for _ in range(width % 40):
            spec = {"$not": spec}
    else:
        spec = {shape: [{"a": i} for i in range(width)]}
    for level in range(depth):
        spec = {"$or" if level % 2 else "$and": [spec, {"b": {"$ne": level}}]}
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE d (metadata TEXT)")
    database.execute("INSERT INTO d VALUES (?)", (json_text({"a": 1, "b": 2}),))
    if not _verdict(spec):
        with pytest.raises(InvalidRequestError) as refused:
            compile_filter(spec, "metadata")
        assert refused.value.param == "filter"
        return
    sql, params = compile_filter(spec, "metadata")
    rows = database.execute(f"SELECT 1 FROM d WHERE {sql}", params).fetchall()
    assert len(rows) == int(reference_match(spec, {"a": 1, "b": 2}))


# -- the cases that were server errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"a": 1 << 63},
        {"a": {"$gt": -(1 << 63) - 1}},
        {"a": {"$in": [1, 1 << 64]}},
        {"a": {"$contains": 10**30}},
        {"a": math.nan},
        {"a": {"$lt": math.inf}},
        {"a": "\ud800"},
        {"$or": [{"a": i} for i in range(MAX_FILTER_CONDITIONS + 1)]},
        {"$and": [{"a": {"$ne": i}} for i in range(MAX_FILTER_CONDITIONS)]},
        {"a": {"$in": list(range(MAX_FILTER_VALUES + 1))}},
        {f"k{i}": i for i in range(MAX_FILTER_VALUES + 1)},
    ],
    ids=[
        "int-2^63",
        "int-below-int64",
        "int-2^64-in-list",
        "huge-int-contains",
        "nan",
        "infinity",
        "lone-surrogate",
        "or-too-wide",
        "and-too-wide",
        "in-too-long",
        "too-many-keys",
    ],
)
def test_values_and_sizes_sqlite_cannot_take_are_the_filters_400(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        compile_filter(spec, "metadata")
    assert (caught.value.param, caught.value.code) == ("filter", "invalid_filter")
    assert caught.value.status_code == 400


def test_a_thousand_conditions_run_on_sqlite() -> None:
    """Each key is a condition; joined flat, 1000 of them passed SQLite's depth limit."""
    spec = {f"k{i}": {"$ne": i} for i in range(MAX_FILTER_CONDITIONS)}
    sql, params = compile_filter(spec, "metadata")
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE d (metadata TEXT)")
    database.execute("INSERT INTO d VALUES ('{}')")
    assert database.execute(f"SELECT count(*) FROM d WHERE {sql}", params).fetchone() == (1,)
