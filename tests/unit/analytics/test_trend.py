"""The trend engine: a planted level shift is found within a few rows, the planted slope lies in
the slope's confidence interval, the season is separated, and a series without a shift gets
no change point."""

from __future__ import annotations

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

SLOPE = 0.3


def _monthly(seed: int, count: int = 96, shift: float = 5.0, at: int = 50) -> Records:
    """Monthly values: slope 0.3 per month, a yearly sine of amplitude 5, noise SD 1, and the
    level raised by ``shift`` from row ``at`` on."""
    rng = np.random.default_rng(seed)
    t = np.arange(count)
    y = 20 + SLOPE * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(size=count)
    y[at:] += shift
    months = [f"{2010 + k // 12}-{k % 12 + 1:02d}-01" for k in range(count)]
    return [{"month": month, "y": float(value)} for month, value in zip(months, y, strict=True)]


def test_a_planted_level_shift_and_slope_are_recovered() -> None:
    """Over 50 noisy series: the shift at row 50 is the one change point found, within 3
    rows, and the 95% interval holds the planted slope in at least 43 of them (an interval
    that ignored the noise's structure would hold it far less often)."""
    covered = 0
    for seed in range(50):
        result = run_direct("trend", _monthly(seed), {"time": "month", "target": "y"}).result
        assert result.season_length == 12
        assert result.slope_per == "month"
        assert [abs(point.index - 50) <= 3 for point in result.change_points] == [True]
        point = result.change_points[0]
        year, month = 2010 + point.index // 12, point.index % 12 + 1
        assert point.time == f"{year}-{month:02d}-01T00:00:00"
        assert 3.5 < point.shift < 6.5
        low, high = result.slope_ci
        assert low < result.slope < high
        assert high - low < 0.1
        covered += low < SLOPE < high
    assert covered >= 43


def test_the_components_add_up_and_the_season_is_the_planted_one() -> None:
    data = _monthly(7)
    result = run_direct("trend", data, {"time": "month", "target": "y"}).result
    assert len(result.components) == len(data)
    for row, part in zip(data, result.components, strict=True):
        assert part.trend + part.seasonal + part.resid == pytest.approx(row["y"])
    seasonal = np.array([part.seasonal for part in result.components])
    planted = 5 * np.sin(2 * np.pi * np.arange(len(data)) / 12)
    assert np.corrcoef(seasonal, planted)[0, 1] > 0.98


@pytest.mark.parametrize("seed", range(3))
def test_a_steady_trend_without_a_season_has_no_change_point(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data: Records = [{"t": 2.0 * k, "y": float(1 + 0.05 * k + rng.normal())} for k in range(150)]
    result = run_direct("trend", data, {"time": "t", "target": "y"}).result
    assert result.season_length == 1
    assert result.change_points == []
    assert result.slope_per == "t"
    # 0.05 per row, rows 2 units of t apart.
    assert result.slope_ci[0] < 0.025 < result.slope_ci[1]
    assert all(part.seasonal == 0 for part in result.components)


def test_the_strongest_changes_are_kept_when_there_are_more_than_asked() -> None:
    data = _monthly(8, count=120, shift=8.0, at=40)
    for row in data[80:]:
        row["y"] = float(row["y"] or 0) - 16
    both = run_direct("trend", data, {"time": "month", "target": "y"})
    assert [point.index for point in both.result.change_points] == [40, 80]
    one = run_direct("trend", data, {"time": "month", "target": "y", "max_change_points": 1})
    assert [point.index for point in one.result.change_points] == [80]
    assert any("max_change_points" in warning for warning in one.warnings)
    none = run_direct("trend", data, {"time": "month", "target": "y", "max_change_points": 0})
    assert none.result.change_points == []


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["trend"]
    first = run_direct("trend", method.example.data, method.example.params, seed=5)
    again = run_direct("trend", method.example.data, method.example.params, seed=5)
    assert first.result == again.result
    assert [point.index for point in first.result.change_points] == [40]
    assert first.result.slope_ci[0] < 0.2 < first.result.slope_ci[1]
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_season_longer_than_half_the_series_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(
            "trend", _monthly(0, count=30), {"time": "month", "target": "y", "season_length": 16}
        )
    assert (refused.value.code, refused.value.param) == (
        "series_too_short",
        "params.season_length",
    )
    assert "2 * season_length = 32" in refused.value.message


def test_a_short_series_drops_the_inferred_season_with_a_warning() -> None:
    direct = run_direct("trend", _monthly(0, count=20, at=10), {"time": "month", "target": "y"})
    assert direct.result.season_length == 1
    assert any("fewer than two cycles" in warning for warning in direct.warnings)


def test_a_text_target_is_a_400_naming_it() -> None:
    data = [{**row, "y": f"v{index}"} for index, row in enumerate(_monthly(0, count=30))]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("trend", data, {"time": "month", "target": "y"})
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.target")
