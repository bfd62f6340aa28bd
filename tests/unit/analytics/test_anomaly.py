"""The anomaly engine: planted outliers (far out in one column, or breaking the correlation
between columns) are found with high recall and precision, and a one-column outlier is
explained by that column."""

from __future__ import annotations

from functools import cache

import msgspec
import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

NAMES = ["a", "b", "c"]


class Planted(msgspec.Struct, frozen=True):
    data: Records
    outliers: frozenset[int]
    #: one-column outliers: row -> the column that was moved
    moved: dict[int, str]


def _records(values: np.ndarray) -> Records:
    return [{name: float(v) for name, v in zip(NAMES, row, strict=True)} for row in values]


@cache
def _planted(seed: int = 1) -> Planted:
    """1000 rows of three Gaussian columns correlated at 0.8; ten rows moved 6-8 SD in one
    column, ten rows whose columns disagree (+v in one, -v in another, v < 2.2: no column is
    unusual on its own)."""
    rng = np.random.default_rng(seed)
    cov = np.full((3, 3), 0.8)
    np.fill_diagonal(cov, 1.0)
    values = rng.multivariate_normal(np.zeros(3), cov, size=1000)
    rows = rng.choice(1000, size=20, replace=False)
    moved = {}
    for row in rows[:10]:
        column = int(rng.integers(3))
        values[row, column] += rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 8.0)
        moved[int(row)] = NAMES[column]
    for row in rows[10:]:
        up, down = rng.choice(3, size=2, replace=False)
        size = rng.uniform(1.5, 2.2)
        values[row] = rng.normal(0.0, 0.3, size=3)
        values[row, up], values[row, down] = size, -size
    return Planted(data=_records(values), outliers=frozenset(int(r) for r in rows), moved=moved)


def _precision_recall(found: set[int], truth: frozenset[int]) -> tuple[float, float]:
    hits = len(found & truth)
    return hits / max(len(found), 1), hits / len(truth)


@pytest.mark.parametrize("contamination", [0.02, "auto"])
def test_planted_outliers_are_found(contamination: float | str) -> None:
    planted = _planted()
    result = run_direct("anomaly", planted.data, {"contamination": contamination}).result
    found = {item.row for item in result.anomalies}
    precision, recall = _precision_recall(found, planted.outliers)
    assert recall >= 0.9, (precision, recall)
    assert precision >= 0.8, (precision, recall)
    assert result.count == len(found)
    assert len(result.scores) == 1000
    assert all(result.scores[row] > result.threshold for row in found)
    assert sum(score > result.threshold for score in result.scores) == len(found)
    if contamination == 0.02:
        assert len(found) == 20


def test_correlation_breakers_outscore_every_normal_row() -> None:
    """A row whose columns disagree, though none is unusual on its own, scores above 99% of
    the normal rows."""
    planted = _planted()
    scores = np.array(run_direct("anomaly", planted.data, {"contamination": 0.02}).result.scores)
    breakers = [row for row in planted.outliers if row not in planted.moved]
    normal = [row for row in range(1000) if row not in planted.outliers]
    assert scores[breakers].min() > np.quantile(scores[normal], 0.99)


def test_a_one_column_outlier_names_that_column() -> None:
    planted = _planted()
    result = run_direct("anomaly", planted.data, {"contamination": 0.02}).result
    by_row = {item.row: item for item in result.anomalies}
    for row, column in planted.moved.items():
        assert by_row[row].columns == [column], (row, by_row[row])
        assert abs(by_row[row].z[0]) > 4.0


def test_clean_data_has_few_anomalies_with_auto() -> None:
    rng = np.random.default_rng(2)
    cov = np.full((3, 3), 0.5)
    np.fill_diagonal(cov, 1.0)
    data = _records(rng.multivariate_normal(np.zeros(3), cov, size=800))
    result = run_direct("anomaly", data, {}).result
    assert result.threshold_rule == "adjusted_boxplot"
    assert result.count <= 8  # at most 1% of 800 rows


def test_a_given_threshold_is_used() -> None:
    planted = _planted()
    result = run_direct("anomaly", planted.data, {"threshold": 5.0}).result
    assert (result.threshold, result.threshold_rule) == (5.0, "given")
    assert result.count == sum(score > 5.0 for score in result.scores)


def test_the_example_answers_with_valid_charts() -> None:
    method = METHODS["anomaly"]
    direct = run_direct("anomaly", method.example.data, method.example.params)
    rows = {item.row: item.columns for item in direct.result.anomalies}
    assert set(rows) == {17, 64, 101}
    assert rows[17] == ["humidity"]
    assert rows[101] == ["pressure"]
    assert set(rows[64]) == {"temperature", "pressure"}
    assert "3 of 120 rows" in direct.summary
    assert_valid_charts(direct.charts)
    scatter, histogram = direct.charts
    assert scatter["mark"] == "point"
    # pressure is named by two anomalies, temperature (first on the tie) by one
    assert (scatter["encoding"]["x"]["title"], scatter["encoding"]["y"]["title"]) == (
        "pressure",
        "temperature",
    )
    assert sum(value["anomaly"] == "anomaly" for value in scatter["data"]["values"]) == 3
    assert [view["mark"] for view in histogram["layer"]] == [
        "bar",
        {"type": "rule", "color": "#d62728"},
    ]


def test_same_seed_same_answer_and_progress_rises() -> None:
    method = METHODS["anomaly"]
    first = run_direct("anomaly", method.example.data, method.example.params, seed=3)
    again = run_direct("anomaly", method.example.data, method.example.params, seed=3)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    other = run_direct("anomaly", method.example.data, method.example.params, seed=4)
    assert other.result.scores != first.result.scores  # the forest follows the seed
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] > 0.9


def test_missing_values_are_filled_with_a_warning() -> None:
    method = METHODS["anomaly"]
    data = [dict(row) for row in method.example.data]
    data[5]["humidity"] = None
    direct = run_direct("anomaly", data, method.example.params)
    assert len(direct.result.scores) == len(data)
    assert any("missing" in warning for warning in direct.warnings)


def test_default_columns_skip_text_and_constant_columns() -> None:
    method = METHODS["anomaly"]
    data = [{**row, "site": 7} for row in method.example.data]
    direct = run_direct("anomaly", data, {})
    assert direct.result.columns == ["temperature", "pressure", "humidity"]
    assert any("site" in warning for warning in direct.warnings)


def test_a_text_column_named_is_a_400() -> None:
    method = METHODS["anomaly"]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("anomaly", method.example.data, {"columns": ["temperature", "sensor"]})
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.columns")
    assert "'sensor'" in refused.value.message


def test_data_without_a_numeric_column_is_a_400() -> None:
    data: Records = [{"name": f"n{i}", "flag": True} for i in range(20)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("anomaly", data, {})
    assert (refused.value.code, refused.value.param) == ("no_numeric_columns", "params.columns")


def test_contamination_out_of_range_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="contamination"):
        msgspec.convert({"contamination": 0.7}, METHODS["anomaly"].params)
