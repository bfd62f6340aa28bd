"""The cost_optimization engine: planted duplicate payments are found exactly (and nothing
else), planted overpriced lines are flagged, the ABC classes and the savings equal a hand
computation."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

BASE_PRICES = {"bolts": 0.5, "cable": 12.0, "desks": 240.0}
START = dt.date(2024, 1, 1)
#: Rows copied as duplicates, with the days between original and copy (within 3 days).
DUPLICATED = {10: 0, 40: 1, 77: 3, 150: 2}
#: Rows copied 10 days later: a repeat order, not a duplicate.
REPEATED_LATER = (20, 90)
#: Rows copied a day later under another invoice: duplicates only when invoices are ignored.
REINVOICED = (33,)
OVERPRICED = {55: 1.5, 123: 1.8, 201: 2.5}
UNDERPRICED = {88: 0.4}
PARAMS: dict[str, Any] = {
    "vendor": "vendor",
    "amount": "amount",
    "category": "category",
    "quantity": "quantity",
    "date": "date",
    "invoice": "invoice",
}


def _day(offset: int) -> str:
    return (START + dt.timedelta(days=offset)).isoformat()


def _purchases(seed: int, lines: int = 240) -> Records:
    """Lines whose unit prices vary by ±10% around their category's price, from 12 vendors of
    very different size, each with its own invoice; then the planted lines: overpriced and
    underpriced ones in place, and copies of some lines appended (duplicates and not)."""
    rng = np.random.default_rng(seed)
    vendors = [f"V{k:02d}" for k in range(12)]
    weights = np.array([2.0**-k for k in range(12)])
    data: Records = []
    for index in range(lines):
        category = sorted(BASE_PRICES)[index % 3]
        factor = OVERPRICED.get(index, UNDERPRICED.get(index, rng.uniform(0.9, 1.1)))
        quantity = int(rng.integers(1, 50))
        unit = round(BASE_PRICES[category] * factor, 4)
        data.append(
            {
                "vendor": vendors[int(rng.choice(12, p=weights / weights.sum()))],
                "category": category,
                "quantity": quantity,
                "amount": round(quantity * unit, 4),
                "date": _day(index // 2),
                "invoice": f"INV-{index:05d}",
            }
        )
    copies: list[tuple[int, int, str | None]] = [
        *((row, days, None) for row, days in DUPLICATED.items()),
        *((row, 10, None) for row in REPEATED_LATER),
        *((row, 1, "INV-X") for row in REINVOICED),
    ]
    for row, days, invoice in copies:
        source = data[row]
        copy = {**source, "date": _day(row // 2 + days)}
        if invoice is not None:
            copy["invoice"] = f"{invoice}{row}"
        data.append(copy)
    return data


def _hand_abc(data: Records, a: float = 0.8, b: float = 0.95) -> dict[str, str]:
    spend: defaultdict[str, float] = defaultdict(float)
    for row in data:
        spend[str(row["vendor"])] += float(str(row["amount"]))
    total = sum(spend.values())
    classes: dict[str, str] = {}
    reached = 0.0
    for vendor, value in sorted(spend.items(), key=lambda pair: (-pair[1], pair[0])):
        classes[vendor] = "A" if reached / total < a else "B" if reached / total < b else "C"
        reached += value
    return classes


def _hand_excess(data: Records, row: int) -> float:
    """What line ``row`` paid above its category's median unit price."""
    line = data[row]
    prices = [
        float(str(other["amount"])) / float(str(other["quantity"]))
        for other in data
        if other["category"] == line["category"]
    ]
    price = float(str(line["amount"])) / float(str(line["quantity"]))
    return (price - float(np.median(prices))) * float(str(line["quantity"]))


@pytest.mark.parametrize("seed", range(3))
def test_planted_duplicates_and_overpriced_lines_are_found_and_nothing_else(seed: int) -> None:
    data = _purchases(seed)
    result = run_direct("cost_optimization", data, PARAMS).result
    copies = {source: 240 + position for position, source in enumerate(DUPLICATED)}
    assert [(d.original_row, d.row) for d in result.duplicates] == sorted(
        copies.items(), key=lambda pair: pair[1]
    )
    assert [d.days_apart for d in result.duplicates] == [float(d) for d in DUPLICATED.values()]
    high = {o.row for o in result.outliers if o.direction == "high"}
    low = {o.row for o in result.outliers if o.direction == "low"}
    assert (high, low) == (set(OVERPRICED), set(UNDERPRICED))
    for outlier in result.outliers:
        assert outlier.score > 3.5 if outlier.direction == "high" else outlier.score < -3.5
        expected = _hand_excess(data, outlier.row) if outlier.direction == "high" else 0.0
        assert outlier.excess == pytest.approx(expected, rel=1e-9)


def test_abc_classes_and_savings_equal_the_hand_computation() -> None:
    data = _purchases(5)
    result = run_direct("cost_optimization", data, PARAMS).result
    hand = _hand_abc(data)
    assert {item.item: item.abc_class for item in result.abc} == hand
    assert [c.items for c in result.classes] == [
        sum(label == name for label in hand.values()) for name in "ABC"
    ]
    assert result.total_spend == pytest.approx(sum(float(str(r["amount"])) for r in data))
    assert result.abc[-1].cumulative_share == pytest.approx(1.0)
    duplicates = sum(float(str(data[row]["amount"])) for row in DUPLICATED)
    overpricing = sum(_hand_excess(data, row) for row in OVERPRICED)
    assert result.savings.duplicates == pytest.approx(duplicates, rel=1e-12)
    assert result.savings.overpricing == pytest.approx(overpricing, rel=1e-9)
    assert result.savings.total == pytest.approx(duplicates + overpricing, rel=1e-9)
    assert sum(vendor.savings for vendor in result.vendors) == pytest.approx(
        result.savings.total, rel=1e-9
    )


def test_abc_thresholds_on_a_small_hand_example() -> None:
    """Spend 50, 25, 10, 8, 5, 2: A ends with the item that brings the share to 80% (85%), B
    with the one that brings it to 95% (98%)."""
    spend = {"a": 50, "b": 25, "c": 10, "d": 8, "e": 5, "f": 2}
    data: Records = [
        {"vendor": name, "amount": value / 2} for name, value in spend.items() for _ in range(2)
    ]
    result = run_direct("cost_optimization", data, {"vendor": "vendor", "amount": "amount"})
    assert [(i.item, i.abc_class) for i in result.result.abc] == [
        ("a", "A"),
        ("b", "A"),
        ("c", "A"),
        ("d", "B"),
        ("e", "B"),
        ("f", "C"),
    ]
    assert [(c.items, c.share) for c in result.result.classes] == [
        (3, pytest.approx(0.85)),
        (2, pytest.approx(0.13)),
        (1, pytest.approx(0.02)),
    ]
    assert result.result.price_basis == "amount"
    assert any("date or an invoice" in warning for warning in result.warnings)


def test_without_invoices_a_reinvoiced_copy_is_a_duplicate_too() -> None:
    data = _purchases(1)
    params = {key: value for key, value in PARAMS.items() if key != "invoice"}
    result = run_direct("cost_optimization", data, params).result
    reinvoiced = {240 + len(DUPLICATED) + len(REPEATED_LATER) + i for i in range(len(REINVOICED))}
    copies = {240 + position for position in range(len(DUPLICATED))}
    assert {d.row for d in result.duplicates} == copies | reinvoiced
    assert all(d.invoice is None for d in result.duplicates)


def test_with_invoices_and_no_dates_every_repeat_of_an_invoice_is_a_duplicate() -> None:
    data = _purchases(2)
    params = {key: value for key, value in PARAMS.items() if key != "date"}
    result = run_direct("cost_optimization", data, params).result
    repeated = {240 + len(DUPLICATED) + i for i in range(len(REPEATED_LATER))}
    copies = {240 + position for position in range(len(DUPLICATED))}
    assert {d.row for d in result.duplicates} == copies | repeated
    assert all(d.days_apart is None for d in result.duplicates)


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["cost_optimization"]
    first = run_direct("cost_optimization", method.example.data, method.example.params, seed=3)
    again = run_direct("cost_optimization", method.example.data, method.example.params, seed=3)
    assert first.result == again.result
    assert [(d.original_row, d.row) for d in first.result.duplicates] == [(12, 47), (60, 71)]
    assert {o.row for o in first.result.outliers} == {25, 83}
    assert "duplicate payments" in first.summary
    assert len(first.charts) == 2
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_thresholds_out_of_order_are_a_400() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("cost_optimization", _purchases(0), {**PARAMS, "b_threshold": 0.7})
    assert (refused.value.code, refused.value.param) == (
        "invalid_thresholds",
        "params.b_threshold",
    )


def test_dates_that_are_not_dates_are_a_400_naming_the_column() -> None:
    data = [{**row, "date": "soon"} for row in _purchases(0)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("cost_optimization", data, PARAMS)
    assert (refused.value.code, refused.value.param) == ("not_a_time", "params.date")
    assert "'date'" in refused.value.message


def test_credits_are_left_out_with_a_warning() -> None:
    data = _purchases(0)
    data.append({**data[0], "amount": -500.0, "invoice": "CREDIT-1"})
    direct = run_direct("cost_optimization", data, PARAMS)
    assert direct.result.lines == len(data) - 1
    assert any("positive amount" in warning for warning in direct.warnings)


def test_a_run_of_repeats_is_measured_from_its_original() -> None:
    """Window 3 days: day 2 repeats day 0; day 4 is 4 days after the original and starts a new
    one, which day 5 repeats."""
    data: Records = [
        {"vendor": "Acme", "amount": 250.0, "date": _day(day)} for day in (0, 2, 4, 5, 30)
    ]
    data.extend({"vendor": "Borealis", "amount": 80.0 + k, "date": _day(k)} for k in range(5))
    params = {"vendor": "vendor", "amount": "amount", "date": "date"}
    result = run_direct("cost_optimization", data, params).result
    assert [(d.original_row, d.row, d.days_apart) for d in result.duplicates] == [
        (0, 1, 2.0),
        (2, 3, 1.0),
    ]
    assert result.savings.duplicates == 500.0


def test_prices_mostly_alike_still_flag_the_one_far_above() -> None:
    """Six of eight lines pay the same unit price: the MAD is 0 and the score falls back to
    the mean absolute deviation."""
    prices = [10.0] * 6 + [10.5, 30.0]
    data: Records = [
        {"vendor": f"V{k}", "amount": 4 * price, "quantity": 4, "category": "c"}
        for k, price in enumerate(prices)
    ]
    params = {"vendor": "vendor", "amount": "amount", "quantity": "quantity"}
    result = run_direct("cost_optimization", data, params).result
    assert [(o.row, o.direction) for o in result.outliers] == [(7, "high")]
    assert result.outliers[0].category_median == 10.0
    assert result.outliers[0].excess == pytest.approx(4 * (30.0 - 10.0))
    mean_ad = float(np.mean(np.abs(np.array(prices) - 10.0)))
    assert result.outliers[0].score == pytest.approx(20.0 / (1.253314 * mean_ad))
    assert result.price_basis == "amount_per_quantity"
