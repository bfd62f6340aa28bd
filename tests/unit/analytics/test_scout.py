"""The scout engine: planted informative features rank first (for a quantity and for classes),
and drift is flagged on exactly the columns planted to drift — a shifted number and a changed
category mix — and on no other."""

from __future__ import annotations

from functools import cache

import msgspec
import numpy as np
import pandas as pd
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.scout import _psi
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

INFORMATIVE = {"a", "b", "group"}


def _records(frame: pd.DataFrame) -> Records:
    return [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@cache
def _features(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two informative numbers and one informative category beside three noise columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "n1": rng.normal(size=rows),
            "a": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "b": rng.uniform(-2, 2, size=rows),
            "n2": rng.integers(0, 100, size=rows),
            "group": rng.choice(["x", "y", "z"], size=rows),
        }
    )


def test_informative_features_rank_first_for_a_quantity() -> None:
    frame = _features().copy()
    rng = np.random.default_rng(1)
    effect = frame.group.map({"x": -2.0, "y": 0.0, "z": 2.0})
    frame["target"] = 2 * frame.a + frame.b**2 + effect + 0.3 * rng.normal(size=len(frame))
    direct = run_direct("scout", _records(frame), {"target": "target"})
    result = direct.result
    assert result.task == "regression"
    assert result.drift == []
    assert result.reference_rows is None
    assert [item.rank for item in result.ranking] == [1, 2, 3, 4, 5, 6]
    assert {item.feature for item in result.ranking[:3]} == INFORMATIVE
    by_feature = {item.feature: item for item in result.ranking}
    for noise in ("n1", "n2", "colour"):
        assert by_feature[noise].model_importance < 0.02
        assert by_feature[noise].mutual_information < min(
            by_feature[name].mutual_information for name in INFORMATIVE
        )
    assert_valid_charts(direct.charts)
    assert len(direct.charts) == 1


def test_informative_features_rank_first_for_classes() -> None:
    frame = _features().copy()
    rng = np.random.default_rng(2)
    score = 1.5 * frame.a - frame.b + frame.group.map({"x": -1.5, "y": 0.0, "z": 1.5})
    frame["label"] = np.where(score + 0.3 * rng.logistic(size=len(frame)) > 0, "buy", "skip")
    result = run_direct("scout", _records(frame), {"target": "label"}).result
    assert result.task == "classification"
    assert {item.feature for item in result.ranking[:3]} == INFORMATIVE


@cache
def _drift_tables(rows: int = 1000) -> tuple[Records, Records]:
    """The current set: 'shift' moved by half a standard deviation and 'mix' with other
    category shares; four more columns drawn alike in both tables."""

    def table(seed: int, shift: float, mix: list[float]) -> Records:
        rng = np.random.default_rng(seed)
        return _records(
            pd.DataFrame(
                {
                    "shift": rng.normal(shift, 1.0, size=rows),
                    "steady": rng.normal(5.0, 2.0, size=rows),
                    "uniform": rng.uniform(0, 1, size=rows),
                    "counts": rng.poisson(3, size=rows),
                    "mix": rng.choice(["web", "shop", "phone"], p=mix, size=rows),
                    "region": rng.choice(["north", "south", "east", "west"], size=rows),
                }
            )
        )

    reference = table(10, 0.0, [0.5, 0.3, 0.2])
    current = table(11, 0.5, [0.3, 0.3, 0.4])
    return current, reference


def test_drift_flags_only_the_planted_columns() -> None:
    current, reference = _drift_tables()
    direct = run_direct("scout", current, {"reference": reference}, tables={"reference": reference})
    result = direct.result
    assert result.ranking == []
    assert result.task is None
    assert (result.current_rows, result.reference_rows) == (1000, 1000)
    by_column = {item.column: item for item in result.drift}
    assert list(by_column) == ["shift", "steady", "uniform", "counts", "mix", "region"]
    assert result.drifted_columns == ["shift", "mix"]
    assert by_column["shift"].test == "ks"
    assert by_column["shift"].p_adjusted < 1e-6
    assert by_column["shift"].psi > 0.1
    assert by_column["mix"].test == "chi2"
    assert by_column["mix"].psi is None
    assert by_column["mix"].p_adjusted < 1e-6
    for name in ("steady", "uniform", "counts"):
        assert by_column[name].test == "ks"
        assert by_column[name].psi < 0.1
        assert by_column[name].p_adjusted >= 0.01
    assert by_column["region"].test == "chi2"
    # Bonferroni across the six columns tested
    for item in result.drift:
        assert item.p_adjusted == pytest.approx(min(1.0, 6 * item.p_value))
    assert direct.warnings == []
    assert_valid_charts(direct.charts)
    assert "2 of 6 columns drifted: shift, mix" in direct.summary


def test_drift_only_on_the_features_named() -> None:
    current, reference = _drift_tables()
    result = run_direct(
        "scout",
        current,
        {"features": ["steady", "mix"], "reference": reference},
        tables={"reference": reference},
    ).result
    assert [item.column for item in result.drift] == ["steady", "mix"]
    assert result.drifted_columns == ["mix"]


def test_psi_is_zero_for_the_same_sample_and_large_for_a_shift() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    assert _psi(values, values) == pytest.approx(0.0)
    assert _psi(values, values + 1.0) > 0.5


def test_the_example_ranks_and_measures_drift_the_same_for_the_same_seed() -> None:
    method = METHODS["scout"]
    params = method.example.params
    tables = {"reference": params.reference}
    first = run_direct("scout", method.example.data, params, seed=3, tables=tables)
    again = run_direct("scout", method.example.data, params, seed=3, tables=tables)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    result = first.result
    assert {item.feature for item in result.ranking[:2]} == {"minutes", "items"}
    assert "minutes" in result.drifted_columns
    assert "device" in result.drifted_columns
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(first.charts) == 2
    assert_valid_charts(first.charts)


def test_neither_target_nor_reference_is_a_400() -> None:
    current, _ = _drift_tables()
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("scout", current, {})
    assert refused.value.code == "target_or_reference_required"
    assert refused.value.param == "params.target"


def test_a_feature_missing_from_the_reference_is_a_400_naming_it() -> None:
    current, reference = _drift_tables()
    reference = [{k: v for k, v in row.items() if k != "mix"} for row in reference]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(
            "scout", current, {"features": ["shift", "mix"]}, tables={"reference": reference}
        )
    assert refused.value.code == "unknown_column"
    assert refused.value.param == "params.reference"
    assert "'mix'" in refused.value.message


def test_the_target_among_the_features_is_a_400() -> None:
    frame = _features().copy()
    frame["target"] = frame.a
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("scout", _records(frame), {"target": "target", "features": ["a", "target"]})
    assert refused.value.code == "target_in_features"
    assert refused.value.param == "params.features"
