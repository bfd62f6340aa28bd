"""The spend_pattern engine: planted recurring payments (rent on the 1st, a subscription around
the 15th with a few days' jitter, a weekly gym, quarterly water, yearly insurance) are found
with their period and amount while random one-off and irregular payments are not; planted
unusual payments are flagged; a planted weekday and a planted December effect are found
significant, and their absence is not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

ROLES = {"date": "date", "payee": "payee", "amount": "amount"}
START, END = dt.date(2021, 1, 1), dt.date(2023, 12, 31)


def _payment(day: dt.date, payee: str, amount: float) -> dict[str, Any]:
    return {"date": day.isoformat(), "payee": payee, "amount": amount}


def _household(seed: int = 0) -> Records:
    """Three years of payments: the planted recurring ones, one subscription charge of
    159.90 instead of 15.99 (October 2022), a one-off 4000 at a jeweller, a corner shop
    visited at random (about every five days), and 80 payees paid once each."""
    rng = np.random.default_rng(seed)
    rows: Records = []
    for month in range(36):
        first = dt.date(2021 + month // 12, month % 12 + 1, 1)
        rows.append(_payment(first, "Landlord", 1200.0))
        jitter = int(rng.integers(-2, 3))
        charge = 159.90 if month == 21 else 15.99
        rows.append(_payment(first + dt.timedelta(days=14 + jitter), "StreamCo", charge))
        if month % 3 == 0:
            water = round(float(rng.normal(60, 5)), 2)
            rows.append(_payment(first + dt.timedelta(days=19), "Water", water))
    rows += [_payment(dt.date(year, 3, 10), "Insurance", 540.0) for year in (2021, 2022, 2023)]
    rows += [
        _payment(START + dt.timedelta(days=day), "Gym", 20.0)
        for day in range(3, (END - START).days + 1, 7)  # Mondays
    ]
    day = START
    while True:
        day += dt.timedelta(days=1 + int(rng.exponential(4.0)))
        if day > END:
            break
        rows.append(_payment(day, "Corner Shop", round(float(rng.lognormal(2.5, 0.4)), 2)))
    for number in range(80):
        when = START + dt.timedelta(days=int(rng.integers((END - START).days + 1)))
        amount = round(float(rng.lognormal(3.5, 0.5)), 2)
        rows.append(_payment(when, f"Shop {number:02d}", amount))
    rows.append(_payment(dt.date(2022, 6, 18), "Jeweller", 4000.0))
    return rows


def _spend(data: Records, **params: Any) -> Any:
    return run_direct("spend_pattern", data, {**ROLES, **params})


def test_planted_recurring_payments_are_found_and_random_ones_are_not() -> None:
    result = _spend(_household()).result
    found = {item.payee: item for item in result.recurring}
    assert {name: item.period for name, item in found.items()} == {
        "Landlord": "monthly",
        "StreamCo": "monthly",
        "Gym": "weekly",
        "Water": "quarterly",
        "Insurance": "yearly",
    }
    rent, stream = found["Landlord"], found["StreamCo"]
    assert (rent.amount, rent.amount_variation) == (1200.0, 0.0)
    assert rent.next_expected == "2024-01-01"
    assert (stream.amount, stream.amount_variation) == (15.99, 0.0)
    assert stream.regularity == 1.0
    assert 0 < stream.interval_sd < 5
    assert stream.payments == 36
    assert found["Gym"].interval_days == 7.0
    assert found["Insurance"].next_expected == "2024-03-10"
    assert 50 < found["Water"].amount < 70
    assert 0 < found["Water"].amount_variation < 0.2
    assert all(item.active for item in result.recurring)
    assert result.recurring[0].payee == "Landlord"  # the largest annual amount first


def test_planted_unusual_payments_are_flagged() -> None:
    data = _household()
    result = _spend(data).result
    flagged = {(item.payee, item.amount): item for item in result.unusual}
    stream = flagged["StreamCo", 159.90]
    assert (stream.basis, stream.typical) == ("payee", 15.99)
    assert stream.date.startswith("2022-10-")
    assert data[stream.row]["amount"] == 159.90
    jeweller = flagged["Jeweller", 4000.0]
    assert jeweller.basis == "overall"
    assert jeweller.z > 3.5
    regular = {"Landlord", "StreamCo", "Gym", "Insurance", "Water"}
    assert [key for key in flagged if key[0] in regular] == [("StreamCo", 159.90)]
    assert result.unusual[0].payee in {"StreamCo", "Jeweller"}


def test_a_lapsed_subscription_is_not_active() -> None:
    data = [
        row for row in _household() if not (row["payee"] == "StreamCo" and row["date"] > "2023-08")
    ]
    stream = next(item for item in _spend(data).result.recurring if item.payee == "StreamCo")
    assert stream.last.startswith("2023-07")
    assert not stream.active


def _daily(seed: int, saturday: float = 1.0, december: float = 1.0) -> Records:
    """Three years of one payment a day, lognormal, scaled on Saturdays and in December."""
    rng = np.random.default_rng(seed)
    rows: Records = []
    for offset in range((END - START).days + 1):
        day = START + dt.timedelta(days=offset)
        scale = (saturday if day.weekday() == 5 else 1.0) * (december if day.month == 12 else 1.0)
        amount = round(float(scale * rng.lognormal(3, 0.5)), 2)
        rows.append(_payment(day, f"Shop {int(rng.integers(30))}", amount))
    return rows


def test_a_planted_weekday_and_month_effect_are_significant_and_none_is_not() -> None:
    plain = _spend(_daily(1)).result.seasonality
    assert [(season.by, season.test) for season in plain] == [
        ("weekday", "kruskal"),
        ("month", "anova"),
    ]
    assert all(season.significant is False for season in plain)
    assert all(season.p_value is not None and season.p_value > 0.05 for season in plain)
    planted = _spend(_daily(1, saturday=2.0, december=1.6)).result.seasonality
    weekday, month = planted
    assert weekday.significant is True
    assert weekday.p_value is not None
    assert weekday.p_value < 1e-6
    assert max(weekday.levels, key=lambda level: level.mean or 0).label == "Sat"
    assert weekday.effect_size is not None
    assert 0 < weekday.effect_size < 1
    assert month.significant is True
    assert month.p_value is not None
    assert month.p_value < 1e-4
    assert max(month.levels, key=lambda level: level.mean or 0).label == "Dec"
    assert [level.count for level in month.levels] == [3] * 12


def test_without_a_planted_effect_the_tests_keep_their_level() -> None:
    """Twenty spend histories with no weekday or month effect: about one test in twenty is
    significant at alpha 0.05, so at most 4 of the 40 may be."""
    significant = [
        season.significant
        for seed in range(20)
        for season in _spend(_daily(100 + seed)).result.seasonality
    ]
    assert None not in significant
    assert sum(bool(value) for value in significant) <= 4


def test_the_payments_chart_draws_a_sample_and_every_unusual_payment() -> None:
    direct = _spend(_daily(3) * 6)
    drawn = direct.charts[2]["data"]["values"]
    marked = [point for point in drawn if point["unusual"] == "unusual"]
    assert len(drawn) == 5_000 + len(marked)
    assert len(marked) == len(direct.result.unusual) > 0


def test_a_month_effect_is_not_tested_on_less_than_two_years() -> None:
    data = [row for row in _daily(2) if str(row["date"]) < "2022-06"]
    direct = _spend(data)
    month = direct.result.seasonality[1]
    assert month.p_value is None
    assert month.note is not None
    assert "17 complete months" in month.note
    assert "was not tested" in direct.summary


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["spend_pattern"]
    first = run_direct("spend_pattern", method.example.data, method.example.params, seed=2)
    again = run_direct("spend_pattern", method.example.data, method.example.params, seed=2)
    assert first.result == again.result
    assert len(first.charts) == 3
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9
    periods = {item.payee: item.period for item in first.result.recurring}
    assert periods == {"Landlord": "monthly", "StreamCo": "monthly", "Insurer": "quarterly"}
    assert [(item.payee, item.amount) for item in first.result.unusual] == [("StreamCo", 129.9)]
    assert first.result.seasonality[0].significant is True


def test_rows_missing_a_value_are_left_out_with_a_warning() -> None:
    data = list(METHODS["spend_pattern"].example.data)
    data.append({"date": "2023-05-05", "payee": None, "amount": 10.0})
    direct = _spend(data)
    assert direct.result.payments == len(data) - 1
    assert any("1 rows miss" in warning for warning in direct.warnings)


def test_a_date_that_is_not_a_time_is_a_400_naming_it() -> None:
    data = list(METHODS["spend_pattern"].example.data)
    data[3] = {**data[3], "date": "03/04/2023"}
    with pytest.raises(InvalidRequestError) as refused:
        _spend(data)
    assert (refused.value.code, refused.value.param) == ("not_a_time", "params.date")
    assert "03/04/2023" in refused.value.message
