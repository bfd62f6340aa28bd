"""The inventory_optimization engine: EOQ, safety stock (with and without lead-time
variability), reorder point and ABC classes equal the textbook formulas computed by hand."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

#: item: (mean weekly demand, unit cost, lead time in weeks, lead-time SD in weeks)
ITEMS = {
    "anchor": (500.0, 1.2, 1.0, 0.2),
    "bracket": (80.0, 14.0, 2.0, 0.5),
    "clamp": (30.0, 55.0, 3.0, 1.0),
    "drill": (4.0, 310.0, 4.0, 1.5),
    "epoxy": (150.0, 6.0, 1.5, 0.3),
    "fuse": (900.0, 0.4, 0.5, 0.1),
}
BASE: dict[str, Any] = {"item": "item", "demand": "demand", "ordering_cost": 40.0}


def _weekly(seed: int, weeks: int = 52) -> Records:
    rng = np.random.default_rng(seed)
    data: Records = []
    for week in range(weeks):
        for name, (mean, cost, lead, lead_sd) in ITEMS.items():
            data.append(
                {
                    "week": week,
                    "item": name,
                    "demand": float(max(0.0, round(rng.normal(mean, 0.3 * mean), 1))),
                    "cost": cost,
                    "lead": lead,
                    "lead_sd": lead_sd,
                }
            )
    return data


def _demand(data: Records, name: str) -> list[float]:
    return [float(str(row["demand"])) for row in data if row["item"] == name]


def _by_item(result: Any) -> dict[str, Any]:
    return {policy.item: policy for policy in result.items}


def test_fixed_lead_time_policy_equals_the_textbook_formulas() -> None:
    data = _weekly(0)
    params = {
        **BASE,
        "period": "week",
        "periods_per_year": 52,
        "lead_time": 2.0,
        "holding_cost": 3.0,
        "service_level": 0.98,
    }
    result = run_direct("inventory_optimization", data, params).result
    z = norm.ppf(0.98)
    assert result.z == pytest.approx(z, rel=1e-15)
    assert result.periods_per_year == 52
    for name, policy in _by_item(result).items():
        demand = _demand(data, name)
        mean, sd = statistics.fmean(demand), statistics.stdev(demand)
        annual = mean * 52
        eoq = math.sqrt(2 * annual * 40.0 / 3.0)
        stock = z * sd * math.sqrt(2.0)
        assert policy.periods == 52
        assert policy.mean_demand == pytest.approx(mean, rel=1e-12)
        assert policy.demand_std == pytest.approx(sd, rel=1e-12)
        assert policy.annual_demand == pytest.approx(annual, rel=1e-12)
        assert policy.eoq == pytest.approx(eoq, rel=1e-12)
        assert policy.safety_stock == pytest.approx(stock, rel=1e-12)
        assert policy.reorder_point == pytest.approx(mean * 2.0 + stock, rel=1e-12)
        assert policy.orders_per_year == pytest.approx(annual / eoq, rel=1e-12)
        assert policy.annual_ordering_cost == pytest.approx(annual / eoq * 40.0, rel=1e-12)
        assert policy.annual_holding_cost == pytest.approx((eoq / 2 + stock) * 3.0, rel=1e-12)
        assert policy.lead_time_std == 0


def test_varying_lead_times_per_item_use_the_combined_formula() -> None:
    data = _weekly(1)
    params = {
        **BASE,
        "period": "week",
        "periods_per_year": 52,
        "lead_time_column": "lead",
        "lead_time_std_column": "lead_sd",
        "unit_cost": "cost",
        "holding_rate": 0.2,
    }
    result = run_direct("inventory_optimization", data, params).result
    z = norm.ppf(0.95)
    for name, policy in _by_item(result).items():
        _, cost, lead, lead_sd = ITEMS[name]
        demand = _demand(data, name)
        mean, sd = statistics.fmean(demand), statistics.stdev(demand)
        stock = z * math.sqrt(lead * sd**2 + mean**2 * lead_sd**2)
        # each item's column values are its mean over the rows (equal here up to rounding)
        assert policy.lead_time == pytest.approx(lead, rel=1e-14)
        assert policy.lead_time_std == pytest.approx(lead_sd, rel=1e-14)
        assert policy.holding_cost == pytest.approx(0.2 * cost, rel=1e-14)
        eoq = math.sqrt(2 * mean * 52 * 40.0 / (0.2 * cost))
        assert policy.eoq == pytest.approx(eoq, rel=1e-12)
        assert policy.safety_stock == pytest.approx(stock, rel=1e-12)
        assert policy.reorder_point == pytest.approx(mean * lead + stock, rel=1e-12)
        # variability of the lead time only adds safety stock
        assert policy.safety_stock > z * sd * math.sqrt(lead)


def test_a_lead_time_std_param_applies_to_every_item() -> None:
    data = _weekly(2)
    params = {
        **BASE,
        "periods_per_year": 52,
        "lead_time": 3.0,
        "lead_time_std": 0.5,
        "holding_cost": 2.0,
        "service_level": 0.9,
    }
    result = run_direct("inventory_optimization", data, params).result
    z = norm.ppf(0.9)
    for name, policy in _by_item(result).items():
        demand = _demand(data, name)
        mean, sd = statistics.fmean(demand), statistics.stdev(demand)
        expected = z * math.sqrt(3.0 * sd**2 + mean**2 * 0.5**2)
        assert policy.safety_stock == pytest.approx(expected, rel=1e-12)


def test_abc_classes_rank_annual_demand_value_as_a_hand_computation() -> None:
    data = _weekly(3)
    params = {
        **BASE,
        "periods_per_year": 52,
        "lead_time": 1.0,
        "unit_cost": "cost",
        "holding_rate": 0.25,
        "a_threshold": 0.7,
        "b_threshold": 0.9,
    }
    result = run_direct("inventory_optimization", data, params).result
    values = {name: statistics.fmean(_demand(data, name)) * 52 * ITEMS[name][1] for name in ITEMS}
    ranked = sorted(values, key=lambda name: -values[name])
    total = sum(values.values())
    expected: dict[str, str] = {}
    reached = 0.0
    for name in ranked:
        expected[name] = "A" if reached / total < 0.7 else "B" if reached / total < 0.9 else "C"
        reached += values[name]
    assert [policy.item for policy in result.items] == ranked
    assert {policy.item: policy.abc_class for policy in result.items} == expected
    for policy in result.items:
        assert policy.annual_value == pytest.approx(values[policy.item], rel=1e-12)
    assert [c.items for c in result.classes] == [
        sum(label == name for label in expected.values()) for name in "ABC"
    ]
    assert sum(c.share for c in result.classes) == pytest.approx(1.0)
    assert result.abc_basis == "value"


@pytest.mark.parametrize(("step_days", "per_year"), [(1, 365.0), (7, 52.0), (None, 12.0)])
def test_periods_per_year_is_inferred_from_the_dates(
    step_days: int | None, per_year: float
) -> None:
    data = _weekly(4, weeks=10)
    for row in data:
        week = int(str(row["week"]))
        if step_days is None:
            when = dt.date(2024 + week // 12, week % 12 + 1, 1)
        else:
            when = dt.date(2024, 1, 1) + dt.timedelta(days=step_days * week)
        row["week"] = when.isoformat()
    params = {**BASE, "period": "week", "lead_time": 1.0, "holding_cost": 1.0}
    result = run_direct("inventory_optimization", data, params).result
    assert result.periods_per_year == per_year
    for name, policy in _by_item(result).items():
        assert policy.annual_demand == pytest.approx(
            statistics.fmean(_demand(data, name)) * per_year, rel=1e-12
        )


def test_an_item_with_one_demand_value_is_left_out_with_a_warning() -> None:
    data: Records = [*_weekly(5, weeks=6), {"week": 0, "item": "lonely", "demand": 3.0}]
    params = {**BASE, "periods_per_year": 52, "lead_time": 1.0, "holding_cost": 1.0}
    direct = run_direct("inventory_optimization", data, params)
    assert "lonely" not in _by_item(direct.result)
    assert any("lonely" in warning for warning in direct.warnings)
    assert any("unit_cost" in warning for warning in direct.warnings)
    assert direct.result.abc_basis == "units"


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["inventory_optimization"]
    first = run_direct("inventory_optimization", method.example.data, method.example.params)
    again = run_direct("inventory_optimization", method.example.data, method.example.params)
    assert first.result == again.result
    assert first.result.periods_per_year == 12
    assert len(first.result.items) == 8
    assert first.result.items[0].abc_class == "A"
    assert len(first.charts) == 2
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


#: Params that are valid but for what each case changes (None: left out).
VALID: dict[str, Any] = {**BASE, "periods_per_year": 52, "lead_time": 1.0, "holding_cost": 1.0}


@pytest.mark.parametrize(
    ("changes", "code", "param"),
    [
        ({"lead_time_column": "lead"}, "conflicting_params", "lead_time"),
        ({"lead_time": None}, "missing_param", "lead_time"),
        ({"holding_cost": None}, "missing_param", "holding_cost"),
        ({"holding_cost": None, "holding_rate": 0.2}, "missing_param", "unit_cost"),
        ({"period": "week", "periods_per_year": None}, "missing_param", "periods_per_year"),
        ({"b_threshold": 0.5}, "invalid_thresholds", "b_threshold"),
    ],
)
def test_inconsistent_params_are_a_400(changes: dict[str, Any], code: str, param: str) -> None:
    params = {key: value for key, value in {**VALID, **changes}.items() if value is not None}
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("inventory_optimization", _weekly(0, weeks=4), params)
    assert (refused.value.code, refused.value.param) == (code, f"params.{param}")


def test_negative_demand_is_a_400_naming_the_column() -> None:
    data = _weekly(0, weeks=4)
    data[5]["demand"] = -3.0
    params = {**BASE, "periods_per_year": 52, "lead_time": 1.0, "holding_cost": 1.0}
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("inventory_optimization", data, params)
    assert (refused.value.code, refused.value.param) == ("negative_value", "params.demand")
    assert "row 5" in refused.value.message
