"""The pricing_strategy engine: a planted elasticity lies in its interval (in most of 50
simulations), the profit-optimal price is c·e/(1+e) when that price was observed, optima
outside the range stop at its edge, and a control removes the bias it would cause."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct

ELASTICITY = -1.8
PARAMS: dict[str, Any] = {"price": "price", "quantity": "quantity"}


def _demand(
    seed: int, elasticity: float = ELASTICITY, rows: int = 150, low: float = 5.0, high: float = 20.0
) -> Records:
    """Sales at prices spread over [low, high]: log q = 6 + e log p + N(0, 0.25²)."""
    rng = np.random.default_rng(seed)
    price = rng.uniform(low, high, rows)
    quantity = np.exp(6 + elasticity * np.log(price) + rng.normal(0, 0.25, rows))
    return [{"price": float(p), "quantity": float(q)} for p, q in zip(price, quantity, strict=True)]


def test_the_planted_elasticity_is_recovered_and_covered_by_the_interval() -> None:
    covered = 0
    for seed in range(50):
        result = run_direct("pricing_strategy", _demand(seed), PARAMS).result
        low, high = result.ci
        assert low < result.elasticity < high
        assert abs(result.elasticity - ELASTICITY) < 0.25
        covered += low < ELASTICITY < high
    assert covered >= 44


def test_the_interval_widens_with_the_level() -> None:
    data = _demand(3)
    narrow = run_direct("pricing_strategy", data, {**PARAMS, "level": 0.8}).result
    wide = run_direct("pricing_strategy", data, {**PARAMS, "level": 0.99}).result
    assert narrow.elasticity == wide.elasticity
    assert wide.ci[0] < narrow.ci[0] < narrow.ci[1] < wide.ci[1]
    assert wide.level == 0.99


@pytest.mark.parametrize("cost", [3.0, 5.0, 7.0])
def test_the_profit_optimal_price_is_c_e_over_1_plus_e_inside_the_range(cost: float) -> None:
    result = run_direct("pricing_strategy", _demand(1), {**PARAMS, "unit_cost": cost}).result
    e = result.elasticity
    expected = cost * e / (1 + e)
    assert result.price_range[0] < expected < result.price_range[1]
    assert result.profit_optimal_price == pytest.approx(expected, rel=1e-7)
    assert result.profit_at_edge is False
    # Elastic demand: revenue only grows as the price falls.
    assert result.revenue_optimal_price == result.price_range[0]
    assert result.revenue_at_edge is True


def test_optima_beyond_the_range_stop_at_its_edge_with_a_warning() -> None:
    """Inelastic demand: revenue and profit rise with the price up to the highest one seen."""
    data = _demand(2, elasticity=-0.5)
    direct = run_direct("pricing_strategy", data, {**PARAMS, "unit_cost": 2.0})
    result = direct.result
    assert result.ci[0] < -0.5 < result.ci[1]
    assert result.revenue_optimal_price == result.price_range[1]
    assert result.profit_optimal_price == result.price_range[1]
    assert result.revenue_at_edge
    assert result.profit_at_edge
    assert sum("edge of the observed range" in warning for warning in direct.warnings) == 2
    assert "the edge of the range" in direct.summary


def test_a_profit_optimum_below_the_lowest_price_stops_at_it() -> None:
    """Elastic demand priced 10 to 20 at a unit cost of 3.5: c·e/(1+e) is about 7.9."""
    data = _demand(4, low=10, high=20)
    result = run_direct("pricing_strategy", data, {**PARAMS, "unit_cost": 3.5}).result
    assert 3.5 * result.elasticity / (1 + result.elasticity) < result.price_range[0]
    assert result.profit_optimal_price == result.price_range[0]
    assert result.profit_at_edge is True


def test_expected_values_follow_the_fitted_curve_with_the_smearing_factor() -> None:
    data = _demand(6)
    result = run_direct("pricing_strategy", data, {**PARAMS, "unit_cost": 4.0}).result
    prices = np.array([row["price"] for row in data], dtype=float)
    quantities = np.array([row["quantity"] for row in data], dtype=float)
    design = np.column_stack([np.ones(len(prices)), np.log(prices)])
    coefficients, *_ = np.linalg.lstsq(design, np.log(quantities), rcond=None)
    assert result.elasticity == pytest.approx(coefficients[1], rel=1e-9)
    smearing = float(np.mean(np.exp(np.log(quantities) - design @ coefficients)))
    assert result.smearing == pytest.approx(smearing, rel=1e-9)
    price = result.profit_optimal_price
    expected = np.exp(coefficients[0] + coefficients[1] * np.log(price)) * smearing
    assert result.expected_profit == pytest.approx((price - 4.0) * expected, rel=1e-9)


def test_a_control_removes_the_bias_of_promotions_run_at_low_prices() -> None:
    """Promotions (lifting sales by e^0.8) run only at low prices: without the control the
    price seems to move demand far more than it does."""
    rng = np.random.default_rng(8)
    price = rng.uniform(5, 20, 200)
    promo = (price < 9).astype(float)
    quantity = np.exp(6 + ELASTICITY * np.log(price) + 0.8 * promo + rng.normal(0, 0.2, 200))
    data: Records = [
        {"price": float(p), "quantity": float(q), "promo": float(f)}
        for p, q, f in zip(price, quantity, promo, strict=True)
    ]
    naive = run_direct("pricing_strategy", data, PARAMS).result
    controlled = run_direct("pricing_strategy", data, {**PARAMS, "controls": ["promo"]}).result
    assert naive.ci[1] < ELASTICITY
    assert controlled.ci[0] < ELASTICITY < controlled.ci[1]
    assert [control.column for control in controlled.controls] == ["promo"]
    assert controlled.controls[0].coefficient == pytest.approx(0.8, abs=0.15)
    assert controlled.controls[0].mean == pytest.approx(promo.mean())


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["pricing_strategy"]
    first = run_direct("pricing_strategy", method.example.data, method.example.params, seed=2)
    again = run_direct("pricing_strategy", method.example.data, method.example.params, seed=2)
    assert first.result == again.result
    assert first.result.ci[0] < -1.6 < first.result.ci[1]
    assert first.result.profit_at_edge is False
    assert len(first.charts) == 2
    assert_valid_charts(first.charts)
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_single_price_is_a_422() -> None:
    data: Records = [{"price": 9.99, "quantity": float(q)} for q in (10, 12, 9, 11, 13)]
    with pytest.raises(UnprocessableEntityError) as refused:
        run_direct("pricing_strategy", data, PARAMS)
    assert refused.value.code == "too_few_prices"


def test_two_prices_are_enough_and_zero_sales_are_left_out() -> None:
    data: Records = [
        {"price": price, "quantity": quantity}
        for price, quantity in ((10.0, 100), (10.0, 110), (12.0, 70), (12.0, 75), (12.0, 0))
    ]
    direct = run_direct("pricing_strategy", data, PARAMS)
    assert direct.result.observations == 4
    slope = (np.mean(np.log([70, 75])) - np.mean(np.log([100, 110]))) / np.log(1.2)
    assert direct.result.elasticity == pytest.approx(slope, rel=1e-9)
    assert any("left out" in warning for warning in direct.warnings)


def test_a_control_that_is_the_price_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("pricing_strategy", _demand(0), {**PARAMS, "controls": ["price"]})
    assert (refused.value.code, refused.value.param) == ("duplicate_column", "params.controls")


def test_a_collinear_control_is_a_422() -> None:
    data = [{**row, "log_price": float(np.log(float(str(row["price"]))))} for row in _demand(0)]
    with pytest.raises(UnprocessableEntityError) as refused:
        run_direct("pricing_strategy", data, {**PARAMS, "controls": ["log_price"]})
    assert refused.value.code == "collinear_controls"
