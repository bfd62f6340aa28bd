"""The oracle engine (Granger causality): a planted lagged dependence is found in its direction
and at its lag, and not the other way; integrated series are differenced and say so."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct


def _lagged(seed: int, count: int = 300, lag: int = 3, integrated: bool = False) -> Records:
    """x an AR(1) (phi 0.5); y = 0.8 x[t - lag] + noise; z unrelated noise. ``integrated``:
    x and y are the running sums of those (random walks whose changes carry the link)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(count)
    for t in range(1, count):
        x[t] = 0.5 * x[t - 1] + rng.normal()
    y = np.concatenate([np.zeros(lag), 0.8 * x[:-lag]]) + rng.normal(size=count)
    z = rng.normal(size=count)
    if integrated:
        x, y = np.cumsum(x), np.cumsum(y)
    return [{"t": t, "x": float(x[t]), "y": float(y[t]), "z": float(z[t])} for t in range(count)]


def _by_pair(result: Any) -> dict[tuple[str, str], Any]:
    return {(pair.cause, pair.effect): pair for pair in result.pairs}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_lag_three_link_is_found_in_its_direction_only(seed: int) -> None:
    direct = run_direct("oracle", _lagged(seed), {"columns": ["x", "y"], "max_lag": 8})
    pairs = _by_pair(direct.result)
    forward, backward = pairs[("x", "y")], pairs[("y", "x")]
    assert forward.significant
    assert forward.lag == 3
    assert forward.p_value < 1e-6
    assert not backward.significant
    assert direct.result.differenced == {"x": 0, "y": 0}
    assert "x → y at lag 3" in direct.summary


def test_an_unrelated_column_is_not_significant_with_either_correction() -> None:
    data = _lagged(3)
    holm = run_direct("oracle", data, {"columns": ["x", "y", "z"], "max_lag": 6})
    bh = run_direct(
        "oracle", data, {"columns": ["x", "y", "z"], "max_lag": 6, "correction": "fdr_bh"}
    )
    assert len(holm.result.pairs) == 6
    for result in (holm.result, bh.result):
        significant = {(p.cause, p.effect) for p in result.pairs if p.significant}
        assert significant == {("x", "y")}
    # Benjamini-Hochberg never asks more than Holm: its corrected p-values are no larger.
    for a, b in zip(holm.result.pairs, bh.result.pairs, strict=True):
        assert b.p_value <= a.p_value + 1e-12
        assert a.raw_p_value == b.raw_p_value


def test_random_walks_are_differenced_once_and_keep_their_link() -> None:
    direct = run_direct(
        "oracle", _lagged(4, lag=2, integrated=True), {"columns": ["x", "y", "z"], "max_lag": 6}
    )
    assert direct.result.differenced == {"x": 1, "y": 1, "z": 0}
    pairs = _by_pair(direct.result)
    assert pairs[("x", "y")].significant
    assert pairs[("x", "y")].lag == 2
    assert not pairs[("y", "x")].significant
    assert direct.result.observations == 299
    assert "Differenced to stationarity: x (1x), y (1x)" in direct.summary


def test_explicit_pairs_test_only_those_and_rows_follow_the_time_column() -> None:
    data = _lagged(5)
    shuffled = data[:]
    random.Random(0).shuffle(shuffled)
    params = {"pairs": [{"cause": "y", "effect": "x"}, {"cause": "x", "effect": "y"}], "time": "t"}
    ordered = run_direct("oracle", data, params)
    unordered = run_direct("oracle", shuffled, params)
    assert [(p.cause, p.effect) for p in ordered.result.pairs] == [("y", "x"), ("x", "y")]
    assert unordered.result == ordered.result
    assert ordered.result.pairs[1].significant
    assert ordered.result.pairs[1].lag == 3
    # Without the time column the shuffled rows carry no lagged link.
    lost = run_direct("oracle", shuffled, {"columns": ["x", "y"]})
    assert not any(p.significant for p in lost.result.pairs)


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["oracle"]
    first = run_direct("oracle", method.example.data, method.example.params, seed=3)
    again = run_direct("oracle", method.example.data, method.example.params, seed=3)
    assert first.result == again.result
    assert first.summary == again.summary
    significant = [(p.cause, p.effect, p.lag) for p in first.result.pairs if p.significant]
    assert significant == [("ads", "demand", 3)]
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_missing_rows_are_left_out_with_a_warning() -> None:
    data = _lagged(6)
    data[10]["x"] = None
    direct = run_direct("oracle", data, {"columns": ["x", "y"]})
    assert direct.result.observations == 299
    assert any("1 rows with a missing value" in warning for warning in direct.warnings)


@pytest.mark.parametrize(
    ("params", "code", "param", "words"),
    [
        ({"columns": ["x"]}, "too_few_columns", "params.columns", "two columns"),
        ({}, "missing_columns", "params.columns", "pairs"),
        (
            {"columns": ["x", "y"], "pairs": [{"cause": "x", "effect": "y"}]},
            "conflicting_params",
            "params.pairs",
            "not both",
        ),
        ({"pairs": [{"cause": "x", "effect": "x"}]}, "same_column", "params.pairs", "itself"),
        ({"pairs": [{"cause": "x", "effect": "w"}]}, "unknown_column", "params.pairs", "'w'"),
        ({"columns": ["x", "label"]}, "not_numeric", "params.columns", "label"),
        ({"columns": ["x", "y"], "max_lag": 24}, "too_few_rows", "params.max_lag", "3 * max_lag"),
    ],
)
def test_bad_params_are_400s_naming_the_rule(
    params: dict[str, object], code: str, param: str, words: str
) -> None:
    data = [{**row, "label": "a" if row["t"] % 2 else "b"} for row in _lagged(7, count=80)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("oracle", data, params)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert words in refused.value.message


def test_a_column_with_an_exact_straight_line_cannot_be_tested() -> None:
    """Differencing a straight line leaves a constant: a 422, not a made-up p-value."""
    data: Records = [{**row, "line": 2.0 * float(row["t"] or 0)} for row in _lagged(8, count=80)]
    with pytest.raises(UnprocessableEntityError) as refused:
        run_direct("oracle", data, {"columns": ["x", "line"]})
    assert refused.value.code == "degenerate_series"
