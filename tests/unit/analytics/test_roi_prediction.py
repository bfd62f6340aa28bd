"""The roi_prediction engine: NPV and payback equal the hand computation, the IRR equals
numpy-financial's, a non-unique or missing IRR is None with a warning, the tornado moves one
input at a time, and the Monte Carlo mean lies within 3 standard errors of the expected NPV."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import numpy_financial as npf  # type: ignore[import-untyped]
import pytest
from scipy import integrate, stats

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct

FLOWS = [-1000.0, 300.0, 400.0, 500.0, 200.0]


def _table(flows: list[float]) -> Records:
    return [{"flow": flow} for flow in flows]


def _run(flows: list[float], **params: Any) -> Any:
    return run_direct("roi_prediction", _table(flows), {"cash_flow": "flow", **params})


def test_npv_and_payback_equal_the_hand_computation() -> None:
    direct = _run(FLOWS, discount_rate=0.1)
    result = direct.result
    hand = -1000 + 300 / 1.1 + 400 / 1.1**2 + 500 / 1.1**3 + 200 / 1.1**4
    assert result.npv == pytest.approx(hand, rel=1e-12)
    assert result.npv == pytest.approx(npf.npv(0.1, FLOWS), rel=1e-12)
    # cumulative -1000, -700, -300, +200: 300 of period 3's 500 are needed
    assert result.payback_period == pytest.approx(2 + 300 / 500, rel=1e-12)
    discounted = [flow / 1.1**t for t, flow in enumerate(FLOWS)]
    before = sum(discounted[:4])
    assert before < 0
    assert result.discounted_payback_period == pytest.approx(3 + -before / discounted[4])
    assert [p.cumulative for p in result.periods] == [-1000, -700, -300, 200, 400]
    assert result.roi == pytest.approx((1400 - 1000) / 1000)
    assert (result.total_inflow, result.total_outflow) == (1400.0, 1000.0)


def test_flows_that_never_pay_back_have_no_payback() -> None:
    result = _run([-1000.0, 100.0, 100.0, 100.0], discount_rate=0.05).result
    assert result.payback_period is None
    assert result.discounted_payback_period is None
    assert "never within the flows" in _run([-1000.0, 100.0, 100.0]).summary


@pytest.mark.parametrize(
    "flows",
    [
        FLOWS,
        [-100.0, 39.0, 59.0, 55.0, 20.0],
        [-100.0, 0.0, 0.0, 74.0],
        [-1000.0, *[1.0] * 10],
        [-1.0, 100.0],
        [-5000.0, 800.0, 900.0, 1200.0, 1500.0, 1800.0, 2000.0],
        [-250.0, -100.0, 80.0, 120.0, 150.0, 90.0],
    ],
)
def test_the_irr_equals_numpy_financial(flows: list[float]) -> None:
    result = _run(flows).result
    assert result.irr_status == "unique"
    assert result.irr == pytest.approx(float(npf.irr(flows)), rel=1e-9, abs=1e-9)
    assert result.irr_candidates == [result.irr]
    # at the IRR the NPV is zero
    assert abs(npf.npv(result.irr, flows)) < 1e-9 * max(abs(f) for f in flows)


def test_several_irrs_are_not_reported_as_one() -> None:
    flows = [-5.0, 10.5, 1.0, -8.0, 1.0]
    direct = _run(flows)
    assert direct.result.irr is None
    assert direct.result.irr_status == "multiple"
    assert len(direct.result.irr_candidates) == 3
    assert float(npf.irr(flows)) == pytest.approx(
        min(direct.result.irr_candidates, key=abs), rel=1e-9
    )
    for rate in direct.result.irr_candidates:
        assert abs(npf.npv(rate, flows)) < 1e-9
    assert any("not unique" in warning for warning in direct.warnings)


def test_flows_of_one_sign_have_no_irr() -> None:
    direct = _run([100.0, 200.0, 50.0])
    assert (direct.result.irr, direct.result.irr_status) == (None, "none")
    assert direct.result.irr_candidates == []
    assert any("never change sign" in warning for warning in direct.warnings)
    assert direct.result.roi is None


def test_the_tornado_moves_one_input_at_a_time() -> None:
    result = _run(FLOWS, discount_rate=0.1, rate_spread=0.03, flow_change=0.2).result
    by_input = {item.input: item for item in result.sensitivity}
    rate = by_input["discount rate"]
    assert (rate.low, rate.high) == (pytest.approx(0.07), pytest.approx(0.13))
    assert rate.npv_low == pytest.approx(npf.npv(0.07, FLOWS), rel=1e-12)
    assert rate.npv_high == pytest.approx(npf.npv(0.13, FLOWS), rel=1e-12)
    for t, flow in enumerate(FLOWS):
        item = by_input[f"flow {t}"]
        low = [f * 0.8 if k == t else f for k, f in enumerate(FLOWS)]
        high = [f * 1.2 if k == t else f for k, f in enumerate(FLOWS)]
        assert (item.low, item.high) == (pytest.approx(flow * 0.8), pytest.approx(flow * 1.2))
        assert item.npv_low == pytest.approx(npf.npv(0.1, low), rel=1e-12)
        assert item.npv_high == pytest.approx(npf.npv(0.1, high), rel=1e-12)
    swings = [item.swing for item in result.sensitivity]
    assert swings == sorted(swings, reverse=True)


def _expected_npv(flows: list[float], rate: float, density: Any, low: float, high: float) -> float:
    """Sum of CF_t E[(1 + R)^-t] for a rate R of the given density (flow errors have mean 0)."""
    return float(
        sum(
            flow * integrate.quad(lambda r, t=t: (1 + r) ** -t * density(r), low, high)[0]
            for t, flow in enumerate(flows)
        )
    )


@pytest.mark.parametrize("distribution", ["normal", "triangular"])
def test_the_monte_carlo_mean_is_within_3_standard_errors_of_the_expected_npv(
    distribution: str,
) -> None:
    rate, spread = 0.08, 0.04
    if distribution == "normal":
        law: Any = stats.norm(rate, spread)
        low, high = rate - 10 * spread, rate + 10 * spread
    else:
        law = stats.triang(0.5, loc=rate - spread, scale=2 * spread)
        low, high = rate - spread, rate + spread
    expected = _expected_npv(FLOWS, rate, law.pdf, low, high)
    result = _run(
        FLOWS,
        discount_rate=rate,
        distribution=distribution,
        rate_uncertainty=spread,
        flow_uncertainty=0.2,
        simulations=20_000,
    ).result
    mc = result.monte_carlo
    assert mc.simulations == 20_000
    assert abs(mc.mean - expected) < 3 * mc.standard_error
    # The rate's uncertainty alone moves the mean away from the NPV (Jensen).
    assert abs(expected - result.npv) > 0.05
    quantiles = [item.npv for item in mc.percentiles]
    assert quantiles == sorted(quantiles)
    assert 0 < mc.probability_positive < 1


def test_without_rate_uncertainty_the_simulation_is_centred_on_the_npv() -> None:
    result = _run(FLOWS, rate_uncertainty=0.0, flow_uncertainty=0.3, simulations=50_000).result
    mc = result.monte_carlo
    assert abs(mc.mean - result.npv) < 3 * mc.standard_error
    pv = np.array([flow / 1.1**t for t, flow in enumerate(FLOWS)])
    assert mc.std == pytest.approx(0.3 * float(np.sqrt(np.sum(pv**2))), rel=0.03)


def test_the_period_column_orders_the_rows() -> None:
    rows: Records = [{"year": 2020 + t, "flow": flow} for t, flow in enumerate(FLOWS)]
    shuffled = rows[:]
    random.Random(4).shuffle(shuffled)
    params = {"cash_flow": "flow", "period": "year"}
    ordered = run_direct("roi_prediction", rows, params).result
    assert run_direct("roi_prediction", shuffled, params).result == ordered
    assert [p.label for p in ordered.periods] == [2020.0 + t for t in range(len(FLOWS))]
    assert {item.input for item in ordered.sensitivity} >= {"flow 2020", "flow 2024"}


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["roi_prediction"]
    first = run_direct("roi_prediction", method.example.data, method.example.params, seed=4)
    again = run_direct("roi_prediction", method.example.data, method.example.params, seed=4)
    other = run_direct("roi_prediction", method.example.data, method.example.params, seed=5)
    assert first.result == again.result
    assert other.result.npv == first.result.npv
    assert other.result.monte_carlo != first.result.monte_carlo
    flows = [float(str(row["cash_flow"])) for row in method.example.data]
    assert first.result.irr == pytest.approx(float(npf.irr(flows)), rel=1e-9)
    assert len(first.charts) == 3
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_missing_flow_is_a_400_naming_its_period() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("roi_prediction", [*_table(FLOWS), {"flow": None}], {"cash_flow": "flow"})
    assert (refused.value.code, refused.value.param) == ("missing_value", "params.cash_flow")
    assert "period 5" in refused.value.message


def test_a_rate_spread_reaching_minus_100_percent_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        _run(FLOWS, discount_rate=-0.5, rate_spread=0.6)
    assert (refused.value.code, refused.value.param) == ("rate_out_of_range", "params.rate_spread")


def test_discounting_beyond_the_float_range_is_a_422() -> None:
    with pytest.raises(UnprocessableEntityError) as refused:
        _run([-1.0, *[1.0] * 999], discount_rate=-0.98, rate_spread=0.0)
    assert refused.value.code == "npv_overflow"
