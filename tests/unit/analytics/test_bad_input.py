"""Every analytic engine, times every kind of bad table: the right 4xx, naming the problem.

The cases are made from each engine's own example (its data, and the params that name
columns), so an engine is covered the day it is registered.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from aiplatform.engines.analytics.method import Method, Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import AIPlatformError
from tests.analytics import run_direct

MISSING = "no_such_column"


def _run(method: Method[Any, Any], data: Records, params: Any, max_rows: int = 1000) -> None:
    run_direct(method.name, data, params, max_rows=max_rows)


def _column_param(method: Method[Any, Any]) -> tuple[str, Any] | None:
    """The first params field whose example value names a column (or columns)."""
    names = {name for row in method.example.data for name in row}
    for field in msgspec.structs.fields(method.params):
        value = getattr(method.example.params, field.name)
        if isinstance(value, str) and value in names:
            return field.name, MISSING
        if isinstance(value, list) and value and all(item in names for item in value):
            return field.name, [MISSING, *value[1:]]
    return None


def _numeric_column(method: Method[Any, Any]) -> str:
    assert method.numeric_param is not None
    value = getattr(method.example.params, method.numeric_param)
    return str(value[0] if isinstance(value, list) else value)


def _with_column(data: Records, column: str, value: Any) -> Records:
    return [{**row, column: value} for row in data]


def _refused(method: Method[Any, Any], data: Records, params: Any, **kw: Any) -> AIPlatformError:
    with pytest.raises(AIPlatformError) as refused:
        _run(method, data, params, **kw)
    return refused.value


ENGINES = sorted(METHODS)


@pytest.mark.parametrize("name", ENGINES)
def test_an_unknown_column_is_a_400_naming_it(name: str) -> None:
    method = METHODS[name]
    found = _column_param(method)
    assert found is not None, f"{name}'s example names no column in its params"
    field, value = found
    params = msgspec.structs.replace(method.example.params, **{field: value})
    error = _refused(method, method.example.data, params)
    assert (error.status_code, error.code) == (400, "unknown_column")
    assert MISSING in error.message
    assert error.param == f"params.{field}"


@pytest.mark.parametrize("name", [name for name in ENGINES if METHODS[name].numeric_param])
def test_a_text_column_where_a_number_is_needed_is_a_400(name: str) -> None:
    method = METHODS[name]
    column = _numeric_column(method)
    error = _refused(
        method, _with_column(method.example.data, column, "abc"), method.example.params
    )
    assert (error.status_code, error.code) == (400, "not_numeric")
    assert column in error.message


@pytest.mark.parametrize("name", [name for name in ENGINES if METHODS[name].numeric_param])
def test_an_all_missing_column_is_a_400(name: str) -> None:
    method = METHODS[name]
    column = _numeric_column(method)
    error = _refused(method, _with_column(method.example.data, column, None), method.example.params)
    assert error.status_code == 400
    assert error.code == "all_missing"
    assert column in error.message


@pytest.mark.parametrize("name", ENGINES)
def test_too_few_rows_is_a_400(name: str) -> None:
    method = METHODS[name]
    error = _refused(method, method.example.data[: method.min_rows - 1], method.example.params)
    assert error.status_code == 400
    assert error.code in ("too_few_rows", "empty_data")


@pytest.mark.parametrize("name", ENGINES)
def test_empty_data_is_a_400(name: str) -> None:
    method = METHODS[name]
    error = _refused(method, [], method.example.params)
    assert (error.status_code, error.code) == (400, "empty_data")


@pytest.mark.parametrize("name", ENGINES)
def test_a_table_over_the_size_limit_is_a_413(name: str) -> None:
    method = METHODS[name]
    data = method.example.data
    error = _refused(method, data, method.example.params, max_rows=len(data) - 1)
    assert (error.status_code, error.code) == (413, "dataset_too_large")
    assert str(len(data)) in error.message


def test_every_engine_declares_a_numeric_column_or_has_none() -> None:
    """``numeric_param`` names a params field whose example value is a column."""
    for method in METHODS.values():
        if method.numeric_param is not None:
            column = _numeric_column(method)
            assert column in method.example.data[0], method.name
