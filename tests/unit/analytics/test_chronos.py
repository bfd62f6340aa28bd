"""The chronos engine: on a seasonal series the chosen model's backtest beats the seasonal naive
forecast; forecasts continue the series' own times with intervals around them; a series too
short for the horizon and season is refused naming the rule."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct


def _monthly(count: int, seed: int = 0) -> Records:
    """Monthly values from 2015-01: trend 0.5 per month, a yearly sine of amplitude 10, noise
    SD 2."""
    rng = np.random.default_rng(seed)
    t = np.arange(count)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, size=count)
    return [
        {"month": f"{2015 + k // 12}-{k % 12 + 1:02d}-01", "y": float(value)}
        for k, value in enumerate(y)
    ]


def test_on_eight_seasonal_years_the_backtest_beats_the_seasonal_naive_forecast() -> None:
    data = _monthly(96)
    result = run_direct("chronos", data, {"time": "month", "target": "y", "horizon": 12}).result
    assert result.season_length == 12
    assert result.backtest.folds == 3
    assert result.backtest.mase < 0.7 * result.backtest.naive_mase
    assert result.backtest.smape < result.backtest.naive_smape
    assert {c.model for c in result.candidates} == {"AutoETS", "AutoARIMA", "AutoTheta"}
    assert result.model == result.candidates[0].model
    assert result.backtest.mase == min(c.mase for c in result.candidates)
    # The forecast continues the months, and the interval holds the value.
    assert [p.time[:10] for p in result.forecast] == [f"2023-{m:02d}-01" for m in range(1, 13)]
    for point in result.forecast:
        assert point.lower < point.value < point.upper
    # The planted path for 2023 (without noise) lies inside the 95% band nearly everywhere.
    t = np.arange(96, 108)
    truth = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)
    inside = [p.lower <= v <= p.upper for p, v in zip(result.forecast, truth, strict=True)]
    assert sum(inside) >= 11


def test_numeric_times_get_numeric_forecast_times_no_season_and_the_same_answer_twice() -> None:
    rng = np.random.default_rng(1)
    data: Records = [{"t": 5.0 * k, "y": float(3 + 0.2 * k + rng.normal())} for k in range(40)]
    data[7]["y"] = None
    direct = run_direct("chronos", data, {"time": "t", "target": "y", "horizon": 3, "level": 80})
    result = direct.result
    again = run_direct("chronos", data, {"time": "t", "target": "y", "horizon": 3, "level": 80})
    assert again.result == result
    assert again.summary == direct.summary
    assert result.season_length == 1
    assert result.level == 80
    assert [p.time for p in result.forecast] == [200.0, 205.0, 210.0]
    assert any("1 missing 'y' values were interpolated" in w for w in direct.warnings)


def test_a_daily_series_is_given_a_weekly_season() -> None:
    rng = np.random.default_rng(2)
    weekly = [0, 1, 2, 3, 2, -4, -4]
    data: Records = [
        {
            "day": (dt.date(2024, 1, 1) + dt.timedelta(days=k)).isoformat(),
            "y": float(50 + 3 * weekly[k % 7] + rng.normal(0, 0.5)),
        }
        for k in range(42)
    ]
    result = run_direct("chronos", data, {"time": "day", "target": "y", "horizon": 7}).result
    assert result.season_length == 7
    assert result.forecast[0].time == "2024-02-12T00:00:00"
    assert result.backtest.mase < result.backtest.naive_mase


def test_the_example_answers_with_valid_charts_and_rising_progress() -> None:
    method = METHODS["chronos"]
    first = run_direct("chronos", method.example.data, method.example.params, seed=4)
    assert first.result.backtest.mase < first.result.backtest.naive_mase
    assert len(first.result.forecast) == method.example.params.horizon
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_series_too_short_for_its_season_and_horizon_is_a_400_naming_the_rule() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(
            "chronos",
            _monthly(30),
            {"time": "month", "target": "y", "horizon": 12, "season_length": 12},
        )
    error = refused.value
    assert (error.code, error.param) == ("series_too_short", "params.horizon")
    assert "max(2 * season_length, 10) + horizon = 36" in error.message
    assert "has 30" in error.message


def test_an_inferred_season_too_long_for_the_series_is_dropped_with_a_warning() -> None:
    direct = run_direct("chronos", _monthly(20), {"time": "month", "target": "y", "horizon": 2})
    assert direct.result.season_length == 1
    assert any("too short for a season of 12" in w for w in direct.warnings)


def test_a_text_target_is_a_400_naming_it() -> None:
    data = [{**row, "y": "n/a"} for row in _monthly(30)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("chronos", data, {"time": "month", "target": "y", "horizon": 3})
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.target")
    assert "'y'" in refused.value.message
