"""The cash_flow engine: on a planted ledger the monthly flows, burn rate and runway equal the
hand-computed figures; a typed ledger gives the same answer as a signed one; the balance
forecast's interval holds the future balance at about its level."""

from __future__ import annotations

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

#: A ledger over January to June 2024, May without entries; times with offsets keep the
#: date they were written with.
LEDGER: Records = [
    {"date": "2024-01-03", "amount": 12_000.50, "type": "inflow"},
    {"date": "2024-01-15", "amount": -20_000.25, "type": "outflow"},
    {"date": "2024-01-31T23:30:00-05:00", "amount": -1_000.0, "type": "outflow"},
    {"date": "2024-02-10", "amount": 15_500.0, "type": "inflow"},
    {"date": "2024-02-11", "amount": -21_250.75, "type": "outflow"},
    {"date": "2024-03-01T00:15:00+09:00", "amount": 9_999.99, "type": "inflow"},
    {"date": "2024-03-20", "amount": -30_000.0, "type": "outflow"},
    {"date": "2024-04-05", "amount": 4_000.0, "type": "inflow"},
    {"date": "2024-04-06", "amount": -2_000.0, "type": "inflow"},
    {"date": "2024-04-30", "amount": -18_400.4, "type": "outflow"},
    {"date": "2024-06-02", "amount": 11_111.11, "type": "inflow"},
    {"date": "2024-06-29", "amount": -25_000.0, "type": "outflow"},
]
START = 150_000.0


def _nets() -> list[float]:
    """The ledger's monthly net flows, by hand."""
    return [
        12_000.50 - 20_000.25 - 1_000.0,
        15_500.0 - 21_250.75,
        9_999.99 - 30_000.0,
        4_000.0 - 2_000.0 - 18_400.4,
        0.0,
        11_111.11 - 25_000.0,
    ]


def test_the_monthly_flows_burn_and_runway_equal_the_hand_computed_ones() -> None:
    direct = run_direct(
        "cash_flow",
        [{key: row[key] for key in ("date", "amount")} for row in LEDGER],
        {"date": "date", "amount": "amount", "starting_balance": START, "burn_months": 3},
    )
    result = direct.result
    nets = _nets()
    assert [month.month for month in result.months] == [
        f"2024-{number:02d}-01" for number in range(1, 7)
    ]
    assert [month.net for month in result.months] == pytest.approx(nets, abs=1e-9)
    assert result.months[3].inflow == pytest.approx(4_000.0, abs=1e-9)
    assert result.months[3].outflow == pytest.approx(20_400.4, abs=1e-9)
    assert (result.months[4].inflow, result.months[4].outflow) == (0.0, 0.0)
    balances = list(START + np.cumsum(nets))
    assert [month.balance for month in result.months] == pytest.approx(balances, abs=1e-9)
    current = START + sum(nets)
    burn = -(nets[3] + nets[4] + nets[5]) / 3
    assert result.current_balance == pytest.approx(current, abs=1e-9)
    assert result.burn_months == 3
    assert result.burn_rate == pytest.approx(burn, abs=1e-9)
    assert result.runway_months == pytest.approx(current / burn, abs=1e-9)
    assert result.runway_reason is None
    # 8.4 months after June 2024: the cash lasts through February 2025 and runs out in March.
    assert result.runway_months is not None
    assert 8 < result.runway_months < 9
    assert result.cash_out_month == "2025-03-01"
    # Six months are enough for a forecast that starts from the current balance.
    assert result.forecast_model is not None
    assert len(result.forecast) == 12
    assert result.forecast[0].month == "2024-07-01"
    assert result.forecast[0].balance == pytest.approx(current + result.forecast[0].net)


def test_a_ledger_typed_by_a_column_gives_the_signed_ledgers_answer() -> None:
    signed = run_direct(
        "cash_flow", LEDGER, {"date": "date", "amount": "amount", "starting_balance": START}
    )
    # Magnitudes and a type column; the one negative "inflow" (a refund) still subtracts.
    typed_rows = [
        {**row, "amount": abs(row["amount"]) if row["type"] == "outflow" else row["amount"]}
        for row in LEDGER
    ]
    typed_rows = [{**row, "type": f"  {str(row['type']).upper()} "} for row in typed_rows]
    typed = run_direct(
        "cash_flow",
        typed_rows,
        {"date": "date", "amount": "amount", "flow_type": "type", "starting_balance": START},
    )
    assert typed.result == signed.result


def test_an_entry_of_an_unknown_type_is_a_400_naming_it() -> None:
    rows = [*LEDGER, {"date": "2024-06-30", "amount": 5.0, "type": "transfer"}]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("cash_flow", rows, {"date": "date", "amount": "amount", "flow_type": "type"})
    error = refused.value
    assert (error.code, error.param) == ("unknown_flow_type", "params.flow_type")
    assert "'transfer' at row 12" in error.message


def test_a_company_that_is_not_burning_cash_has_no_runway_and_says_why() -> None:
    rows: Records = [
        {"date": f"2024-{month:02d}-10", "amount": amount}
        for month, amount in enumerate([-5_000.0, 2_000.0, 3_000.0, 1_000.0], start=1)
    ]
    direct = run_direct("cash_flow", rows, {"date": "date", "amount": "amount"})
    result = direct.result
    assert result.burn_rate == pytest.approx(-2_000.0, abs=1e-9)
    assert result.runway_months is None
    assert result.cash_out_month is None
    assert result.runway_reason is not None
    assert "not being burnt" in result.runway_reason
    # Four months are too few for a forecast: none, and a warning that says so.
    assert result.forecast == []
    assert result.forecast_model is None
    assert any("a forecast needs 6" in warning for warning in direct.warnings)


def test_a_balance_already_below_zero_has_no_runway_left() -> None:
    rows: Records = [
        {"date": f"2024-{month:02d}-10", "amount": -1_000.0 * month} for month in range(1, 8)
    ]
    direct = run_direct(
        "cash_flow",
        rows,
        {"date": "date", "amount": "amount", "starting_balance": 10_000.0, "burn_months": 12},
    )
    result = direct.result
    assert result.current_balance == pytest.approx(10_000.0 - 28_000.0)
    assert result.burn_months == 7
    assert result.burn_rate == pytest.approx(4_000.0)
    assert result.runway_months == 0.0
    assert result.cash_out_month == "2024-07-01"
    assert any("burn_months" in warning for warning in direct.warnings)
    assert any("at or below zero" in warning for warning in direct.warnings)


def _noisy_ledger(seed: int, months: int) -> Records:
    """Receipts of 20,000 a month (SD 1,500) on the 5th and a fixed 30,000 bill on the 20th."""
    rng = np.random.default_rng(seed)
    rows: Records = []
    for month in range(months):
        prefix = f"{2020 + month // 12}-{month % 12 + 1:02d}"
        rows.append({"date": f"{prefix}-05", "amount": float(20_000 + rng.normal(0, 1_500))})
        rows.append({"date": f"{prefix}-20", "amount": -30_000.0})
    return rows


def test_the_balance_interval_holds_the_future_balance_at_about_its_level() -> None:
    """Twelve ledgers of three years, each forecast a fourth at 90%: the held-out balances
    fall inside the interval about 90% of the time, and the interval widens month by month
    (each month's uncertainty adds to the balance's)."""
    inside = total = 0
    for seed in range(12):
        rows = _noisy_ledger(seed, 48)
        result = run_direct(
            "cash_flow",
            rows[:72],
            {"date": "date", "amount": "amount", "starting_balance": 500_000.0},
        ).result
        truth = result.current_balance + np.cumsum(
            [float(rows[72 + 2 * k]["amount"]) - 30_000.0 for k in range(12)]
        )
        inside += sum(
            p.balance_lower <= value <= p.balance_upper
            for p, value in zip(result.forecast, truth, strict=True)
        )
        total += len(truth)
        widths = [p.balance_upper - p.balance_lower for p in result.forecast]
        assert widths == sorted(widths)
        assert result.burn_rate == pytest.approx(10_000.0, abs=3_000.0)
    assert 0.8 <= inside / total <= 0.99


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["cash_flow"]
    first = run_direct("cash_flow", method.example.data, method.example.params, seed=3)
    again = run_direct("cash_flow", method.example.data, method.example.params, seed=3)
    other = run_direct("cash_flow", method.example.data, method.example.params, seed=4)
    assert first.result == again.result
    assert first.summary == again.summary
    assert [p.balance for p in other.result.forecast] == [p.balance for p in first.result.forecast]
    assert [p.balance_upper for p in other.result.forecast] != [
        p.balance_upper for p in first.result.forecast
    ]
    result = first.result
    assert len(result.months) == 18
    assert result.runway_months is not None
    assert result.runway_months == pytest.approx(result.current_balance / result.burn_rate)
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_date_that_is_not_iso_8601_is_a_400_naming_the_column() -> None:
    rows = [*LEDGER, {"date": "31/06/2024", "amount": 1.0, "type": "inflow"}]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("cash_flow", rows, {"date": "date", "amount": "amount"})
    error = refused.value
    assert (error.code, error.param) == ("not_a_time", "params.date")
    assert "'31/06/2024'" in error.message
