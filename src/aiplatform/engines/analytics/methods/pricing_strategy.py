"""pricing_strategy: price elasticity of demand, and the prices that maximise revenue and profit.

The elasticity is the slope of a log-log regression (statsmodels OLS) of quantity on price,
``log q = a + e log p + b · controls``, with its confidence interval: a 1% higher price goes
with ``e``% more (less, when ``e`` is negative) quantity, the controls held fixed. The fitted
demand (controls at their means, times Duan's smearing factor ``mean(exp(residual))`` so the
curve is the expected quantity rather than its geometric mean) gives revenue ``p · q(p)`` and,
with a unit cost ``c``, profit ``(p - c) · q(p)``; each is maximised by a bounded search over
the observed price range only, since the fit says nothing about prices never charged. With a
constant elasticity the revenue optimum lies at an edge of the range (the lowest price when
demand is elastic, ``e < -1``; the highest when it is not) and the profit optimum is
``c · e / (1 + e)`` when demand is elastic and that price was observed; an optimum at an edge
is reported as such, since a better price may lie beyond the range.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "ControlEffect",
    "CurvePoint",
    "PricingStrategyParams",
    "PricingStrategyResult",
]

#: Points of the demand, revenue and profit curves over the price range.
CURVE_POINTS = 60
#: An optimum this close to an edge of the price range (as a share of the range) is at it.
EDGE_TOLERANCE = 1e-6
#: The scatter chart draws at most this many observations (a seeded sample beyond).
CHART_ROWS = 5_000


class PricingStrategyParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric column with the price of each observation (rows with a price of 0 or less are
    #: left out: the fit is on log prices).
    price: str
    #: Numeric column with the quantity sold at that price (rows with 0 or less are left out).
    quantity: str
    #: Numeric columns held fixed in the regression (promotion flags, season, competitor
    #: prices); the curves take them at their means.
    controls: Annotated[list[str], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    #: Confidence level of the elasticity's interval.
    level: Annotated[float, msgspec.Meta(ge=0.5, lt=1.0)] = 0.95
    #: Cost of one unit; given, the profit-optimal price is searched too.
    unit_cost: Annotated[float, msgspec.Meta(ge=0.0)] | None = None


class ControlEffect(msgspec.Struct, kw_only=True):
    column: str
    #: Change of log quantity per unit of the control.
    coefficient: float
    p_value: float
    #: The value the curves hold it at (its mean).
    mean: float


class CurvePoint(msgspec.Struct, kw_only=True):
    price: float
    #: Expected quantity at that price (controls at their means).
    quantity: float
    revenue: float
    #: None without a unit cost.
    profit: float | None


class PricingStrategyResult(msgspec.Struct, kw_only=True):
    #: Price elasticity of demand: % change of quantity per 1% change of price.
    elasticity: float
    #: Confidence interval of the elasticity, [low, high], at ``level``.
    ci: list[float]
    #: The interval's confidence level.
    level: float
    #: Standard error of the elasticity.
    std_error: float
    #: p-value of a zero elasticity.
    p_value: float
    #: R² of the log-log fit.
    r_squared: float
    #: Observations fitted (positive price and quantity, every control present).
    observations: int
    #: Lowest and highest observed price: the optima are searched between them.
    price_range: list[float]
    #: Duan's smearing factor: expected quantity over the fit's geometric mean.
    smearing: float
    #: The price in the observed range with the highest expected revenue.
    revenue_optimal_price: float
    #: Expected revenue at ``revenue_optimal_price``.
    expected_revenue: float
    #: True when the revenue optimum lies at an edge of the observed price range.
    revenue_at_edge: bool
    #: The price in the observed range with the highest expected profit (None without a
    #: unit cost).
    profit_optimal_price: float | None
    #: Expected profit at ``profit_optimal_price`` (None without a unit cost).
    expected_profit: float | None
    #: True when the profit optimum lies at an edge of the observed price range (None
    #: without a unit cost).
    profit_at_edge: bool | None
    #: The controls' coefficients, in the order given.
    controls: list[ControlEffect]
    #: Expected quantity, revenue and profit across the observed price range.
    curve: list[CurvePoint]


# ----------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class _Observations:
    log_price: np.ndarray
    log_quantity: np.ndarray
    controls: np.ndarray
    price: np.ndarray
    quantity: np.ndarray


def _observations(frame: pd.DataFrame, params: PricingStrategyParams, run: Run) -> _Observations:
    """Column roles checked first, then the rows usable in logs (positive price and quantity,
    every control present)."""
    import numpy as np
    import pandas as pd

    price = columns.numeric(frame, params.price, "price", allow_constant=True)
    quantity = columns.numeric(frame, params.quantity, "quantity", allow_constant=True)
    if params.price in params.controls or params.quantity in params.controls:
        raise InvalidRequestError(
            "The price and quantity columns cannot be controls too.",
            param="params.controls",
            code="duplicate_column",
        )
    controls = (
        columns.numeric_columns(frame, params.controls, "controls")
        if params.controls
        else pd.DataFrame(index=frame.index)
    )
    usable = (price > 0) & (quantity > 0) & controls.notna().all(axis=1)
    if not bool(usable.all()):
        run.warn(
            f"{int((~usable).sum())} rows without a positive price and quantity (or with a "
            "missing control) are left out."
        )
    needed = len(params.controls) + 4
    columns.require_rows(int(usable.sum()), needed, "an elasticity with these controls")
    kept_price = price[usable].to_numpy(dtype=float)
    if np.unique(kept_price).size < 2:
        raise UnprocessableEntityError(
            "The data hold fewer than two distinct prices (above 0); an elasticity needs "
            "prices that vary.",
            code="too_few_prices",
        )
    kept_quantity = quantity[usable].to_numpy(dtype=float)
    return _Observations(
        log_price=np.log(kept_price),
        log_quantity=np.log(kept_quantity),
        controls=controls[usable].to_numpy(dtype=float),
        price=kept_price,
        quantity=kept_quantity,
    )


# ----------------------------------------------------------------------------- fit


@dataclass(frozen=True, slots=True)
class _Fit:
    elasticity: float
    low: float
    high: float
    std_error: float
    p_value: float
    r_squared: float
    intercept: float
    coefficients: list[float]
    control_p: list[float]
    smearing: float


def _fit(data: _Observations, level: float) -> _Fit:
    """OLS of log quantity on log price and the controls."""
    import numpy as np
    import statsmodels.api as sm

    design = np.column_stack([np.ones(len(data.log_price)), data.log_price, data.controls])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise UnprocessableEntityError(
            "Log price and the controls are collinear (a control is constant or a combination "
            "of the others and the price); the elasticity cannot be separated.",
            code="collinear_controls",
        )
    fit = sm.OLS(data.log_quantity, design).fit()
    low, high = (float(value) for value in fit.conf_int(alpha=1 - level)[1])
    params = [float(value) for value in fit.params]
    values = [*params, low, high, float(fit.bse[1])]
    if not all(math.isfinite(value) for value in values):
        raise UnprocessableEntityError(
            "The log-log regression did not give finite estimates.", code="fit_failed"
        )
    r_squared = float(fit.rsquared)
    return _Fit(
        elasticity=params[1],
        low=low,
        high=high,
        std_error=float(fit.bse[1]),
        p_value=float(fit.pvalues[1]),
        r_squared=r_squared if math.isfinite(r_squared) else 0.0,
        intercept=params[0],
        coefficients=params[2:],
        control_p=[float(value) for value in fit.pvalues[2:]],
        smearing=float(np.mean(np.exp(np.asarray(fit.resid)))),
    )


# ----------------------------------------------------------------------------- optima


@dataclass(frozen=True, slots=True)
class _Optimum:
    price: float
    value: float
    at_edge: bool


def _demand(fit: _Fit, means: np.ndarray) -> Callable[[float], float]:
    """Expected quantity at a price, the controls at ``means``."""
    import numpy as np

    base = fit.intercept + float(np.dot(fit.coefficients, means)) if len(means) else fit.intercept

    def quantity(price: float) -> float:
        return math.exp(base + fit.elasticity * math.log(price)) * fit.smearing

    return quantity


def _maximise(objective: Callable[[float], float], low: float, high: float) -> _Optimum:
    """The best price in [low, high]: a bounded Brent search over log price, compared with
    both edges."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        lambda log_price: -objective(math.exp(log_price)),
        bounds=(math.log(low), math.log(high)),
        method="bounded",
        options={"xatol": 1e-12},
    )
    candidates = [low, high, min(max(math.exp(float(found.x)), low), high)]
    best = max(candidates, key=objective)
    near = EDGE_TOLERANCE * (high - low)
    return _Optimum(
        price=best,
        value=objective(best),
        at_edge=abs(best - low) <= near or abs(best - high) <= near,
    )


def _curve(
    quantity: Callable[[float], float], low: float, high: float, cost: float | None
) -> list[CurvePoint]:
    points = []
    for step in range(CURVE_POINTS):
        price = low + (high - low) * step / (CURVE_POINTS - 1)
        sold = quantity(price)
        points.append(
            CurvePoint(
                price=price,
                quantity=sold,
                revenue=price * sold,
                profit=(price - cost) * sold if cost is not None else None,
            )
        )
    return points


# ----------------------------------------------------------------------------- output


def _warn_about(
    fit: _Fit, result: PricingStrategyResult, params: PricingStrategyParams, run: Run
) -> None:
    if fit.elasticity > 0:
        run.warn(
            f"The elasticity is positive ({fit.elasticity:.3g}): quantity rises with price in "
            "these data; a control (promotion, season, quality) may be missing."
        )
    if fit.low <= 0 <= fit.high:
        run.warn(
            f"The {params.level:.0%} interval of the elasticity includes 0: the data do not show "
            "that price moves demand."
        )
    low, high = result.price_range
    if result.revenue_at_edge:
        run.warn(
            f"The revenue-optimal price lies at the edge of the observed range ({low:g} to "
            f"{high:g}); a better one may lie beyond it, where the data say nothing."
        )
    if result.profit_at_edge:
        run.warn(
            f"The profit-optimal price lies at the edge of the observed range ({low:g} to "
            f"{high:g}); a better one may lie beyond it, where the data say nothing."
        )
    if params.unit_cost is not None and params.unit_cost >= high:
        run.warn(
            f"The unit cost ({params.unit_cost:g}) is not below any observed price: every "
            "observed price loses money."
        )


def _edge(at_edge: bool | None) -> str:
    return ", the edge of the range" if at_edge else ""


def _summary(result: PricingStrategyResult, params: PricingStrategyParams) -> str:
    low, high = result.ci
    kind = "elastic" if result.elasticity < -1 else "inelastic"
    direction = "less" if result.elasticity < 0 else "more"
    text = (
        f"The price elasticity of demand is {result.elasticity:.3g} ({params.level:.0%} "
        f"interval {low:.3g} to {high:.3g}; {result.observations} observations, R² "
        f"{result.r_squared:.2f}): demand is {kind}, a 1% higher price goes with "
        f"{abs(result.elasticity):.2g}% {direction} quantity. Within the observed prices "
        f"({result.price_range[0]:g} to {result.price_range[1]:g}) revenue is highest at "
        f"{result.revenue_optimal_price:.4g} ({result.expected_revenue:,.2f})"
        f"{_edge(result.revenue_at_edge)}."
    )
    if result.profit_optimal_price is not None and result.expected_profit is not None:
        text += (
            f" At a unit cost of {params.unit_cost:g}, profit is highest at "
            f"{result.profit_optimal_price:.4g} ({result.expected_profit:,.2f})"
            f"{_edge(result.profit_at_edge)}."
        )
    return text


def _demand_chart(
    data: _Observations, result: PricingStrategyResult, params: PricingStrategyParams, seed: int
) -> dict[str, Any]:
    import numpy as np

    shown = np.arange(len(data.price))
    if len(shown) > CHART_ROWS:
        shown = np.sort(np.random.default_rng(seed).choice(shown, CHART_ROWS, replace=False))
    x = charts.field("price", "quantitative", title=params.price, scale={"zero": False})
    y = charts.field("quantity", "quantitative", title=params.quantity)
    observed = charts.point(
        [{"price": data.price[i], "quantity": data.quantity[i]} for i in shown],
        x,
        y,
        title="observed",
    )
    fitted = charts.chart(
        [{"price": point.price, "quantity": point.quantity} for point in result.curve],
        {"type": "line", "color": "#d62728"},
        {"x": x, "y": y},
        title="fitted demand",
    )
    return charts.layer(observed, fitted, title=f"Demand: elasticity {result.elasticity:.3g}")


def _value_chart(result: PricingStrategyResult, params: PricingStrategyParams) -> dict[str, Any]:
    lines = [
        {"price": point.price, "value": point.revenue, "measure": "revenue"}
        for point in result.curve
    ]
    optima = [{"price": result.revenue_optimal_price, "measure": "revenue"}]
    if result.profit_optimal_price is not None:
        lines += [
            {"price": point.price, "value": point.profit, "measure": "profit"}
            for point in result.curve
        ]
        optima.append({"price": result.profit_optimal_price, "measure": "profit"})
    x = charts.field("price", "quantitative", title=params.price, scale={"zero": False})
    color = charts.field("measure", "nominal", title=None)
    return charts.layer(
        charts.line(
            lines,
            x,
            charts.field("value", "quantitative", title="expected value"),
            title="revenue and profit",
            color=color,
        ),
        charts.chart(
            optima,
            {"type": "rule", "strokeDash": [4, 4]},
            {"x": x, "color": color},
            title="optima",
        ),
        title="Expected revenue and profit by price, optima marked",
    )


def compute(
    frame: pd.DataFrame, params: PricingStrategyParams, run: Run
) -> Outcome[PricingStrategyResult]:
    import numpy as np

    data = _observations(frame, params, run)
    run.progress(0.2, "fitting the log-log demand")
    fit = _fit(data, params.level)
    means = data.controls.mean(axis=0) if data.controls.shape[1] else np.zeros(0)
    quantity = _demand(fit, means)
    low, high = float(data.price.min()), float(data.price.max())
    run.progress(0.5, "searching the revenue-optimal price")
    revenue = _maximise(lambda price: price * quantity(price), low, high)
    profit = None
    cost = params.unit_cost
    if cost is not None:
        run.progress(0.7, "searching the profit-optimal price")
        profit = _maximise(lambda price: (price - cost) * quantity(price), low, high)
    result = PricingStrategyResult(
        elasticity=fit.elasticity,
        ci=[fit.low, fit.high],
        level=params.level,
        std_error=fit.std_error,
        p_value=fit.p_value,
        r_squared=fit.r_squared,
        observations=len(data.price),
        price_range=[low, high],
        smearing=fit.smearing,
        revenue_optimal_price=revenue.price,
        expected_revenue=revenue.value,
        revenue_at_edge=revenue.at_edge,
        profit_optimal_price=profit.price if profit else None,
        expected_profit=profit.value if profit else None,
        profit_at_edge=profit.at_edge if profit else None,
        controls=[
            ControlEffect(column=name, coefficient=coefficient, p_value=p, mean=float(mean))
            for name, coefficient, p, mean in zip(
                params.controls, fit.coefficients, fit.control_p, means, strict=True
            )
        ],
        curve=_curve(quantity, low, high, cost),
    )
    _warn_about(fit, result, params, run)
    run.progress(0.9, "drawing charts")
    return Outcome(
        result=result,
        summary=_summary(result, params),
        charts=[_demand_chart(data, result, params, run.seed), _value_chart(result, params)],
    )


def _example_data() -> Records:
    """A year of weekly sales of one product at seven price points, some weeks on promotion:
    a constant elasticity of -1.6, promotions lifting sales by about 35%."""
    rng = random.Random(0)
    prices = [6.99, 7.99, 8.99, 9.99, 10.99, 11.99, 12.99]
    data: Records = []
    for week in range(52):
        price = rng.choice(prices)
        promo = 1 if rng.random() < 0.25 else 0
        expected = math.exp(8.0 - 1.6 * math.log(price) + 0.3 * promo + rng.gauss(0, 0.1))
        data.append({"week": week + 1, "price": price, "promo": promo, "units": round(expected)})
    return data


METHOD: Method[PricingStrategyParams, PricingStrategyResult] = Method(
    name="pricing_strategy",
    summary="Price elasticity of demand by log-log regression, with the revenue- and "
    "profit-optimal prices within the observed range",
    params=PricingStrategyParams,
    result=PricingStrategyResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=PricingStrategyParams(
            price="price", quantity="units", controls=["promo"], unit_cost=3.5
        ),
    ),
    numeric_param="price",
    min_rows=4,
)
