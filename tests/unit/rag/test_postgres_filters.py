"""The filter language on PostgreSQL selects exactly what the reference (and so the SQLite
store) selects, or is refused with the same 400."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiplatform.engines.rag.database import json_text
from aiplatform.engines.rag.postgres_filters import compile_postgres_filter
from aiplatform.errors import InvalidRequestError
from tests.unit.auth_store.postgres_server import postgres_server
from tests.unit.rag.test_filter_properties import (
    FILTERS,
    INVALID_FILTERS,
    METADATA,
    PROPERTY,
    _verdict,
    reference_match,
)


@pytest.fixture(scope="module")
def database() -> Iterator[psycopg.Connection[Any]]:
    with postgres_server() as url, psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE d (pk integer PRIMARY KEY, metadata json, fields jsonb)")
        yield connection


def selected(database: psycopg.Connection[Any], spec: Any, rows: list[dict[str, Any]]) -> set[int]:
    condition, params = compile_postgres_filter(spec, "d.fields", "d.metadata")
    with database.transaction():
        database.execute("DELETE FROM d")
        with database.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO d (pk, metadata, fields) VALUES (%s, %s::json, %s::jsonb)",
                [(pk, json_text(row), json_text(row)) for pk, row in enumerate(rows)],
            )
        found = database.execute(f"SELECT pk FROM d WHERE {condition}", params).fetchall()
    return {row[0] for row in found}


@PROPERTY
@given(spec=FILTERS | INVALID_FILTERS, rows=st.lists(METADATA, min_size=1, max_size=6))
def test_a_filter_selects_what_the_reference_selects_or_is_refused(
    database: psycopg.Connection[Any], spec: Any, rows: list[dict[str, Any]]
) -> None:
    if not _verdict(spec):
        with pytest.raises(InvalidRequestError) as refused:
            selected(database, spec, rows)
        assert (refused.value.param, refused.value.code) == ("filter", "invalid_filter")
        return
    expected = {pk for pk, metadata in enumerate(rows) if reference_match(spec, metadata)}
    assert selected(database, spec, rows) == expected


ROWS: list[dict[str, Any]] = [
    {"a": "x"},
    {"a": "x\x01"},
    {"a": "w"},
    {"a": ""},
    {"a": 3},
    {"a": True},
    {"a": False},
    {"a": 0},
    {"a": 1.0},
    {"a": -2.25},
    {"a": None},
    {},
    {"a": [1, "x"]},
    {"a": {"k": "x"}},
    {"a": ["[1]", [1], {"y": 2, "x": 1}]},
    {"a": {"z": 1, "b": [2, 3.50]}},
    {"n": {"a": [True, None]}},
]


@pytest.mark.parametrize(
    "spec",
    [
        {"a": "x\x00"},
        {"a": {"$gt": "x\x00y"}},
        {"a": {"$gte": "x\x00"}},
        {"a": {"$lt": "x\x00"}},
        {"a": {"$lte": "\x00"}},
        {"a": {"$in": ["x\x00", "w"]}},
        {"a": {"$nin": ["x\x00"]}},
        {"a": {"$contains": "x\x00"}},
        {"a": {"$gt": "[1,"}},
        {"a": {"$lt": '{"z":1,"b":[2,3.5]}'}},
        {"a": '{"z":1,"b":[2,3.5]}'},
        {"a": '[1,"x"]'},
        {"a": {"$contains": "[1]"}},
        {"a": {"$contains": '{"y":2,"x":1}'}},
        {"a": {"$in": ['[1,"x"]', 3]}},
        {"a": {"$contains": 1}},
        {"a": 0},
        {"a": True},
        {"a": 1.0},
        {"a": {"$in": [0, "x"]}},
        {"a": {"$lte": 0}},
        {"a": {"$gt": 0.5}},
        {"a": {"$lt": False}},
        {"a": {"$contains": False}},
        {"a": {"$contains": None}},
        {"n.a": {"$contains": 1}},
        {"n.a": {"$contains": None}},
        {"a": {"$ne": None}},
        {"a.k": "x"},
        {"a.0": 1},
    ],
)
def test_edge_operands_select_what_the_reference_selects(
    database: psycopg.Connection[Any], spec: dict[str, Any]
) -> None:
    """Strings holding U+0000 (which PostgreSQL cannot hold), strings compared with the exact
    JSON text of arrays and objects, and booleans as the numbers 1 and 0."""
    expected = {pk for pk, metadata in enumerate(ROWS) if reference_match(spec, metadata)}
    assert selected(database, spec, ROWS) == expected
