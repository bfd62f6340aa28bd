"""The revenue_forecast engine: on revenue with a planted growth and season the interval holds
the held-out truth at about its nominal rate and the growth rates find the planted growth;
the history's growth rates and the what-ifs equal the same figures computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

#: The planted growth per year.
GROWTH = 0.10


def _revenue(seed: int, count: int) -> Records:
    """Monthly revenue from 2015-01: 1000 growing 10% a year, a yearly cycle of +-15% and
    lognormal noise of 3%."""
    rng = np.random.default_rng(seed)
    t = np.arange(count)
    season = 1 + 0.15 * np.sin(2 * np.pi * t / 12)
    y = 1000 * (1 + GROWTH) ** (t / 12) * season * np.exp(rng.normal(0, 0.03, count))
    return [
        {"month": f"{2015 + k // 12}-{k % 12 + 1:02d}-01", "revenue": float(value)}
        for k, value in enumerate(y)
    ]


def _params(**changes: object) -> dict[str, object]:
    return {"time": "month", "revenue": "revenue", "horizon": 12, **changes}


def test_the_interval_holds_held_out_revenue_at_its_level_and_the_growth_is_found() -> None:
    """Fifteen series of six years, each forecast a seventh year at 90%: the held-out values
    fall inside the interval about 90% of the time (an interval blind to the noise or to the
    growth's uncertainty would hold far fewer), and the trend's growth per year lies within a
    point of the planted 10% on every series."""
    inside = total = 0
    implied: list[float] = []
    for seed in range(15):
        data = _revenue(seed, 84)
        result = run_direct("revenue_forecast", data[:72], _params(level=90)).result
        assert result.season_length == 12
        assert result.periods_per_year == 12
        truth = [row["revenue"] for row in data[72:]]
        inside += sum(p.lower <= v <= p.upper for p, v in zip(result.forecast, truth, strict=True))
        total += len(truth)
        growth = result.growth
        assert growth.trend_per_year == pytest.approx(GROWTH, abs=0.01)
        assert growth.trend_per_period == pytest.approx((1 + GROWTH) ** (1 / 12) - 1, abs=0.001)
        assert growth.compared_lag == 12
        assert growth.forecast_per_year is not None
        implied.append(growth.forecast_per_year)
    assert 0.8 <= inside / total <= 0.97
    assert float(np.mean(implied)) == pytest.approx(GROWTH, abs=0.015)


def test_a_what_if_is_the_forecast_compounded_by_hand() -> None:
    data = _revenue(3, 60)
    scenarios = [-0.05, 0.0, 0.05, 0.2]
    result = run_direct(
        "revenue_forecast", data, _params(horizon=18, growth_scenarios=scenarios)
    ).result
    base = np.array([point.value for point in result.forecast])
    assert [scenario.extra_growth for scenario in result.scenarios] == scenarios
    for scenario in result.scenarios:
        by_hand = [
            value * (1 + scenario.extra_growth) ** (month / 12)
            for month, value in enumerate(base, start=1)
        ]
        assert scenario.values == pytest.approx(by_hand, rel=1e-12)
        assert scenario.total == pytest.approx(sum(by_hand), rel=1e-12)
    assert result.scenarios[1].values == pytest.approx(list(base), rel=1e-12)
    assert result.scenarios[1].growth_per_year == pytest.approx(result.growth.forecast_per_year)
    totals = [scenario.total for scenario in result.scenarios]
    assert totals == sorted(totals)
    assert result.forecast_total == pytest.approx(float(base.sum()))


def test_the_history_growth_rates_are_the_hand_computed_ones() -> None:
    data = _revenue(5, 40)
    values = [float(row["revenue"]) for row in data]
    result = run_direct("revenue_forecast", data, _params(horizon=6)).result
    assert [point.value for point in result.history] == values
    assert result.history[0].period_over_period is None
    assert all(point.year_over_year is None for point in result.history[:12])
    for k, point in enumerate(result.history[1:], start=1):
        assert point.period_over_period == pytest.approx(values[k] / values[k - 1] - 1)
    for k, point in enumerate(result.history[12:], start=12):
        assert point.year_over_year == pytest.approx(values[k] / values[k - 12] - 1)
    growth = result.growth
    assert growth.period_over_period == pytest.approx(values[-1] / values[-2] - 1)
    assert growth.year_over_year == pytest.approx(sum(values[-12:]) / sum(values[-24:-12]) - 1)
    # The forecast's first point against the same month a year before.
    first = result.forecast[0]
    assert first.time == "2018-05-01T00:00:00"
    assert first.year_over_year == pytest.approx(first.value / values[-12] - 1)


def test_numeric_times_need_periods_per_year_for_what_ifs() -> None:
    rng = np.random.default_rng(4)
    data: Records = [
        {"t": float(k), "revenue": float(200 + 3 * k + rng.normal(0, 2))} for k in range(30)
    ]
    params = {"time": "t", "revenue": "revenue", "horizon": 4, "growth_scenarios": [0.1]}
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("revenue_forecast", data, params)
    assert (refused.value.code, refused.value.param) == (
        "periods_per_year_unknown",
        "params.periods_per_year",
    )
    result = run_direct("revenue_forecast", data, {**params, "periods_per_year": 4}).result
    assert result.season_length == 1
    assert [point.time for point in result.forecast] == [30.0, 31.0, 32.0, 33.0]
    assert result.growth.year_over_year == pytest.approx(
        sum(row["revenue"] for row in data[-4:]) / sum(row["revenue"] for row in data[-8:-4]) - 1
    )
    assert result.scenarios[0].values[3] == pytest.approx(result.forecast[3].value * 1.1)


def test_revenue_with_a_loss_month_is_forecast_with_additive_models_only() -> None:
    data = _revenue(6, 48)
    data[20]["revenue"] = -5.0
    direct = run_direct("revenue_forecast", data, _params())
    result = direct.result
    assert all(candidate.model.startswith("ETS(A,") for candidate in result.candidates)
    assert result.growth.trend_per_period is None
    assert result.growth.trend_per_year is None
    assert result.history[21].period_over_period is None
    assert "trend n/a" in direct.summary


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["revenue_forecast"]
    first = run_direct("revenue_forecast", method.example.data, method.example.params, seed=7)
    again = run_direct("revenue_forecast", method.example.data, method.example.params, seed=7)
    assert first.result == again.result
    assert first.summary == again.summary
    result = first.result
    assert result.backtest.mase < result.backtest.naive_mase
    assert result.model == result.candidates[0].model
    assert len(result.forecast) == method.example.params.horizon
    assert len(result.scenarios) == len(method.example.params.growth_scenarios)
    # The example grows 8% a year.
    assert result.growth.trend_per_year == pytest.approx(0.08, abs=0.02)
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_multiplicative_models_interval_is_simulated_from_the_seed() -> None:
    method = METHODS["revenue_forecast"]
    one = run_direct("revenue_forecast", method.example.data, method.example.params, seed=1)
    two = run_direct("revenue_forecast", method.example.data, method.example.params, seed=2)
    assert one.result.model.startswith("ETS(M,")
    assert [p.value for p in one.result.forecast] == [p.value for p in two.result.forecast]
    assert [p.upper for p in one.result.forecast] != [p.upper for p in two.result.forecast]


def test_a_horizon_too_long_for_the_series_is_a_400_naming_the_rule() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("revenue_forecast", _revenue(0, 30), _params(horizon=12, season_length=12))
    error = refused.value
    assert (error.code, error.param) == ("series_too_short", "params.horizon")
    assert "max(2 * season_length, 10) + horizon = 36" in error.message


def test_text_revenue_is_a_400_naming_the_field() -> None:
    data = [{**row, "revenue": "n/a"} for row in _revenue(0, 30)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("revenue_forecast", data, _params(horizon=3))
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.revenue")
    assert "'revenue'" in refused.value.message
