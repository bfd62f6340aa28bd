"""The customer_ltv engine: BG/NBD and Gamma-Gamma parameters planted in a simulated customer
base are recovered and its purchases in the following year are predicted; values discount
as they should; RFM segments name the planted best and lost customers; fits the data cannot
support are refused."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import msgspec
import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct

ROLES = {"customer": "customer", "date": "date", "amount": "amount"}
#: Planted BG/NBD (rates per day) and Gamma-Gamma parameters.
PLANTED = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "v": 15.0}
#: Days observed, days over which customers join, days predicted (12 months of 30 days).
OBSERVED, JOINING, FUTURE = 540, 180, 360


def _simulate(customers: int, seed: int) -> tuple[Records, int]:
    """A BG/NBD customer base: each customer buys at a rate drawn from gamma(r, alpha) from a
    first purchase on a uniform day of the joining period, and after each repeat purchase
    leaves with a probability drawn from beta(a, b); each amount is gamma(p, nu) with nu
    drawn per customer from gamma(q, v). Returns the log of the observed days and the number
    of purchases in the FUTURE days after them."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(PLANTED["r"], 1 / PLANTED["alpha"], customers)
    leaving = rng.beta(PLANTED["a"], PLANTED["b"], customers)
    nus = rng.gamma(PLANTED["q"], 1 / PLANTED["v"], customers)
    start = dt.datetime(2022, 1, 1)
    log: Records = []
    future = 0
    for customer in range(customers):
        day = rng.uniform(0, JOINING)
        purchases = 0
        while day < OBSERVED + FUTURE:
            if day < OBSERVED:
                log.append(
                    {
                        "customer": f"c{customer}",
                        "date": (start + dt.timedelta(days=day)).isoformat(),
                        "amount": round(float(rng.gamma(PLANTED["p"], 1 / nus[customer])), 2),
                    }
                )
            else:
                future += 1
            purchases += 1
            if purchases > 1 and rng.random() < leaving[customer]:
                break
            day += rng.exponential(1 / rates[customer])
    return log, future


def _ltv(data: Records, **params: Any) -> Any:
    return run_direct("customer_ltv", data, {**ROLES, **params})


def test_planted_parameters_are_recovered_and_next_years_purchases_predicted() -> None:
    log, future = _simulate(3000, seed=1)
    result = _ltv(log).result
    fitted = msgspec.structs.asdict(result.parameters)
    tolerance = {"r": 0.2, "alpha": 0.2, "a": 0.2, "b": 0.3, "p": 0.25, "q": 0.2, "v": 0.4}
    for name, planted in PLANTED.items():
        assert fitted[name] == pytest.approx(planted, rel=tolerance[name]), name
    # p * v / (q - 1) = 30: the mean amount is pinned down far better than p and v alone.
    assert result.mean_spend == pytest.approx(30.0, rel=0.08)
    assert result.expected_purchases == pytest.approx(future, rel=0.1)
    assert len(result.customers) == 3000
    assert result.transactions == len(log)


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["customer_ltv"]
    first = run_direct("customer_ltv", method.example.data, method.example.params, seed=3)
    again = run_direct("customer_ltv", method.example.data, method.example.params, seed=3)
    assert first.result == again.result
    assert first.summary == again.summary
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9
    result = first.result
    values = [item.value for item in result.customers]
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(result.total_value)
    assert sum(item.customers for item in result.segments) == len(result.customers)
    assert "r = " in first.summary
    assert "v = " in first.summary


def test_without_discount_a_value_is_expected_purchases_times_expected_spend() -> None:
    method = METHODS["customer_ltv"]
    plain = _ltv(method.example.data, discount_rate=0.0).result
    for item in plain.customers:
        assert item.value == pytest.approx(item.expected_purchases * item.expected_spend)
    discounted = _ltv(method.example.data, discount_rate=0.05).result
    by_customer = {item.customer: item.value for item in plain.customers}
    assert all(item.value < by_customer[item.customer] for item in discounted.customers)
    longer = _ltv(method.example.data, horizon_months=24).result
    assert longer.expected_purchases > plain.expected_purchases


def test_rfm_segments_name_the_best_and_the_lost_customers() -> None:
    data = list(METHODS["customer_ltv"].example.data)
    last = max(str(row["date"]) for row in data)
    end = dt.date.fromisoformat(last)
    data += [
        {"customer": "best", "date": (end - dt.timedelta(days=7 * k)).isoformat(), "amount": 90.0}
        for k in range(45)
    ]
    data.append({"customer": "lost", "date": "2024-01-01", "amount": 1.0})
    result = _ltv(data).result
    customers = {item.customer: item for item in result.customers}
    best, lost = customers["best"], customers["lost"]
    assert (best.recency_score, best.frequency_score, best.monetary_score) == (5, 5, 5)
    assert best.segment == "champions"
    assert result.customers[0].customer == "best"
    assert (lost.recency_score, lost.frequency_score, lost.monetary_score) == (1, 1, 1)
    assert lost.segment == "hibernating"
    assert lost.frequency == 0
    assert lost.monetary_value is None
    assert lost.probability_alive == pytest.approx(1.0)
    assert all(1 <= item.recency_score <= 5 for item in result.customers)


def test_refunds_and_incomplete_rows_are_left_out_with_warnings() -> None:
    data = list(METHODS["customer_ltv"].example.data)
    data += [
        {"customer": "C001", "date": "2024-06-01", "amount": -20.0},
        {"customer": None, "date": "2024-06-02", "amount": 12.0},
    ]
    direct = _ltv(data)
    assert direct.result.transactions == len(data) - 2
    assert any("refunds" in warning for warning in direct.warnings)
    assert any("1 rows miss" in warning for warning in direct.warnings)


def _regular(penalizer: float) -> Any:
    """Sixty customers buying every fourteen days all year, none leaving."""
    rng = random.Random(0)
    data: Records = [
        {
            "customer": f"c{customer}",
            "date": (dt.date(2024, 1, 1) + dt.timedelta(days=day)).isoformat(),
            "amount": round(10 + 5 * rng.random(), 2),
        }
        for customer in range(60)
        for day in range(rng.randrange(30), 365, 14)
    ]
    return _ltv(data, penalizer=penalizer)


def test_a_customer_base_nobody_leaves_cannot_be_fitted() -> None:
    with pytest.raises(UnprocessableEntityError) as failed:
        _regular(0.0)
    assert failed.value.code == "fit_failed"
    assert "penalizer" in failed.value.message
    with pytest.raises(UnprocessableEntityError) as degenerate:
        _regular(0.01)
    assert degenerate.value.code == "degenerate_fit"
    assert "a = " in degenerate.value.message


def test_too_few_repeat_buyers_is_a_422() -> None:
    data: Records = [
        {"customer": f"c{k}", "date": f"2024-{k % 12 + 1:02d}-01", "amount": 10.0 + k}
        for k in range(30)
    ]
    data += [{"customer": "c0", "date": "2024-12-01", "amount": 11.0}]
    with pytest.raises(UnprocessableEntityError) as refused:
        _ltv(data)
    assert refused.value.code == "too_few_repeat_customers"
    assert "Only 1 customers" in refused.value.message


def test_too_few_customers_is_a_400() -> None:
    data: Records = [
        {"customer": f"c{k % 9}", "date": f"2024-01-{k + 1:02d}", "amount": 10.0 + k}
        for k in range(27)
    ]
    with pytest.raises(InvalidRequestError) as refused:
        _ltv(data)
    assert (refused.value.code, refused.value.param) == ("too_few_customers", "data")
    assert "9" in refused.value.message


def test_a_date_that_is_not_a_time_is_a_400_naming_it() -> None:
    data = list(METHODS["customer_ltv"].example.data)
    data[5] = {**data[5], "date": "yesterday"}
    with pytest.raises(InvalidRequestError) as refused:
        _ltv(data)
    assert (refused.value.code, refused.value.param) == ("not_a_time", "params.date")
    assert "row 5" in refused.value.message
    assert "yesterday" in refused.value.message


def test_purchases_can_be_counted_in_weeks() -> None:
    data = METHODS["customer_ltv"].example.data
    daily = {item.customer: item for item in _ltv(data).result.customers}
    weekly = _ltv(data, time_unit="week").result
    assert weekly.time_unit == "week"
    for item in weekly.customers:
        # Ages are counted in whole weeks from the first purchase's week.
        assert item.age == pytest.approx(daily[item.customer].age / 7, abs=1)
        assert item.frequency <= daily[item.customer].frequency
