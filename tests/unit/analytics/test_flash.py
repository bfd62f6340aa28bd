"""The flash engine: on a planted threshold rule (y = x1 > 5) the counterfactual moves x1 to
just past 5 and changes nothing else; every counterfactual returned really flips the fitted
model's prediction (re-predicted with the model the engine fits) and changes only allowed
columns; a desired class and a regression threshold are reached; and a flip the allowed
columns cannot make is a 422."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.flash import FlashParams, model_for
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct


@cache
def _threshold_rule(rows: int = 400) -> Records:
    """x1, x2, x3 uniform on 0-10 and a colour; y = 1 exactly when x1 > 5."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, size=(rows, 3)).round(3)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    return [
        {
            "x1": float(a),
            "x2": float(b),
            "x3": float(c),
            "colour": str(k),
            "y": int(a > 5),
        }
        for (a, b, c), k in zip(x, colour, strict=True)
    ]


def _row_near(data: Records, column: str, low: float, high: float) -> int:
    return next(i for i, row in enumerate(data) if low < float(row[column]) < high)


def _repredict(data: Records, params: dict[str, Any], changes: list[Any]) -> Any:
    """The model the engine fits, asked about the row with the result's changes made."""
    typed = msgspec.convert(params, FlashParams)
    model = model_for(pd.DataFrame(data), typed, seed=0)
    row = {k: v for k, v in data[typed.row].items() if k != typed.target}
    for change in changes:
        row[change.column] = change.new
    return model.predict(pd.DataFrame([row]))[0]


def test_a_planted_threshold_rule_moves_x1_just_past_five_and_nothing_else() -> None:
    data = _threshold_rule()
    row = _row_near(data, "x1", 2.5, 3.5)
    params = {"target": "y", "row": row}
    result = run_direct("flash", data, params).result
    assert result.task == "classification"
    assert result.cv_metric == "accuracy"
    assert result.cv_score > 0.95
    assert (result.original_prediction, result.new_prediction) == ("0", "1")
    (change,) = result.changes
    assert change.column == "x1"
    assert change.original == data[row]["x1"]
    assert 5.0 - 0.1 < change.new < 5.0 + 0.1
    assert change.distance == pytest.approx(result.distance)
    assert result.new_probability > 0.5
    assert result.original_probability > 0.5
    # the model the engine fitted predicts the counterfactual as the result says
    assert str(_repredict(data, params, result.changes)) == "1"
    # and a hair less of a change does not flip it: the change is just enough
    shy = msgspec.structs.replace(
        change, new=change.original + 0.98 * (change.new - change.original)
    )
    assert str(_repredict(data, params, [shy])) == "0"


def test_a_high_row_is_moved_down_past_five() -> None:
    data = _threshold_rule()
    row = _row_near(data, "x1", 8.0, 9.0)
    result = run_direct("flash", data, {"target": "y", "row": row, "max_changes": 1}).result
    (change,) = result.changes
    assert change.column == "x1"
    assert 5.0 - 0.1 < change.new < 5.0 + 0.1
    assert result.new_prediction == "0"


def test_only_allowed_columns_change_and_a_flip_they_cannot_make_is_a_422() -> None:
    data = _threshold_rule()
    row = _row_near(data, "x1", 0.5, 1.5)
    with pytest.raises(UnprocessableEntityError) as refused:
        run_direct("flash", data, {"target": "y", "row": row, "allowed": ["x2", "x3", "colour"]})
    assert refused.value.code == "no_counterfactual"
    assert "x2, x3, colour" in refused.value.message
    assert "candidates tried" in refused.value.message


def test_a_category_is_changed_when_that_is_the_smaller_change() -> None:
    """y = 1 for red rows and for x1 > 8: a blue row with x1 = 2 turns red rather than
    travelling most of x1's range."""
    rng = np.random.default_rng(3)
    data: Records = []
    for a, b in rng.uniform(0, 10, size=(400, 2)).round(3):
        colour = str(rng.choice(["red", "green", "blue"]))
        data.append(
            {"x1": float(a), "x2": float(b), "colour": colour, "y": int(colour == "red" or a > 8)}
        )
    row = next(i for i, r in enumerate(data) if r["colour"] == "blue" and 1.5 < r["x1"] < 2.5)
    params = {"target": "y", "row": row}
    result = run_direct("flash", data, params).result
    assert [(c.column, c.original, c.new, c.distance) for c in result.changes] == [
        ("colour", "blue", "red", 1.0)
    ]
    assert result.distance == 1.0
    assert str(_repredict(data, params, result.changes)) == "1"
    only_x1 = run_direct("flash", data, {**params, "allowed": ["x1"]}).result
    assert [c.column for c in only_x1.changes] == ["x1"]
    assert only_x1.changes[0].new == pytest.approx(8.0, abs=0.1)
    assert only_x1.distance > 1.0


def _three_classes() -> Records:
    rng = np.random.default_rng(1)
    rows = []
    for a, b in rng.uniform(0, 10, size=(300, 2)).round(3):
        label = "low" if a < 3 else "mid" if a < 7 else "high"
        rows.append({"x1": float(a), "x2": float(b), "grade": label})
    return rows


def test_a_desired_class_is_reached_and_any_other_class_takes_the_nearest() -> None:
    data = _three_classes()
    row = _row_near(data, "x1", 1.0, 2.0)
    wanted = run_direct("flash", data, {"target": "grade", "row": row, "desired": "high"}).result
    assert wanted.new_prediction == "high"
    assert [c.column for c in wanted.changes] == ["x1"]
    assert wanted.changes[0].new == pytest.approx(7.0, abs=0.15)
    nearest = run_direct("flash", data, {"target": "grade", "row": row}).result
    assert nearest.new_prediction == "mid"
    assert nearest.changes[0].new == pytest.approx(3.0, abs=0.15)
    assert nearest.distance < wanted.distance


def test_a_regression_prediction_is_moved_across_the_threshold() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, size=(400, 3))
    y = 3 * x[:, 0] + 2 * x[:, 1] + rng.normal(0, 0.5, size=400)
    data: Records = [
        {"x1": float(a), "x2": float(b), "x3": float(c), "y": float(v)}
        for (a, b, c), v in zip(x, y, strict=True)
    ]
    row = next(i for i, r in enumerate(data) if 8 < float(r["y"]) < 12)
    params = {"target": "y", "row": row, "threshold": 25.0, "allowed": ["x1", "x3"]}
    direct = run_direct("flash", data, params)
    result = direct.result
    assert result.task == "regression"
    assert result.cv_score > 0.9
    assert result.original_prediction < 25.0 < result.new_prediction
    assert result.original_probability is None
    assert {c.column for c in result.changes} <= {"x1", "x3"}
    assert "x1" in {c.column for c in result.changes}
    refit = _repredict(data, params, result.changes)
    assert refit == pytest.approx(result.new_prediction)
    assert refit > 25.0
    assert_valid_charts(direct.charts)
    layered = direct.charts[1]["layer"]
    assert [view["mark"] for view in layered] == ["line", {"type": "rule", "color": "#d62728"}]


def test_the_example_answers_with_valid_charts() -> None:
    method = METHODS["flash"]
    params = method.example.params
    direct = run_direct("flash", method.example.data, params)
    result = direct.result
    assert result.original_prediction == "no"
    assert result.new_prediction == "yes"
    assert {c.column for c in result.changes} <= set(params.allowed)
    assert result.changes
    assert "makes it 'yes'" in direct.summary
    assert len(direct.charts) == 2
    assert_valid_charts(direct.charts)
    replayed = _repredict(method.example.data, msgspec.to_builtins(params), result.changes)
    assert str(replayed) == "yes"


def test_same_seed_same_answer_and_progress_rises() -> None:
    method = METHODS["flash"]
    first = run_direct("flash", method.example.data, method.example.params, seed=2)
    again = run_direct("flash", method.example.data, method.example.params, seed=2)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) >= 5


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"target": "y", "row": 400}, "row_out_of_range", "params.row"),
        ({"target": "y", "row": 0, "task": "regression"}, "missing_threshold", "params.threshold"),
        ({"target": "y", "row": 0, "threshold": 0.5}, "not_regression", "params.threshold"),
        ({"target": "y", "row": 0, "desired": "2"}, "unknown_class", "params.desired"),
        ({"target": "y", "row": 0, "allowed": ["x1", "y"]}, "not_a_feature", "params.allowed"),
    ],
)
def test_bad_goals_are_400s(params: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("flash", _threshold_rule(), params)
    assert (refused.value.code, refused.value.param) == (code, param)


def test_a_row_already_in_the_desired_class_is_a_400() -> None:
    data = _threshold_rule()
    row = _row_near(data, "x1", 8.0, 9.0)
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("flash", data, {"target": "y", "row": row, "desired": "1"})
    assert (refused.value.code, refused.value.param) == ("already_desired", "params.desired")
    assert f"Row {row} is already predicted '1'" in refused.value.message
