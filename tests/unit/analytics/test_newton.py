"""The newton engine: with a fixed seed it recovers planted formulas exactly (symbolic equality
after simplification), snaps evolved constants to the simple numbers they stand for, writes
formulas sympy parses back in the feature names, and returns a Pareto front that trades
complexity for accuracy."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec
import numpy as np
import pytest
import sympy

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.newton import NewtonParams, _to_sympy
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

ARITHMETIC = ["add", "sub", "mul"]


@cache
def _table(formula: str, names: tuple[str, ...], rows: int = 200) -> Records:
    """``rows`` rows of uniform(-2, 2) features and the exact value of ``formula``."""
    rng = np.random.default_rng(0)
    values = rng.uniform(-2, 2, size=(rows, len(names)))
    symbols = sympy.symbols(names)
    function = sympy.lambdify(symbols, sympy.sympify(formula), modules="numpy")
    target = function(*values.T)
    return [
        {**{name: float(v) for name, v in zip(names, row, strict=True)}, "out": float(t)}
        for row, t in zip(values, target, strict=True)
    ]


def _search(data: Records, features: list[str], seed: int = 0, **params: Any) -> Any:
    knobs = {"population_size": 500, "generations": 15, "function_set": ARITHMETIC, **params}
    return run_direct("newton", data, {"target": "out", "features": features, **knobs}, seed=seed)


def _same(formula: str, expected: str) -> bool:
    return bool(sympy.simplify(sympy.parse_expr(formula) - sympy.parse_expr(expected)) == 0)


def test_recovers_x_squared_plus_x_exactly() -> None:
    direct = _search(_table("x**2 + x", ("x",)), ["x"])
    result = direct.result
    assert _same(result.formula, "x**2 + x")
    assert result.formula == "x**2 + x"
    assert result.complexity == 2
    assert result.r2 == pytest.approx(1.0, abs=1e-12)
    assert result.rmse < 1e-9
    assert result.holdout_rows == 50
    assert result.symbols == {"x": "x"}
    # the exact fit ended the search early
    assert result.generations_run < 15
    assert_valid_charts(direct.charts)


def test_recovers_x_squared_minus_y_exactly() -> None:
    result = _search(_table("x**2 - y", ("x", "y")), ["x", "y"]).result
    assert _same(result.formula, "x**2 - y")
    assert result.r2 == pytest.approx(1.0, abs=1e-12)


def test_evolved_constants_snap_to_the_simple_numbers_they_stand_for() -> None:
    """The evolved program multiplies by 0.909 and 0.547 (0.497); the formula says x**2/2."""
    result = _search(
        _table("x**2/2 + x", ("x",)), ["x"], seed=4, population_size=400, generations=8
    ).result
    assert re.search(r"\d\.\d", result.program)
    assert _same(result.formula, "x**2/2 + x")
    assert result.r2 == pytest.approx(1.0, abs=1e-12)


def test_the_pareto_front_trades_complexity_for_accuracy() -> None:
    result = _search(_table("x**2 + x", ("x",)), ["x"]).result
    front = result.pareto
    assert len(front) >= 2
    complexities = [item.complexity for item in front]
    accuracies = [item.r2 for item in front]
    assert complexities == sorted(set(complexities))
    assert accuracies == sorted(set(accuracies))
    assert front[-1].r2 == pytest.approx(1.0)
    assert _same(front[-1].formula, "x**2 + x")
    for item in front:
        sympy.parse_expr(item.formula)


def test_names_sympy_reserves_or_cannot_parse_get_symbols_of_their_own() -> None:
    data = [
        {"E": row["x"], "flow rate": row["y"], "out": row["x"] * row["y"]}
        for row in _table("x", ("x", "y"))
    ]
    direct = run_direct(
        "newton",
        data,
        {
            "target": "out",
            "features": ["E", "flow rate"],
            "population_size": 300,
            "generations": 10,
            "function_set": ARITHMETIC,
        },
    )
    result = direct.result
    assert set(result.symbols.values()) == {"E", "flow rate"}
    symbol = {column: sympy.Symbol(name) for name, column in result.symbols.items()}
    assert all(name.isidentifier() for name in result.symbols)
    parsed = sympy.parse_expr(result.formula)
    assert parsed.free_symbols <= set(symbol.values())
    assert sympy.simplify(parsed - symbol["E"] * symbol["flow rate"]) == 0


def test_protected_operators_map_to_their_plain_meaning() -> None:
    from gplearn.functions import _function_map

    x0, x1 = sympy.symbols("x0 x1")
    program = [_function_map["div"], 0, _function_map["sqrt"], _function_map["neg"], 1]
    assert _to_sympy(program, [x0, x1]) == x0 / sympy.sqrt(sympy.Abs(-x1))
    program = [_function_map["add"], _function_map["log"], 0, 0.5]
    assert _to_sympy(program, [x0, x1]) == sympy.log(sympy.Abs(x0)) + sympy.Float(0.5)


def test_the_example_answers_the_same_for_the_same_seed_with_rising_progress() -> None:
    method = METHODS["newton"]
    first = run_direct("newton", method.example.data, method.example.params, seed=0)
    again = run_direct("newton", method.example.data, method.example.params, seed=0)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    assert _same(first.result.formula, "moles*kelvin/litres")
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert any("generation" in stage for _, stage in first.progress)
    assert_valid_charts(first.charts)
    assert first.result.formula in first.summary


def test_the_target_among_the_features_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("newton", _table("x", ("x",)), {"target": "out", "features": ["x", "out"]})
    assert refused.value.code == "target_in_features"
    assert refused.value.param == "params.features"


def test_a_text_feature_is_a_400_naming_it() -> None:
    data = [{**row, "x": "wide"} for row in _table("x", ("x",))]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("newton", data, {"target": "out", "features": ["x"]})
    assert refused.value.code == "not_numeric"
    assert refused.value.param == "params.features"
    assert "'x'" in refused.value.message


def test_search_knobs_outside_their_bounds_are_refused() -> None:
    base = {"target": "y", "features": ["x"]}
    for bad in (
        {"generations": 0},
        {"population_size": 10},
        {"function_set": ["pow"]},
        {"function_set": []},
        {"parsimony_coefficient": -1.0},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**base, **bad}, NewtonParams)
