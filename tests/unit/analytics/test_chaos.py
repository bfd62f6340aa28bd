"""chaos: non-linear dependence between columns, and Monte Carlo simulation of a formula."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiplatform.engines.analytics.methods.chaos import METHOD
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct


def _records(**columns: np.ndarray) -> list[dict[str, Any]]:
    count = len(next(iter(columns.values())))
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(count)]


def _pair(result: Any, a: str, b: str) -> Any:
    return next(pair for pair in result.dependence if (pair.a, pair.b) == (a, b))


def test_a_square_is_flagged_as_non_linear_where_pearson_sees_nothing() -> None:
    rng = np.random.default_rng(0)
    half = rng.uniform(0, 2, 300)
    x = np.concatenate([half, -half])  # symmetric around 0: x and x**2 are uncorrelated
    data = _records(
        x=x,
        square=x**2 + rng.normal(0, 0.05, 600),
        line=0.8 * x + rng.normal(0, 0.4, 600),
        noise=rng.normal(size=600),
    )
    result = run_direct("chaos", data, {"columns": ["x", "square", "line", "noise"]}).result
    square = _pair(result, "x", "square")
    assert abs(square.pearson_r) < 0.1
    assert abs(square.spearman_rho) < 0.1
    assert square.distance_correlation > 0.4
    assert square.mutual_information > 1.0
    assert square.xi > 0.7
    assert square.xi_p_value < 1e-6
    assert square.nonlinear
    line = _pair(result, "x", "line")
    assert line.pearson_r > 0.9
    assert not line.nonlinear
    noise = _pair(result, "x", "noise")
    assert noise.distance_correlation < 0.12
    assert noise.mutual_information < 0.05
    assert not noise.nonlinear
    assert len(result.dependence) == 6
    assert result.simulation is None


def test_distance_correlation_matches_the_textbook_values() -> None:
    """1 for an exact linear relation; for another pair, the definition computed term by term
    (double-centred distances a_ij - mean_i - mean_j + mean, averaged products)."""
    x = np.arange(12.0)
    z = np.array([1, 4, 2, 8, 5, 7, 3, 6, 0, 9, 11, 10.0])
    result = run_direct("chaos", _records(x=x, y=3 * x - 2, z=z), {"columns": ["x", "y", "z"]})
    assert _pair(result.result, "x", "y").distance_correlation == pytest.approx(1.0)

    def centred(v: np.ndarray) -> list[list[float]]:
        n = len(v)
        d = [[abs(v[i] - v[j]) for j in range(n)] for i in range(n)]
        rows = [sum(d[i]) / n for i in range(n)]
        total = sum(rows) / n
        return [[d[i][j] - rows[i] - rows[j] + total for j in range(n)] for i in range(n)]

    def mean_product(p: list[list[float]], q: list[list[float]]) -> float:
        return sum(p[i][j] * q[i][j] for i in range(12) for j in range(12)) / 144

    cx, cz = centred(x), centred(z)
    expected = math.sqrt(
        mean_product(cx, cz) / math.sqrt(mean_product(cx, cx) * mean_product(cz, cz))
    )
    assert _pair(result.result, "x", "z").distance_correlation == pytest.approx(expected)


def test_monte_carlo_of_a_sum_of_independent_normals() -> None:
    rng = np.random.default_rng(1)
    data = _records(a=rng.normal(10, 2, 5000), b=rng.normal(-4, 1, 5000))
    direct = run_direct("chaos", data, {"expression": "a + b", "simulations": 20000})
    simulation = direct.result.simulation
    assert simulation.simulations == 20000
    assert simulation.mean == pytest.approx(6.0, rel=0.02)
    assert simulation.std == pytest.approx(math.sqrt(5.0), rel=0.02)
    by_column = {item.column: item for item in simulation.inputs}
    assert by_column["a"].distribution == "normal"
    assert by_column["a"].params["mean"] == pytest.approx(10, abs=0.1)
    assert by_column["a"].params["std"] == pytest.approx(2, abs=0.1)
    assert by_column["b"].distribution == "normal"
    median = next(item.value for item in simulation.percentiles if item.p == 50)
    assert median == pytest.approx(6.0, abs=0.1)
    # the dependence of the expression's columns is examined too (and only a / b)
    assert [(pair.a, pair.b) for pair in direct.result.dependence] == [("a", "b")]
    assert "sample of 2000 of the 5000 rows" in " ".join(direct.warnings)


def test_the_copula_keeps_the_inputs_rank_correlation() -> None:
    """Correlated inputs: the sum's spread includes the covariance term (independent draws
    would give sqrt(5) = 2.24, not sqrt(7.4) = 2.72)."""
    rng = np.random.default_rng(2)
    z = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], 5000)
    data = _records(a=10 + 2 * z[:, 0], b=-4 + z[:, 1])
    simulation = run_direct(
        "chaos", data, {"expression": "a + b", "simulations": 20000}
    ).result.simulation
    assert simulation.std == pytest.approx(math.sqrt(4 + 1 + 2 * 0.6 * 2), rel=0.03)


def test_skewed_inputs_get_skewed_distributions() -> None:
    rng = np.random.default_rng(3)
    data = _records(
        income=rng.lognormal(3.0, 0.5, 3000),
        share=rng.uniform(0.1, 0.9, 3000),
    )
    simulation = run_direct(
        "chaos", data, {"expression": "income * share", "percentiles": [50]}
    ).result.simulation
    by_column = {item.column: item for item in simulation.inputs}
    assert by_column["income"].distribution == "lognormal"
    assert by_column["income"].params["mu"] == pytest.approx(3.0, abs=0.05)
    assert by_column["income"].params["sigma"] == pytest.approx(0.5, abs=0.05)
    assert by_column["share"].distribution == "uniform"
    assert by_column["share"].params["low"] == pytest.approx(0.1, abs=0.01)
    assert by_column["share"].params["high"] == pytest.approx(0.9, abs=0.01)
    assert all(item.ks_statistic < 0.03 for item in simulation.inputs)
    # median of the product of independent inputs ~ exp(3) * 0.5 (not exact: a product)
    assert simulation.percentiles[0].value == pytest.approx(math.exp(3) * 0.5, rel=0.1)


def test_bootstrap_draws_the_observed_values() -> None:
    values = np.array([1.0, 2.0, 2.0, 7.0] * 10)
    data = _records(v=values, w=np.arange(40.0))
    simulation = run_direct(
        "chaos", data, {"expression": "v", "bootstrap": True, "percentiles": [10, 60, 90]}
    ).result.simulation
    assert simulation.inputs[0].distribution == "empirical"
    assert [item.value for item in simulation.percentiles] == [1.0, 2.0, 7.0]
    assert simulation.mean == pytest.approx(3.0, abs=0.1)


def test_draws_without_a_finite_value_are_left_out_and_reported() -> None:
    rng = np.random.default_rng(4)
    data = _records(a=rng.normal(0, 1, 500), b=rng.normal(5, 1, 500))
    direct = run_direct("chaos", data, {"expression": "log(a) + b", "simulations": 4000})
    simulation = direct.result.simulation
    assert 1500 < simulation.simulations < 2500
    assert any("gave no finite value" in warning for warning in direct.warnings)


def test_example_answers_with_valid_charts() -> None:
    direct = run_direct("chaos", METHOD.example.data, METHOD.example.params)
    assert _pair(direct.result, "x", "y").nonlinear
    assert not _pair(direct.result, "x", "z").nonlinear
    assert direct.result.simulation.simulations == 2000
    assert len(direct.charts) == 2
    assert_valid_charts(direct.charts)
    assert "x/y" in direct.summary


def test_same_seed_same_result_and_rising_progress() -> None:
    first = run_direct("chaos", METHOD.example.data, METHOD.example.params, seed=5)
    second = run_direct("chaos", METHOD.example.data, METHOD.example.params, seed=5)
    other = run_direct("chaos", METHOD.example.data, METHOD.example.params, seed=6)
    assert first.result == second.result
    assert first.result.simulation != other.result.simulation
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert len(fractions) >= 5


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("__import__('os')", "function '__import__' is not allowed"),
        ("__import__('os').system('echo chaos')", "Only exp, log, sqrt, abs, min, max may be"),
        ("a.__class__", "Attribute is not allowed"),
        ("a if b else 1", "IfExp is not allowed"),
        ("(lambda: 1)()", "Only exp, log, sqrt, abs, min, max may be called"),
        ("lambda: a", "Lambda is not allowed"),
        ("[a, b]", "List is not allowed"),
        ("a ^ b", "powers are written **"),
        ("a % b", "Mod is not allowed"),
        ("a < b", "Compare is not allowed"),
        ("exp(a, b)", "exp() takes 1 argument"),
        ("min(a)", "min() takes 2 or more arguments"),
        ("max(a, key=b)", "plain arguments"),
        ("'a' + b", "Only numbers"),
        ("a +", "not a formula"),
        ("exp + a", "must be called"),
        ("a / 0", "not a finite real number"),
        ("log(-1) * a", "not a finite real number"),
        ("9**9**9**9 + a", "not a finite real number"),
        ("10**400 * a", "not a finite real number"),
        ("2 * 3", "names no column"),
    ],
)
def test_an_expression_that_is_not_arithmetic_is_refused(expression: str, words: str) -> None:
    data = _records(a=np.arange(1.0, 21.0), b=np.arange(21.0, 1.0, -1))
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("chaos", data, {"expression": expression})
    assert caught.value.code == "invalid_expression"
    assert caught.value.param == "params.expression"
    assert words in caught.value.message


def test_an_expression_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    data = _records(a=np.arange(1.0, 21.0), b=np.arange(21.0, 1.0, -1))
    with pytest.raises(InvalidRequestError):
        run_direct("chaos", data, {"expression": f"__import__('pathlib').Path('{marker}').touch()"})
    assert not marker.exists()


def test_huge_values_are_refused_quickly_not_computed_exactly() -> None:
    """Constant parts are float64: nothing grows as an exact number, however it is nested."""
    data = _records(a=np.arange(1.0, 21.0), b=np.arange(21.0, 1.0, -1))
    with pytest.raises(UnprocessableEntityError) as caught:
        run_direct("chaos", data, {"expression": "exp(exp(exp(b - b + 100))) + a"})
    assert caught.value.code == "no_finite_values"
    with pytest.raises(UnprocessableEntityError) as caught:
        run_direct("chaos", data, {"expression": "exp(exp(a))"})
    assert caught.value.code == "overflow"


def test_an_expression_naming_an_unknown_column_names_it() -> None:
    data = _records(a=np.arange(1.0, 21.0), b=np.arange(21.0, 1.0, -1))
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("chaos", data, {"expression": "a * price"})
    assert caught.value.code == "unknown_column"
    assert caught.value.param == "params.expression"
    assert "'price'" in caught.value.message


def test_an_expression_over_a_text_column_is_refused() -> None:
    data = [{"a": float(i), "b": f"t{i}"} for i in range(20)]
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("chaos", data, {"expression": "a * b"})
    assert caught.value.code == "not_numeric"
    assert caught.value.param == "params.expression"


def test_nothing_to_compute_is_refused() -> None:
    data = [{"a": float(i), "label": f"t{i}"} for i in range(20)]
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("chaos", data, {})
    assert caught.value.code == "nothing_to_compute"
