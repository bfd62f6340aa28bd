"""The profit_margin engine: margins equal the hand-computed ones; a planted shift of revenue
mix is found as a mix effect of the hand-computed size, and the rate, mix and interaction
effects (and the Shapley split) add up to the change of the total margin; planted margin
trends are recovered."""

from __future__ import annotations

from typing import Any

import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

PARAMS: dict[str, Any] = {
    "segment": "product",
    "revenue": "revenue",
    "cogs": "cogs",
    "period": "quarter",
}


def _row(quarter: str, product: str, revenue: float, cogs: float, **more: float) -> Any:
    return {"quarter": quarter, "product": product, "revenue": revenue, "cogs": cogs, **more}


def test_margins_equal_the_hand_computed_ones() -> None:
    rows: Records = [
        _row("2024-Q1", "A", 600.0, 240.0, opex=100.0, interest=10.0, tax=20.0),
        _row("2024-Q1", "A", 400.0, 160.0, opex=50.0, interest=0.0, tax=15.0),
        _row("2024-Q1", "B", 500.0, 400.0, opex=80.0, interest=5.0, tax=-5.0),
        _row("2024-Q2", "A", 800.0, 300.0, opex=120.0, interest=10.0, tax=30.0),
        _row("2024-Q2", "B", 700.0, 520.0, opex=90.0, interest=5.0, tax=2.0),
    ]
    params = {**PARAMS, "operating_expenses": "opex", "other_expenses": ["interest", "tax"]}
    result = run_direct("profit_margin", rows, params).result

    a = result.segments[0]
    revenue, gross = 1_800.0, 1_800.0 - 700.0
    operating = gross - 270.0
    net = operating - (20.0 + 65.0)
    assert (a.segment, a.period, a.revenue) == ("A", None, revenue)
    assert (a.gross_profit, a.operating_profit, a.net_profit) == (gross, operating, net)
    assert a.gross_margin == pytest.approx(gross / revenue, abs=1e-12)
    assert a.operating_margin == pytest.approx(operating / revenue, abs=1e-12)
    assert a.net_margin == pytest.approx(net / revenue, abs=1e-12)
    assert a.revenue_share == pytest.approx(1_800.0 / 3_000.0, abs=1e-12)

    b_q1 = next(c for c in result.by_period if (c.segment, c.period) == ("B", "2024-Q1"))
    assert b_q1.gross_margin == pytest.approx(100.0 / 500.0, abs=1e-12)
    assert b_q1.operating_margin == pytest.approx(20.0 / 500.0, abs=1e-12)
    assert b_q1.net_margin == pytest.approx(20.0 / 500.0, abs=1e-12)
    assert b_q1.revenue_share == pytest.approx(500.0 / 1_500.0, abs=1e-12)

    q2 = result.totals[1]
    assert (q2.segment, q2.period, q2.revenue) == (None, "2024-Q2", 1_500.0)
    assert q2.gross_margin == pytest.approx((1_500.0 - 820.0) / 1_500.0, abs=1e-12)
    assert q2.net_margin == pytest.approx((680.0 - 210.0 - 47.0) / 1_500.0, abs=1e-12)
    # Two periods: no trend, but a mix analysis of the net margin.
    assert result.trends == []
    assert result.mix is not None
    assert result.mix.margin == "net"


def _planted_shift(margin_change: float) -> Records:
    """A (margin 60%) and B (margin 20%) half and half in Q1; in Q2 B takes 70% of revenue,
    and A's margin moves by ``margin_change``."""
    return [
        _row("Q1", "A", 500.0, 500.0 * 0.4),
        _row("Q1", "B", 500.0, 500.0 * 0.8),
        _row("Q2", "A", 300.0, 300.0 * (0.4 - margin_change)),
        _row("Q2", "B", 700.0, 700.0 * 0.8),
    ]


def test_a_planted_mix_shift_is_all_mix_effect() -> None:
    mix = run_direct("profit_margin", _planted_shift(0.0), PARAMS).result.mix
    assert mix is not None
    # By hand: (0.3 - 0.5) * 0.6 + (0.7 - 0.5) * 0.2 = -0.08.
    assert (mix.base_period, mix.compare_period, mix.margin) == ("Q1", "Q2", "gross")
    assert mix.base_margin == pytest.approx(0.4, abs=1e-12)
    assert mix.compare_margin == pytest.approx(0.32, abs=1e-12)
    assert mix.total_change == pytest.approx(-0.08, abs=1e-12)
    assert mix.mix_effect == pytest.approx(-0.08, abs=1e-12)
    assert mix.rate_effect == pytest.approx(0.0, abs=1e-12)
    assert mix.interaction == pytest.approx(0.0, abs=1e-12)
    assert mix.shapley_mix_effect == pytest.approx(-0.08, abs=1e-12)
    parts = {part.segment: part for part in mix.segments}
    assert parts["A"].mix_effect == pytest.approx(-0.2 * 0.6, abs=1e-12)
    assert parts["B"].mix_effect == pytest.approx(0.2 * 0.2, abs=1e-12)


def test_rate_mix_and_interaction_are_the_hand_computed_ones_and_add_up() -> None:
    mix = run_direct("profit_margin", _planted_shift(0.1), PARAMS).result.mix
    assert mix is not None
    s0, s1 = {"A": 0.5, "B": 0.5}, {"A": 0.3, "B": 0.7}
    m0, m1 = {"A": 0.6, "B": 0.2}, {"A": 0.7, "B": 0.2}
    rate = sum(s0[k] * (m1[k] - m0[k]) for k in s0)
    mix_effect = sum((s1[k] - s0[k]) * m0[k] for k in s0)
    interaction = sum((s1[k] - s0[k]) * (m1[k] - m0[k]) for k in s0)
    assert (rate, mix_effect, interaction) == pytest.approx((0.05, -0.08, -0.02), abs=1e-12)
    assert mix.rate_effect == pytest.approx(rate, abs=1e-12)
    assert mix.mix_effect == pytest.approx(mix_effect, abs=1e-12)
    assert mix.interaction == pytest.approx(interaction, abs=1e-12)
    assert mix.shapley_rate_effect == pytest.approx(0.4 * 0.1, abs=1e-12)
    assert mix.shapley_mix_effect == pytest.approx(-0.2 * 0.65 + 0.2 * 0.2, abs=1e-12)
    assert mix.total_change == pytest.approx((0.3 * 0.7 + 0.7 * 0.2) - 0.4, abs=1e-12)
    parts = mix.rate_effect + mix.mix_effect + mix.interaction
    assert parts == pytest.approx(mix.total_change, abs=1e-12)
    shapley = mix.shapley_rate_effect + mix.shapley_mix_effect
    assert shapley == pytest.approx(mix.total_change, abs=1e-12)


def test_a_segment_that_enters_or_leaves_counts_wholly_as_mix() -> None:
    rows = [
        *_planted_shift(0.1),
        _row("Q2", "C", 250.0, 50.0),
        _row("Q1", "D", 100.0, 150.0),
    ]
    mix = run_direct("profit_margin", rows, PARAMS).result.mix
    assert mix is not None
    parts = {part.segment: part for part in mix.segments}
    assert [part.segment for part in mix.segments] == ["A", "B", "C", "D"]
    assert (parts["C"].base_share, parts["C"].base_margin) == (0.0, None)
    assert parts["C"].compare_share == pytest.approx(250.0 / 1_250.0, abs=1e-12)
    assert parts["C"].mix_effect == pytest.approx(200.0 / 1_250.0, abs=1e-12)
    assert parts["D"].mix_effect == pytest.approx(50.0 / 1_100.0, abs=1e-12)
    assert (parts["C"].rate_effect, parts["C"].interaction) == (0.0, 0.0)
    total = (1_250.0 - 90.0 - 560.0 - 50.0) / 1_250.0 - (1_100.0 - 200.0 - 400.0 - 150.0) / 1_100.0
    assert mix.total_change == pytest.approx(total, abs=1e-12)
    assert mix.rate_effect + mix.mix_effect + mix.interaction == pytest.approx(total, abs=1e-12)
    assert mix.shapley_rate_effect + mix.shapley_mix_effect == pytest.approx(total, abs=1e-12)


def test_planted_margin_trends_are_recovered() -> None:
    """Over six months A's gross margin rises exactly one point a month and B's stays at
    30%, with revenue split evenly: the total rises half a point a month."""
    rows: Records = []
    for month in range(6):
        when = f"2024-{month + 1:02d}"
        rows.append(_row(when, "A", 1_000.0, 1_000.0 * (0.5 - 0.01 * month)))
        rows.append(_row(when, "B", 1_000.0, 700.0))
    result = run_direct("profit_margin", list(reversed(rows)), PARAMS).result
    assert [total.period for total in result.totals] == [f"2024-{m:02d}" for m in range(1, 7)]
    trends = {(trend.segment, trend.margin): trend for trend in result.trends}
    assert set(trends) == {(None, "gross"), ("A", "gross"), ("B", "gross")}
    assert trends[("A", "gross")].slope == pytest.approx(0.01, abs=1e-12)
    assert trends[("A", "gross")].p_value is not None
    assert trends[("A", "gross")].p_value < 1e-6
    assert trends[(None, "gross")].slope == pytest.approx(0.005, abs=1e-12)
    assert (trends[("B", "gross")].slope, trends[("B", "gross")].p_value) == (0.0, None)
    assert trends[("B", "gross")].periods == 6


def test_the_compared_periods_and_margin_can_be_chosen_and_are_checked() -> None:
    # Q3 repeats Q2's revenue, with A's margin back at 60%.
    rows = [*_planted_shift(0.1), *[{**row, "quarter": "Q3"} for row in _planted_shift(0.0)[2:]]]
    chosen = run_direct(
        "profit_margin", rows, {**PARAMS, "base_period": "Q2", "compare_period": "Q3"}
    ).result.mix
    assert chosen is not None
    assert (chosen.base_period, chosen.compare_period) == ("Q2", "Q3")
    assert chosen.rate_effect == pytest.approx(0.3 * -0.1, abs=1e-12)
    assert chosen.mix_effect == pytest.approx(0.0, abs=1e-12)

    cases = [
        ({"base_period": "Q9"}, "unknown_period", "params.base_period"),
        ({"base_period": "Q2", "compare_period": "Q2"}, "same_period", "params.compare_period"),
        ({"mix_margin": "operating"}, "margin_unavailable", "params.mix_margin"),
        ({"period": None, "compare_period": "Q2"}, "period_needed", "params.period"),
    ]
    for changes, code, param in cases:
        with pytest.raises(InvalidRequestError) as refused:
            run_direct("profit_margin", rows, {**PARAMS, **changes})
        assert (refused.value.code, refused.value.param) == (code, param)


def test_negative_revenue_is_a_400_naming_the_column() -> None:
    rows = [*_planted_shift(0.0), _row("Q2", "A", -50.0, 0.0)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("profit_margin", rows, PARAMS)
    assert (refused.value.code, refused.value.param) == ("negative_revenue", "params.revenue")
    assert "row 4" in refused.value.message


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["profit_margin"]
    first = run_direct("profit_margin", method.example.data, method.example.params, seed=1)
    again = run_direct("profit_margin", method.example.data, method.example.params, seed=9)
    assert first.result == again.result
    assert first.summary == again.summary
    mix = first.result.mix
    assert mix is not None
    # The example's total margin falls mostly because revenue moves to hardware.
    assert mix.total_change < 0
    assert mix.mix_effect < mix.total_change < mix.rate_effect
    assert len(first.result.trends) == 4 * 3
    assert_valid_charts(first.charts)
    assert len(first.charts) == 3
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_text_costs_are_a_400_naming_the_field() -> None:
    rows = [{**row, "cogs": "unknown"} for row in _planted_shift(0.0)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("profit_margin", rows, PARAMS)
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.cogs")
