"""The universal_graph engine: every chart type is a valid Vega-Lite spec, the values it draws
are those of a pandas groupby (or histogram, or quartiles) computed here, sort and limit make a
top N, the inline rows are bounded, and each request a chart type cannot draw is a 400 naming
the param."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.universal_graph import MAX_SHOWN
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

NAME = "universal_graph"


def _shop(seed: int = 0, count: int = 240) -> Records:
    """Sales with planted region levels (north 300 > east 200 > south 100 > west 50; the
    regions take turns, so each has a quarter of the rows), a random product and month, a
    text note and a few missing sales."""
    rng = np.random.default_rng(seed)
    levels = {"north": 300.0, "east": 200.0, "south": 100.0, "west": 50.0}
    rows: Records = []
    for index in range(count):
        region = list(levels)[index % 4]
        sales: float | None = float(levels[region] + rng.normal(0, 20))
        if index % 37 == 5:
            sales = None
        rows.append(
            {
                "region": region,
                "product": ["tea", "coffee", "cocoa"][int(rng.integers(3))],
                "month": f"2024-{int(rng.integers(1, 13)):02d}-01",
                "units": int(rng.integers(1, 10)),
                "sales": sales,
                "note": f"n{index % 5}",
            }
        )
    return rows


def _values(direct: Any) -> list[dict[str, Any]]:
    spec = direct.result.spec
    values: list[dict[str, Any]] = spec["data"]["values"]
    return values


CHARTS: list[dict[str, Any]] = [
    {"chart": "bar", "x": "region", "y": "sales", "color": "product"},
    {"chart": "bar", "x": "units", "sort": "-value", "limit": 3},
    {"chart": "line", "x": "month", "y": "sales", "aggregate": "mean", "color": "region"},
    {"chart": "line", "x": "units", "y": "sales"},
    {"chart": "area", "x": "month", "y": "sales", "aggregate": "sum", "color": "product"},
    {"chart": "point", "x": "units", "y": "sales", "color": "region"},
    {"chart": "scatter", "x": "units", "y": "sales", "color": "units"},
    {"chart": "histogram", "x": "sales", "bins": 15},
    {"chart": "histogram", "x": "sales", "color": "region"},
    {"chart": "boxplot", "x": "region", "y": "sales", "sort": "-value"},
    {"chart": "boxplot", "y": "sales"},
    {"chart": "heatmap", "x": "region", "y": "product", "color": "sales"},
    {"chart": "heatmap", "x": "month", "y": "units"},
    {"chart": "pie", "x": "product", "y": "sales"},
    {"chart": "arc", "x": "region"},
]


@pytest.mark.parametrize("params", CHARTS, ids=lambda params: str(params["chart"]))
def test_every_chart_type_is_a_valid_vega_lite_spec(params: dict[str, Any]) -> None:
    direct = run_direct(NAME, _shop(), params)
    assert_valid_charts(direct.charts)
    assert direct.charts == [direct.result.spec]
    assert direct.result.rows_in == 240
    assert 0 < direct.result.rows_shown == direct.result.rows_out <= MAX_SHOWN
    assert direct.summary.strip()


@pytest.mark.parametrize("aggregate", ["sum", "mean", "median", "count", "min", "max"])
def test_aggregated_values_equal_a_pandas_groupby(aggregate: str) -> None:
    data = _shop(1)
    params = {"chart": "bar", "x": "region", "y": "sales", "color": "product"}
    direct = run_direct(NAME, data, {**params, "aggregate": aggregate})
    frame = pd.DataFrame(data).dropna(subset=["sales"])
    want = frame.groupby(["region", "product"])["sales"].agg(aggregate)
    got = {(row["x"], row["color"]): row["value"] for row in _values(direct)}
    assert got.keys() == set(want.index)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12)
    dropped = sum(row["sales"] is None for row in data)
    assert direct.result.rows_dropped == dropped > 0
    assert direct.result.rows_out == len(want)
    assert direct.result.aggregate == aggregate
    assert any(f"{dropped} rows" in warning for warning in direct.warnings)


def test_a_heatmap_line_and_pie_aggregate_as_pandas_does() -> None:
    data = _shop(2)
    frame = pd.DataFrame(data)
    heat = run_direct(NAME, data, {"chart": "heatmap", "x": "region", "y": "month"})
    counts = frame.groupby(["region", "month"]).size()
    assert {(row["x"], row["y"]): row["value"] for row in _values(heat)} == counts.to_dict()
    assert heat.result.aggregate == "count"

    line = run_direct(
        NAME, data, {"chart": "line", "x": "month", "y": "units", "aggregate": "median"}
    )
    medians = frame.groupby("month")["units"].median()
    assert [row["value"] for row in _values(line)] == medians.tolist()
    assert [row["x"][:10] for row in _values(line)] == list(medians.index)  # time order
    assert line.result.spec["encoding"]["x"]["type"] == "temporal"
    raw = run_direct(NAME, data, {"chart": "line", "x": "month", "y": "units"})
    months = [row["x"] for row in _values(raw)]
    assert months == sorted(months)
    assert len(months) == len(data)

    pie = run_direct(NAME, data, {"chart": "pie", "x": "region", "y": "units"})
    sums = frame.groupby("region")["units"].sum()
    assert {row["x"]: row["value"] for row in _values(pie)} == sums.to_dict()
    assert pie.result.aggregate == "sum"


def test_histogram_counts_are_numpys_with_shared_edges() -> None:
    data = _shop(3)
    frame = pd.DataFrame(data).dropna(subset=["sales"])
    direct = run_direct(NAME, data, {"chart": "histogram", "x": "sales", "bins": 12})
    counts, edges = np.histogram(frame["sales"], bins=12)
    values = _values(direct)
    assert [row["value"] for row in values] == counts.tolist()
    assert [row["bin_start"] for row in values] == pytest.approx(edges[:-1].tolist())
    assert sum(row["value"] for row in values) == len(frame)

    grouped = run_direct(
        NAME, data, {"chart": "histogram", "x": "sales", "bins": 12, "color": "product"}
    )
    for product, rows in frame.groupby("product"):
        mine = [row for row in _values(grouped) if row["color"] == product]
        assert [row["value"] for row in mine] == np.histogram(rows["sales"], bins=edges)[0].tolist()


def test_a_boxplot_has_the_quartiles_and_tukey_whiskers() -> None:
    data = _shop(4)
    data.append({"region": "west", "product": "tea", "month": "2024-01-01", "sales": 900.0})
    direct = run_direct(NAME, data, {"chart": "boxplot", "x": "region", "y": "sales"})
    frame = pd.DataFrame(data).dropna(subset=["sales"])
    boxes = {row["x"]: row for row in direct.result.spec["layer"][0]["data"]["values"]}
    assert set(boxes) == set(frame["region"])
    for region, rows in frame.groupby("region"):
        q1, median, q3 = rows["sales"].quantile([0.25, 0.5, 0.75])
        box = boxes[region]
        assert (box["q1"], box["median"], box["q3"]) == pytest.approx((q1, median, q3))
        assert box["count"] == len(rows)
        assert box["upper"] <= q3 + 1.5 * (q3 - q1)
    assert boxes["west"]["upper"] < 900
    outliers = direct.result.spec["layer"][-1]["data"]["values"]
    assert {"x": "west", "value": 900.0} in outliers


def test_sort_and_limit_make_a_top_n_of_whole_categories() -> None:
    """The planted region levels: the two largest sums are north and east, each with all
    its product bars."""
    data = _shop(5)
    params = {"chart": "bar", "x": "region", "y": "sales", "color": "product"}
    direct = run_direct(NAME, data, {**params, "sort": "-value", "limit": 2})
    values = _values(direct)
    assert {row["x"] for row in values} == {"north", "east"}
    assert values[0]["x"] == "north"
    assert len(values) == 6 == direct.result.rows_out
    ascending = run_direct(NAME, data, {**params, "sort": "x", "limit": 1})
    assert {row["x"] for row in _values(ascending)} == {"east"}
    assert direct.result.spec["encoding"]["x"]["sort"] is None  # drawn in the rows' order


def test_many_points_are_a_seeded_sample_of_the_bound() -> None:
    rng = np.random.default_rng(6)
    data: Records = [{"a": float(a), "b": float(b)} for a, b in rng.normal(size=(6000, 2))]
    params = {"chart": "point", "x": "a", "y": "b"}
    first = run_direct(NAME, data, params, seed=3)
    again = run_direct(NAME, data, params, seed=3)
    other = run_direct(NAME, data, params, seed=4)
    assert (first.result.rows_out, first.result.rows_shown) == (6000, MAX_SHOWN)
    assert first.result == again.result
    assert first.result.spec != other.result.spec
    assert any(f"sample of {MAX_SHOWN}" in warning for warning in first.warnings)


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"chart": "bar", "y": "sales"}, "missing_param", "params.x"),
        ({"chart": "bar", "x": "region", "y": "note"}, "not_numeric", "params.y"),
        ({"chart": "bar", "x": "region", "aggregate": "mean"}, "missing_param", "params.y"),
        ({"chart": "line", "x": "month"}, "missing_param", "params.y"),
        ({"chart": "histogram", "x": "region"}, "not_numeric", "params.x"),
        (
            {"chart": "histogram", "x": "sales", "aggregate": "mean"},
            "unsupported_aggregate",
            "params.aggregate",
        ),
        ({"chart": "histogram", "x": "sales", "y": "units"}, "unused_param", "params.y"),
        (
            {"chart": "boxplot", "x": "region", "y": "sales", "aggregate": "sum"},
            "unsupported_aggregate",
            "params.aggregate",
        ),
        ({"chart": "boxplot", "x": "region", "y": "note"}, "not_numeric", "params.y"),
        ({"chart": "pie", "x": "region", "color": "product"}, "unused_param", "params.color"),
        (
            {"chart": "heatmap", "x": "region", "y": "product", "aggregate": "sum"},
            "missing_param",
            "params.color",
        ),
        (
            {"chart": "heatmap", "x": "region", "y": "product", "color": "note"},
            "not_numeric",
            "params.color",
        ),
        ({"chart": "bar", "x": "region", "bins": 5}, "unused_param", "params.bins"),
        ({"chart": "bar", "x": "region", "color": "nope"}, "unknown_column", "params.color"),
    ],
)
def test_an_impossible_request_is_a_400_naming_the_param(
    params: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(NAME, _shop(), params)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert param.removeprefix("params.") in refused.value.message


def test_a_count_takes_a_text_column_and_counts_its_present_values() -> None:
    data = _shop(7)
    data[0]["note"] = None
    direct = run_direct(
        NAME, data, {"chart": "bar", "x": "region", "y": "note", "aggregate": "count"}
    )
    want = pd.DataFrame(data).groupby("region")["note"].count()
    assert {row["x"]: row["value"] for row in _values(direct)} == want.to_dict()


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS[NAME]
    first = run_direct(NAME, method.example.data, method.example.params, seed=5)
    again = run_direct(NAME, method.example.data, method.example.params, seed=5)
    assert first.result == again.result
    assert_valid_charts(first.charts)
    frame = pd.DataFrame(method.example.data)
    totals = frame.groupby("region")["sales"].sum().sort_values(ascending=False)
    order = list(dict.fromkeys(row["x"] for row in _values(first)))
    assert order == list(totals.index)
    assert first.result.rows_out == 12
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9
