"""The titan engine: on data with a planted answer it beats the dummy baseline clearly, ranks
the informative features above every noise column, covers the held-out rows with its conformal
intervals at about the stated rate, predicts new rows in their order, and keeps to its time
budget while reporting progress."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from aiplatform.engines.analytics.method import Records, Run
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.titan import TitanParams
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

INFORMATIVE = ["x1", "x2"]
NOISE = ["n1", "n2", "n3"]


def _features(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    values = rng.normal(size=(rows, 5))
    return pd.DataFrame(values, columns=INFORMATIVE + NOISE)


def _records(frame: pd.DataFrame) -> Records:
    return [
        {key: (float(value) if isinstance(value, float) else value) for key, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@cache
def _regression(rows: int = 400, seed: int = 1) -> Records:
    """y = 3 x1 - 2 x2 + N(0, 1), beside three pure-noise columns."""
    rng = np.random.default_rng(seed)
    frame = _features(rng, rows)
    frame["y"] = 3 * frame.x1 - 2 * frame.x2 + rng.normal(size=rows)
    return _records(frame)


@cache
def _classification(rows: int = 400, seed: int = 2) -> Records:
    """'yes' when 2.5 x1 - 2 x2 plus logistic noise is positive; a text column of noise."""
    rng = np.random.default_rng(seed)
    frame = _features(rng, rows)
    score = 2.5 * frame.x1 - 2 * frame.x2 + 0.5 * rng.logistic(size=rows)
    frame["colour"] = rng.choice(["red", "green", "blue"], size=rows)
    frame["y"] = np.where(score > 0, "yes", "no")
    return _records(frame)


def _ranked_above_noise(result: Any, noise: list[str]) -> None:
    importance = {item.feature: item.importance for item in result.feature_importance}
    assert [item.feature for item in result.feature_importance][:2] in (
        INFORMATIVE,
        INFORMATIVE[::-1],
    )
    assert min(importance[name] for name in INFORMATIVE) > max(importance[name] for name in noise)
    assert set(result.selected_features) == set(INFORMATIVE)


def test_regression_beats_the_baseline_ranks_features_and_covers_the_holdout() -> None:
    predict = [
        {"x1": x1, "x2": x2, "n1": 0.0, "n2": 0.0, "n3": 0.0}
        for x1, x2 in [(2.0, 0.0), (-2.0, 0.0), (0.0, 2.0), (0.0, 0.0)]
    ]
    direct = run_direct(
        "titan", _regression(), {"target": "y", "time_budget_s": 4.0}, tables={"predict": predict}
    )
    result = direct.result
    assert result.task == "regression"
    assert result.cv_metric == "r2"
    assert result.model in {candidate.family for candidate in result.candidates}
    assert result.metrics.r2 > 0.85
    assert result.metrics.r2 > result.baseline_metrics.r2 + 0.8
    assert result.metrics.rmse < 0.4 * result.baseline_metrics.rmse
    assert result.metrics.mae < 0.4 * result.baseline_metrics.mae
    assert result.metrics.accuracy is None
    _ranked_above_noise(result, NOISE)
    # 90% split-conformal intervals on the 100 held-out rows
    assert 0.8 <= result.interval_coverage <= 1.0
    # the rows to predict come back in their order: 6, -6, -4, 0 (noise sd 1)
    values = [p.value for p in result.predictions]
    assert values == pytest.approx([6.0, -6.0, -4.0, 0.0], abs=1.5)
    for p in result.predictions:
        assert p.lower < p.value < p.upper
        assert p.label is None
    assert_valid_charts(direct.charts)
    assert len(direct.charts) == 2


def test_classification_beats_the_baseline_and_calibrates_probabilities() -> None:
    predict = [
        {"x1": 2.0, "x2": -2.0, "n1": 0.0, "n2": 0.0, "n3": 0.0, "colour": "red"},
        {"x1": -2.0, "x2": 2.0, "n1": 0.0, "n2": 0.0, "n3": 0.0, "colour": "purple"},
        {"x1": 1.5, "x2": -1.0, "n1": 0.0, "n2": 0.0, "n3": 0.0, "colour": None},
    ]
    direct = run_direct(
        "titan",
        _classification(),
        {"target": "y", "time_budget_s": 4.0},
        tables={"predict": predict},
    )
    result = direct.result
    assert result.task == "classification"
    assert result.cv_metric == "accuracy"
    assert result.metrics.accuracy > 0.85
    assert result.metrics.accuracy > result.baseline_metrics.accuracy + 0.3
    assert result.metrics.f1 > result.baseline_metrics.f1 + 0.4
    assert result.metrics.roc_auc > 0.93
    assert result.baseline_metrics.roc_auc == pytest.approx(0.5)
    assert result.metrics.r2 is None
    assert result.interval_coverage is None
    _ranked_above_noise(result, [*NOISE, "colour"])
    # in order, each with probabilities over both labels that sum to one
    assert [p.label for p in result.predictions] == ["yes", "no", "yes"]
    for p in result.predictions:
        assert set(p.probabilities) == {"yes", "no"}
        assert sum(p.probabilities.values()) == pytest.approx(1.0)
        assert p.probabilities[p.label] > 0.5
        assert p.value is None
    assert result.predictions[0].probabilities["yes"] > 0.8
    assert_valid_charts(direct.charts)


def test_auto_reads_few_whole_numbers_as_classes_and_many_as_a_quantity() -> None:
    rng = np.random.default_rng(3)
    frame = _features(rng, 120)
    frame["grade"] = np.clip(np.round(frame.x1 + 2), 0, 4).astype(int)
    frame["amount"] = frame.x1 * 10 + rng.normal(size=120)
    params = {"time_budget_s": 5.0, "max_candidates": 1}
    as_classes = run_direct(
        "titan", _records(frame.drop(columns="amount")), {"target": "grade", **params}
    )
    assert as_classes.result.task == "classification"
    assert as_classes.result.metrics.accuracy > as_classes.result.baseline_metrics.accuracy
    as_amount = run_direct(
        "titan", _records(frame.drop(columns="grade")), {"target": "amount", **params}
    )
    assert as_amount.result.task == "regression"


def test_the_example_answers_the_same_for_the_same_seed_with_rising_progress() -> None:
    method = METHODS["titan"]
    params = method.example.params
    tables = {"predict": params.predict}
    first = run_direct("titan", method.example.data, params, seed=5, tables=tables)
    again = run_direct("titan", method.example.data, params, seed=5, tables=tables)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    assert first.summary == again.summary
    assert not first.result.budget_spent
    # three families, the library defaults only
    assert [c.settings_tried for c in first.result.candidates] == [1, 1, 1]
    assert "area" in first.result.selected_features
    assert "noise" not in first.result.selected_features
    assert first.result.metrics.r2 > first.result.baseline_metrics.r2 + 0.5
    # price = 2 area - 1.2 age + district premium (centre +40, south -20), noise sd 12
    values = [p.value for p in first.result.predictions]
    assert values == pytest.approx([178.0, 172.0], abs=25.0)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) >= 8
    assert_valid_charts(first.charts)
    assert "held-out" in first.summary


def _timed(rows: int, budget: float) -> tuple[float, list[float], Any]:
    """Run the computation in this process, noting when each progress report came."""
    rng = np.random.default_rng(4)
    frame = _features(rng, rows)
    frame["y"] = np.sin(frame.x1) * 3 - frame.x2 + rng.normal(size=rows)
    stamps: list[float] = []
    run = Run(seed=0, progress=lambda fraction, stage: stamps.append(time.monotonic()))
    started = time.monotonic()
    outcome = METHODS["titan"].compute(frame, TitanParams(target="y", time_budget_s=budget), run)
    stamps.append(time.monotonic())
    gaps = [b - a for a, b in zip([started, *stamps], stamps, strict=False)]
    return time.monotonic() - started, gaps, outcome.result


def test_the_time_budget_ends_the_search_and_progress_is_reported_throughout() -> None:
    elapsed, gaps, result = _timed(rows=600, budget=5.0)
    assert result.budget_spent
    assert 3.0 <= elapsed <= 8.0
    assert len(gaps) >= 10
    assert max(gaps) < 2.5


def test_a_search_that_ends_on_max_candidates_tries_that_many_settings_per_family() -> None:
    rng = np.random.default_rng(4)
    frame = _features(rng, 150)
    frame["y"] = np.sin(frame.x1) * 3 - frame.x2 + rng.normal(size=150)
    params = TitanParams(target="y", time_budget_s=3600, max_candidates=3)
    result = METHODS["titan"].compute(frame, params, Run(seed=0)).result
    assert not result.budget_spent
    assert [c.settings_tried for c in result.candidates] == [3, 3, 3]


@pytest.mark.slow
def test_a_thirty_second_budget_is_used_on_two_thousand_rows() -> None:
    elapsed, gaps, result = _timed(rows=2000, budget=30.0)
    assert result.budget_spent
    assert 20.0 <= elapsed <= 35.0
    assert max(gaps) < 6.0
    assert len(result.candidates) == 3


def test_a_text_target_for_regression_is_a_400_naming_it() -> None:
    data = [{**row, "y": "high"} for row in _regression()]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("titan", data, {"target": "y", "task": "regression"})
    assert refused.value.code == "not_numeric"
    assert refused.value.param == "params.target"
    assert "'y'" in refused.value.message


def test_a_class_with_too_few_rows_is_a_400_naming_it() -> None:
    data = [dict(row) for row in _classification()]
    for row in data[:3]:
        row["y"] = "maybe"
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("titan", data, {"target": "y"})
    assert refused.value.code == "rare_class"
    assert refused.value.param == "params.target"
    assert "'maybe' (3)" in refused.value.message


def test_the_target_among_the_features_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("titan", _regression(), {"target": "y", "features": ["x1", "y"]})
    assert refused.value.code == "target_in_features"
    assert refused.value.param == "params.features"


def test_rows_to_predict_without_a_feature_are_a_400_naming_it() -> None:
    predict = [{"x1": 1.0, "x2": 0.0, "n1": 0.0, "n2": 0.0}]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("titan", _regression(), {"target": "y"}, tables={"predict": predict})
    assert refused.value.code == "unknown_column"
    assert refused.value.param == "params.predict"
    assert "'n3'" in refused.value.message


def test_a_budget_outside_its_bounds_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="time_budget_s"):
        msgspec.convert({"target": "y", "time_budget_s": 0.5}, TitanParams)
    with pytest.raises(msgspec.ValidationError, match="time_budget_s"):
        msgspec.convert({"target": "y", "time_budget_s": 7200}, TitanParams)
