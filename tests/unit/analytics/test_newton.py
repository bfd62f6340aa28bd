"""The newton engine: with a fixed seed it recovers planted formulas exactly (symbolic equality
after simplification), snaps evolved constants to the simple numbers they stand for, writes
formulas sympy parses back in the feature names, and returns a Pareto front that trades
complexity for accuracy. A formula that divides by zero once gplearn's protected operators
take their plain meaning is never returned, and no score is NaN or infinite."""

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
from aiplatform.engines.analytics.methods.newton import (
    NewtonParams,
    _best_finite,
    _pareto,
    _predict,
    _scores,
    _snap,
    _Split,
    _to_sympy,
)
from aiplatform.errors import AIPlatformError, InvalidRequestError, UnprocessableEntityError
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


# --- formulas that are not finite ------------------------------------------------------------


def _program(nodes: list[Any], fitness: float = 0.0) -> Any:
    """A gplearn program made of ``nodes`` (function names, feature indices, constants)."""
    from gplearn._program import _Program
    from gplearn.fitness import _fitness_map
    from gplearn.functions import _function_map

    program = [_function_map[node] if isinstance(node, str) else node for node in nodes]
    made = _Program(
        function_set=[],
        arities={},
        init_depth=(2, 6),
        init_method="half and half",
        n_features=2,
        const_range=(-1.0, 1.0),
        metric=_fitness_map["mean absolute error"],
        p_point_replace=0.05,
        parsimony_coefficient=0.001,
        random_state=np.random.RandomState(0),
        program=program,
    )
    made.raw_fitness_ = fitness
    return made


class _Search(msgspec.Struct):
    """What newton reads of a fitted ``SymbolicRegressor``: its best program and its last
    population (lower fitness is better, as for gplearn's mean absolute error)."""

    _program: Any
    _programs: list[list[Any]]
    _metric: Any


def _search_of(best: Any, population: list[Any]) -> Any:
    from gplearn.fitness import _fitness_map

    return _Search(best, [population], _fitness_map["mean absolute error"])


def _split(target: Any) -> _Split:
    """Held-out rows of two uniform(1, 2) features and ``target(x0, x1)``."""
    rng = np.random.default_rng(1)
    x = rng.uniform(1, 2, size=(40, 2))
    y = target(x[:, 0], x[:, 1])
    return _Split(x[:20], y[:20], x[20:], y[20:])


X0, X1 = sympy.symbols("x0 x1")
#: div(X0, sub(X1, X1)): gplearn's protected division gives 1, plain division x0/0
ZERO_DENOMINATOR = ["div", 0, "sub", 1, 1]


def test_a_zero_denominator_predicts_nothing_and_scores_not_finite() -> None:
    from gplearn.functions import _function_map

    program = [_function_map[node] if isinstance(node, str) else node for node in ZERO_DENOMINATOR]
    expr = _to_sympy(program, [X0, X1])
    assert expr.has(sympy.zoo)
    split = _split(lambda a, b: a)
    predicted = _predict(expr, [X0, X1], split.x_hold)
    assert predicted.shape == (20,)
    assert np.isnan(predicted).all()
    assert _scores(split.y_hold, predicted) == (None, float("inf"))
    # gplearn's own execution of it is finite: only the plain formula divides by zero
    assert np.isfinite(_program(ZERO_DENOMINATOR).execute(split.x_hold)).all()


def test_a_denominator_constant_is_not_snapped_to_zero() -> None:
    """x0 / (1e-9*x1 + 1e-9): snapping both constants to 0 would divide by zero."""
    split = _split(lambda a, b: a / (1e-9 * b + 1e-9))
    expr = X0 / (sympy.Float(1e-9) * X1 + sympy.Float(1e-9))
    snapped = _snap(expr, [X0, X1], split)
    assert not snapped.has(sympy.zoo, sympy.nan)
    assert np.isfinite(_predict(snapped, [X0, X1], split.x_hold)).all()


def test_an_overflowing_error_is_not_finite_and_large_targets_do_not_overflow() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert _scores(y, np.array([1e300, -1e300, 1e300])) == (None, float("inf"))
    # an error of 1e160 squares to more than a float holds; the scores are finite all the same
    big = np.tile([1e150, -1e150], 500)
    r2, rmse = _scores(big, big + 1e160)
    assert rmse == pytest.approx(1e160)
    assert r2 == pytest.approx(1 - 1e20)
    r2, rmse = _scores(big, 0.9 * big)
    assert r2 == pytest.approx(0.99)
    assert rmse == pytest.approx(1e149)


def test_the_next_finite_program_stands_in_for_a_best_one_that_divides_by_zero() -> None:
    split = _split(lambda a, b: a * b)
    bad = _program(ZERO_DENOMINATOR, fitness=0.0)
    good = _program(["mul", 0, 1], fitness=0.1)
    worse = _program([0], fitness=0.5)
    program, expr, predicted = _best_finite(_search_of(bad, [worse, bad, good]), [X0, X1], split)
    assert program is good
    assert expr == X0 * X1
    assert predicted == pytest.approx(split.x_hold[:, 0] * split.x_hold[:, 1])


def test_no_finite_program_is_a_422() -> None:
    split = _split(lambda a, b: a)
    bad = _program(ZERO_DENOMINATOR)
    also_bad = _program(["inv", "sub", 0, 0], fitness=0.2)
    with pytest.raises(UnprocessableEntityError) as refused:
        _best_finite(_search_of(bad, [bad, also_bad]), [X0, X1], split)
    assert refused.value.code == "formula_not_finite"
    assert refused.value.status_code == 422


def test_the_pareto_front_leaves_out_formulas_that_divide_by_zero() -> None:
    """x0 + div(x1, x1 - x1) is exact under protected division (x0 + 1) and on the front."""
    split = _split(lambda a, b: a + 1)
    simple = _program([0], fitness=1.0)
    exact_but_infinite = _program(["add", 0, "div", 1, "sub", 1, 1], fitness=0.0)
    front = _pareto(
        _search_of(exact_but_infinite, [simple, exact_but_infinite]),
        exact_but_infinite,
        split,
        [X0, X1],
    )
    assert [item.formula for item in front] == ["x0"]
    assert front[0].r2 is not None
    assert np.isfinite(front[0].r2)


def _outcome(data: Records, params: Any) -> Any:
    """The computation's outcome, or the platform error it answered with (any other
    exception propagates)."""
    try:
        return run_direct("newton", data, params)
    except AIPlatformError as refused:
        return refused


@pytest.mark.parametrize("column", ["pressure", "litres"])
def test_a_huge_value_in_the_example_answers_finite_or_is_refused(column: str) -> None:
    """One cell of 1e140 (below the 1e150 limit, so it reaches the search): a result whose
    numbers are all finite, or a 4xx; never another exception."""
    method = METHODS["newton"]
    data = [dict(row) for row in method.example.data]
    data[3][column] = 1e140
    outcome = _outcome(data, method.example.params)
    if isinstance(outcome, AIPlatformError):
        assert 400 <= outcome.status_code < 500
        return
    result = outcome.result
    assert np.isfinite(result.rmse)
    assert result.r2 is None or np.isfinite(result.r2)
    assert all(item.r2 is None or np.isfinite(item.r2) for item in result.pareto)
    assert not sympy.parse_expr(result.formula).has(sympy.zoo, sympy.oo, sympy.nan)


def test_infinity_or_a_number_beyond_1e150_in_a_feature_is_a_400() -> None:
    method = METHODS["newton"]
    for value, code in (("inf", "not_finite"), (1e305, "value_too_large")):
        data = [dict(row) for row in method.example.data]
        data[5]["kelvin"] = value
        with pytest.raises(InvalidRequestError) as refused:
            run_direct("newton", data, method.example.params)
        assert (refused.value.code, refused.value.param) == (code, "params.features")
        assert "'kelvin'" in refused.value.message
        assert "row 5" in refused.value.message
