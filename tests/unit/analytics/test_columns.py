"""Column roles: numbers that no engine can compute with safely (infinities, magnitudes from
1e150) are a 400 naming the column and the row, in a column a method reads and in a whole
table; times with differing UTC offsets (as across a daylight-saving change) are one column of
naive UTC datetimes, so the time-series engines order and subtract them."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aiplatform.engines.analytics import columns
from aiplatform.errors import InvalidRequestError
from tests.analytics import run_direct


def _refused(call: Any, *args: Any, **kwargs: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as refused:
        call(*args, **kwargs)
    return refused.value


def _frame(values: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({"x": values, "y": [float(i) for i in range(len(values))]})


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", math.inf, -math.inf])
def test_an_infinity_is_a_400_naming_the_column_and_the_row(value: Any) -> None:
    error = _refused(columns.numeric, _frame([1.0, 2.0, value, 4.0]), "x", "target")
    assert (error.status_code, error.code, error.param) == (400, "not_finite", "params.target")
    assert "'x'" in error.message
    assert "row 2" in error.message
    assert "inf" in error.message


def test_a_number_too_large_for_a_float_text_is_a_400() -> None:
    """'1e400' is beyond any float: pandas reads it as infinity or not at all, by version."""
    error = _refused(columns.numeric, _frame([1.0, "1e400", 3.0]), "x", "target")
    assert error.status_code == 400
    assert error.code in ("not_finite", "not_numeric")
    assert "'x'" in error.message


@pytest.mark.parametrize("value", [1e150, -1e150, 1e305, "-2.5e200", np.finfo(float).max])
def test_a_magnitude_from_1e150_is_a_400_value_too_large(value: Any) -> None:
    error = _refused(columns.numeric, _frame([1.0, 2.0, 3.0, value]), "x", "features")
    assert (error.status_code, error.code, error.param) == (
        400,
        "value_too_large",
        "params.features",
    )
    assert "'x'" in error.message
    assert "row 3" in error.message
    assert "1e150" in error.message


def test_large_finite_numbers_below_the_limit_and_missing_values_pass() -> None:
    values = columns.numeric(_frame([9.99e149, -1e149, None, 2.0]), "x", "target")
    assert values.iloc[0] == 9.99e149
    assert values.iloc[1] == -1e149
    assert math.isnan(values.iloc[2])


def test_a_computation_may_ask_for_a_lower_limit() -> None:
    """float32 (scikit-learn's trees) holds magnitudes up to about 3.4e38."""
    float32 = float(np.finfo(np.float32).max)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 1e39]})
    error = _refused(columns.numeric_columns, frame, ["a", "b"], "features", largest=float32)
    assert error.code == "value_too_large"
    assert "'b'" in error.message
    assert "1e39" in error.message
    assert "3.4e38" in error.message
    assert columns.numeric(frame, "b", "features").iloc[2] == 1e39


def test_check_finite_reads_nullable_columns() -> None:
    values = pd.Series(pd.array([1.0, None, 2.0], dtype="Float64"))
    columns.check_finite(values, "v", "columns")
    values = pd.Series(pd.array([1.0, None, -math.inf], dtype="Float64"))
    error = _refused(columns.check_finite, values, "v", "columns")
    assert (error.code, error.param) == ("not_finite", "params.columns")
    assert "row 2" in error.message


def test_numeric_columns_names_the_column_that_holds_the_infinity() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, "inf", 3.0]})
    error = _refused(columns.numeric_columns, frame, ["a", "b"], "columns")
    assert (error.code, error.param) == ("not_finite", "params.columns")
    assert "'b'" in error.message
    assert "row 1" in error.message


def test_the_first_infinity_is_named_before_a_large_value() -> None:
    error = _refused(columns.numeric, _frame([1e200, 2.0, "-inf"]), "x", "target")
    assert error.code == "not_finite"
    assert "row 2" in error.message


# --- a whole table ------------------------------------------------------------------------


def test_a_table_with_an_infinity_in_a_numeric_column_is_a_400_for_the_table() -> None:
    frame = pd.DataFrame({"name": ["a", "b", "c"], "ok": [1, 2, 3], "bad": [0.5, -math.inf, 1.0]})
    error = _refused(columns.check_finite_table, frame, "data")
    assert (error.status_code, error.code, error.param) == (400, "not_finite", "data")
    assert "'bad'" in error.message
    assert "row 1" in error.message


def test_a_table_with_a_huge_number_is_a_400_value_too_large() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 1e151]})
    error = _refused(columns.check_finite_table, frame, "params.reference")
    assert (error.code, error.param) == ("value_too_large", "params.reference")
    assert "'b'" in error.message
    assert "row 1" in error.message
    assert "params.reference" in error.message


def test_a_table_check_reads_nullable_columns_and_leaves_text_and_booleans() -> None:
    floats = pd.array([1.0, None, math.inf], dtype="Float64")
    error = _refused(columns.check_finite_table, pd.DataFrame({"f": floats}), "data")
    assert error.code == "not_finite"
    assert "row 2" in error.message
    fine = pd.DataFrame(
        {
            # text is read as numbers only where a method asks for them (columns.numeric)
            "text": ["inf", "1e400", "x"],
            "flag": [True, False, True],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "value": [1e149, None, -1e149],
        }
    )
    columns.check_finite_table(fine, "data")


# --- times --------------------------------------------------------------------------------

#: Paris around the spring change of 2024 (31 March, 02:00 +01:00 becomes 03:00 +02:00)
ACROSS_DST = [
    "2024-03-31T00:00:00+01:00",
    "2024-03-31T01:00:00+01:00",
    "2024-03-31T03:00:00+02:00",
    "2024-03-31T04:00:00+02:00",
]


def test_times_with_differing_offsets_are_naive_utc_datetimes() -> None:
    times = columns.time_column(pd.DataFrame({"t": ACROSS_DST}), "t")
    assert times.dtype == np.dtype("datetime64[ns]")
    assert times.tolist() == [
        pd.Timestamp("2024-03-30T23:00"),
        pd.Timestamp("2024-03-31T00:00"),
        pd.Timestamp("2024-03-31T01:00"),
        pd.Timestamp("2024-03-31T02:00"),
    ]
    # one hour apart throughout, as they were
    assert set(times.diff().dropna()) == {pd.Timedelta(hours=1)}


def test_zoned_datetimes_become_naive_utc_and_naive_text_is_taken_as_it_is() -> None:
    zoned = pd.Series(pd.to_datetime(ACROSS_DST, utc=True)).dt.tz_convert("Europe/Paris")
    times = columns.time_column(pd.DataFrame({"t": zoned}), "t")
    assert times.dtype == np.dtype("datetime64[ns]")
    assert times.iloc[0] == pd.Timestamp("2024-03-30T23:00")
    naive = columns.time_column(pd.DataFrame({"t": ["2024-01-01", "2024-01-02T12:30"]}), "t")
    assert naive.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02T12:30")]


def test_the_same_instant_written_with_two_offsets_repeats_a_time() -> None:
    frame = pd.DataFrame({"t": ["2024-03-31T03:00:00+02:00", "2024-03-31T01:00:00+00:00"]})
    error = _refused(columns.time_column, frame, "t")
    assert error.code == "duplicate_time"


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45", "12:00 next Tuesday"])
def test_text_that_is_not_a_time_is_a_400(value: str) -> None:
    frame = pd.DataFrame({"t": ["2024-01-01", value]})
    error = _refused(columns.time_column, frame, "t", "time")
    assert (error.code, error.param) == ("not_a_time", "params.time")


def test_numeric_times_must_be_finite() -> None:
    error = _refused(columns.time_column, pd.DataFrame({"t": [1.0, 2.0, math.inf]}), "t")
    assert (error.code, error.param) == ("not_finite", "params.time")
    assert columns.time_column(pd.DataFrame({"t": [3, 1, 2]}), "t").tolist() == [3.0, 1.0, 2.0]


def _paris(start: str, periods: int, freq: str) -> list[str]:
    """Local times in Paris as ISO 8601 text with their offset (+01:00, then +02:00)."""
    times = pd.date_range(start, periods=periods, freq=freq, tz="Europe/Paris")
    return [time.isoformat() for time in times]


def test_chronos_forecasts_an_hourly_series_across_a_daylight_saving_change() -> None:
    rng = random.Random(0)
    times = _paris("2024-03-30", 48, "h")
    assert {time[-6:] for time in times} == {"+01:00", "+02:00"}
    data = [
        {"when": time, "load": 10 + 3 * math.sin(2 * math.pi * i / 24) + rng.gauss(0, 0.2)}
        for i, time in enumerate(times)
    ]
    direct = run_direct("chronos", data, {"time": "when", "target": "load", "horizon": 6})
    forecast = direct.result.forecast
    # the last time is 2024-04-01T00:00+02:00, 22:00 UTC; the forecast goes on hourly in UTC
    assert times[-1] == "2024-04-01T00:00:00+02:00"
    assert [point.time for point in forecast] == [
        "2024-03-31T23:00:00",
        *(f"2024-04-01T0{hour}:00:00" for hour in range(5)),
    ]
    assert all(abs(point.value - 10) < 4 for point in forecast)


def test_trend_finds_a_level_shift_in_a_daily_series_across_a_daylight_saving_change() -> None:
    rng = random.Random(1)
    days = _paris("2024-02-01", 90, "D")
    data = [
        {"day": day, "level": (5.0 if i >= 60 else 0.0) + rng.gauss(0, 0.3)}
        for i, day in enumerate(days)
    ]
    direct = run_direct("trend", data, {"time": "day", "target": "level", "season_length": 1})
    points = direct.result.change_points
    assert [point.index for point in points] == [60]
    assert points[0].shift == pytest.approx(5.0, abs=0.5)
    # 1 April, midnight in Paris (+02:00), is 22:00 UTC the day before
    assert points[0].time == "2024-03-31T22:00:00"
