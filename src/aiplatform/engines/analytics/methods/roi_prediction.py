"""roi_prediction: what an investment's cash flows are worth, when they pay back, and how sure
that is.

The flows are one per period, the first at time 0: ``NPV = sum_t CF_t / (1 + r)^t`` at the
discount rate ``r`` per period. The IRR is every rate in (-99.99%, 1,000,000%) at which the NPV
is zero: sign changes of the NPV on a fine grid of ``log(1 + r)`` are each refined by Brent's
method (scipy ``brentq``), the NPV scaled by its largest term so that no discount factor
overflows. When there is no such rate, or more than one (flows that change sign more than
once), ``irr`` is None with a warning and ``irr_status`` says which, and the rates found are
listed: a single IRR would mislead. Payback is the time at which the cumulative flow (simple)
or discounted flow (discounted) first turns non-negative, interpolated linearly within that
period. The tornado gives the NPV at the low and high value of each uncertain input, one at a
time: the discount rate +- ``rate_spread`` and each period's flow scaled by +- ``flow_change``.
The Monte Carlo draws the discount rate and every flow's relative error independently (normal
or symmetric triangular, seeded by the run's seed) and reports the NPV's mean, spread,
percentiles and the probability that it is positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "MonteCarlo",
    "PercentileValue",
    "PeriodFlow",
    "RoiPredictionParams",
    "RoiPredictionResult",
    "Sensitivity",
]

#: Most periods (rows) the engine takes.
MAX_PERIODS = 1_000
#: The IRR is searched for in (LOWEST_RATE, HIGHEST_RATE) ...
LOWEST_RATE = -0.9999
HIGHEST_RATE = 1e4
#: ... on this many grid points of log(1 + r), each sign change refined by brentq.
IRR_GRID = 4_001
#: IRRs closer than this are one.
IRR_SAME = 1e-9
#: Simulations are drawn in chunks of this many (the same draws for any total).
CHUNK = 10_000
#: The percentiles of the simulated NPV reported.
PERCENTILES = (5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0)
#: The tornado chart shows this many inputs (the widest swings).
TORNADO_INPUTS = 15
HISTOGRAM_BINS = 40


class RoiPredictionParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric column with the net cash flow of each period (investments negative), the first
    #: row at time 0.
    cash_flow: str
    #: Column ordering the periods (numbers or ISO 8601 times, each once). None: row order.
    period: str | None = None
    #: Discount rate per period (0.08: 8%).
    discount_rate: Annotated[float, msgspec.Meta(gt=-0.99, le=10.0)] = 0.1
    #: Tornado: the discount rate is moved by +- this (0.02: 2 percentage points).
    rate_spread: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.02
    #: Tornado: each period's flow is scaled by 1 +- this (0.1: +-10%).
    flow_change: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.1
    #: Monte Carlo draws.
    simulations: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 10_000
    #: Distribution of the uncertain inputs: "normal" (the uncertainties are standard
    #: deviations) or "triangular" (symmetric; the uncertainties are half-widths).
    distribution: Literal["normal", "triangular"] = "normal"
    #: Relative uncertainty of each flow (0.1: 10%), drawn independently per period.
    flow_uncertainty: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.1
    #: Uncertainty of the discount rate, in rate units (0.01: 1 percentage point).
    rate_uncertainty: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.01


class Sensitivity(msgspec.Struct, kw_only=True):
    #: "discount rate" or "flow <period>".
    input: str
    #: The input's low setting: the rate less ``rate_spread``, or the flow scaled by
    #: 1 - ``flow_change``.
    low: float
    #: The input's high setting: the rate plus ``rate_spread``, or the flow scaled by
    #: 1 + ``flow_change``.
    high: float
    #: NPV with the input at its low and at its high value (the others as given).
    npv_low: float
    npv_high: float
    #: |npv_high - npv_low|.
    swing: float


class PercentileValue(msgspec.Struct, kw_only=True):
    percentile: float
    npv: float


class MonteCarlo(msgspec.Struct, kw_only=True):
    simulations: int
    distribution: str
    mean: float
    std: float
    #: Standard error of the mean (std / sqrt(simulations)).
    standard_error: float
    percentiles: list[PercentileValue]
    #: Share of draws with an NPV above 0.
    probability_positive: float


class PeriodFlow(msgspec.Struct, kw_only=True):
    #: 0 for the first row.
    period: int
    #: The row's value of the ``period`` column (None without one).
    label: str | float | None
    cash_flow: float
    #: The flow's present value.
    discounted: float
    cumulative: float
    cumulative_discounted: float


class RoiPredictionResult(msgspec.Struct, kw_only=True):
    #: Net present value of the flows at ``discount_rate`` (the first flow undiscounted).
    npv: float
    #: The discount rate per period used.
    discount_rate: float
    #: The internal rate of return; None when there is none or more than one.
    irr: float | None
    #: "unique", "none" or "multiple".
    irr_status: str
    #: Every rate found at which the NPV is zero, lowest first.
    irr_candidates: list[float]
    #: Periods until the cumulative flow turns non-negative (interpolated); None when it
    #: never does.
    payback_period: float | None
    #: The same for the discounted flows.
    discounted_payback_period: float | None
    #: (inflows - outflows) / outflows, undiscounted; None without an outflow.
    roi: float | None
    #: Sum of the positive flows.
    total_inflow: float
    #: Sum of the negative flows, as a positive number.
    total_outflow: float
    #: Tornado: one entry per uncertain input, widest swing first.
    sensitivity: list[Sensitivity]
    #: The NPV's distribution over the uncertain discount rate and flows.
    monte_carlo: MonteCarlo
    #: Each period's flow, present value and running totals, in period order.
    periods: list[PeriodFlow]


# ----------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class _Flows:
    values: np.ndarray
    labels: list[str | float | None]


def _label(value: Any) -> str | float:
    if isinstance(value, int | float):
        return float(value)
    return str(charts.json_safe(value))


def _flows(frame: pd.DataFrame, params: RoiPredictionParams) -> _Flows:
    """The flows in period order; every value must be present."""
    import numpy as np

    flows = columns.numeric(frame, params.cash_flow, "cash_flow", allow_constant=True)
    labels: list[str | float | None] = [None] * len(frame)
    if params.period is not None:
        times = columns.time_column(frame, params.period, "period")
        order = np.argsort(times.to_numpy(), kind="stable")
        flows = flows.iloc[order]
        labels = [_label(value) for value in times.iloc[order]]
    missing = flows.isna().to_numpy()
    if missing.any():
        raise InvalidRequestError(
            f"Column '{params.cash_flow}' given as cash_flow has a missing flow (period "
            f"{int(missing.argmax())}); give 0 for a period without one.",
            param="params.cash_flow",
            code="missing_value",
        )
    if len(flows) > MAX_PERIODS:
        raise InvalidRequestError(
            f"The data have {len(flows)} periods; the engine takes at most {MAX_PERIODS}.",
            param="data",
            code="too_many_periods",
        )
    if params.discount_rate - params.rate_spread <= -1:
        raise InvalidRequestError(
            "discount_rate - rate_spread must stay above -1 (a rate of -100% or less has no "
            "present value).",
            param="params.rate_spread",
            code="rate_out_of_range",
        )
    return _Flows(values=flows.to_numpy(dtype=float), labels=labels)


# ----------------------------------------------------------------------------- measures


def present_values(flows: np.ndarray, rate: float) -> np.ndarray:
    """``flows[t] / (1 + rate)^t``; infinite (not a warning) where the factor overflows."""
    import numpy as np

    with np.errstate(over="ignore"):
        factors = np.exp(-np.arange(len(flows)) * math.log1p(rate))
    return np.asarray(np.where(flows == 0, 0.0, flows * factors))


def npv(flows: np.ndarray, rate: float) -> float:
    """Sum of ``flows[t] / (1 + rate)^t``."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        return float(np.sum(present_values(flows, rate)))


def _scaled_npv(flows: np.ndarray, growth: np.ndarray) -> np.ndarray:
    """NPV at ``log(1 + r) = growth`` divided by its largest term's magnitude: the same sign
    and roots, and no overflow at any rate."""
    import numpy as np

    present = np.flatnonzero(flows)
    logs = np.log(np.abs(flows[present])) - np.multiply.outer(growth, present.astype(float))
    top = logs.max(axis=-1, keepdims=True)
    return np.asarray((np.sign(flows[present]) * np.exp(logs - top)).sum(axis=-1))


def irr_candidates(flows: np.ndarray) -> list[float]:
    """Every rate in (LOWEST_RATE, HIGHEST_RATE) at which the NPV of ``flows`` is zero."""
    import numpy as np
    from scipy.optimize import brentq

    if not np.any(flows > 0) or not np.any(flows < 0):
        return []
    grid = np.linspace(math.log1p(LOWEST_RATE), math.log1p(HIGHEST_RATE), IRR_GRID)
    values = _scaled_npv(flows, grid)
    roots = [float(grid[i]) for i in np.flatnonzero(values == 0)]
    for i in np.flatnonzero(values[:-1] * values[1:] < 0):
        root = brentq(
            lambda g: float(_scaled_npv(flows, np.array(g))),
            float(grid[i]),
            float(grid[i + 1]),
            xtol=1e-15,
            rtol=1e-15,
            maxiter=200,
        )
        roots.append(float(root))
    rates: list[float] = []
    for rate in sorted(math.expm1(root) for root in roots):
        if not rates or rate - rates[-1] > IRR_SAME * max(1.0, abs(rate)):
            rates.append(rate)
    return rates


def payback(flows: np.ndarray) -> float | None:
    """When the cumulative flow first turns non-negative: ``t - 1 + (-C[t-1]) / CF[t]`` for the
    first ``t`` with ``C[t] >= 0`` after a negative ``C[t-1]`` (0 when it never is negative);
    None when it never turns."""
    import numpy as np

    cumulative = np.cumsum(flows)
    if cumulative[0] >= 0:
        return 0.0
    for t in range(1, len(flows)):
        if cumulative[t] >= 0 > cumulative[t - 1]:
            return float(t - 1 + -cumulative[t - 1] / flows[t])
    return None


# ----------------------------------------------------------------------------- uncertainty


def _tornado(
    flows: np.ndarray, params: RoiPredictionParams, labels: list[str]
) -> list[Sensitivity]:
    rate, spread, change = params.discount_rate, params.rate_spread, params.flow_change
    found = [
        Sensitivity(
            input="discount rate",
            low=rate - spread,
            high=rate + spread,
            npv_low=npv(flows, rate - spread),
            npv_high=npv(flows, rate + spread),
            swing=abs(npv(flows, rate + spread) - npv(flows, rate - spread)),
        )
    ]
    base = npv(flows, rate)
    presents = present_values(flows, rate)
    for t, flow in enumerate(flows):
        present = float(presents[t])
        found.append(
            Sensitivity(
                input=f"flow {labels[t]}",
                low=float(flow) * (1 - change),
                high=float(flow) * (1 + change),
                npv_low=base - change * present,
                npv_high=base + change * present,
                swing=abs(2 * change * present),
            )
        )
    found.sort(key=lambda item: -item.swing)
    return found


def _draws(
    rng: np.random.Generator, shape: tuple[int, ...], spread: float, kind: str
) -> np.ndarray:
    """Errors of mean 0: normal with SD ``spread``, or triangular on [-spread, spread]."""
    import numpy as np

    if spread == 0:
        return np.zeros(shape)
    if kind == "normal":
        return rng.normal(0.0, spread, shape)
    return rng.triangular(-spread, 0.0, spread, shape)


def _simulate(flows: np.ndarray, params: RoiPredictionParams, run: Run) -> np.ndarray:
    """The NPV of every draw, in chunks (so memory stays bounded)."""
    import numpy as np

    rng = np.random.default_rng(run.seed)
    t = np.arange(len(flows), dtype=float)
    results = []
    clipped = 0
    for start in range(0, params.simulations, CHUNK):
        size = min(CHUNK, params.simulations - start)
        run.progress(0.35 + 0.5 * start / params.simulations, "simulating the NPV")
        rate = params.discount_rate + _draws(
            rng, (size,), params.rate_uncertainty, params.distribution
        )
        clipped += int(np.sum(rate <= LOWEST_RATE))
        rate = np.maximum(rate, LOWEST_RATE)
        scale = 1.0 + _draws(rng, (size, len(flows)), params.flow_uncertainty, params.distribution)
        with np.errstate(over="ignore", invalid="ignore"):
            discount = np.exp(-np.multiply.outer(np.log1p(rate), t))
            results.append(np.sum(np.where(flows == 0, 0.0, flows * scale * discount), axis=1))
    if clipped:
        run.warn(
            f"{clipped} drawn discount rates were at or below {LOWEST_RATE:.2%}; they are taken "
            f"as {LOWEST_RATE:.2%}."
        )
    return np.concatenate(results)


def _monte_carlo(values: np.ndarray, params: RoiPredictionParams) -> MonteCarlo:
    import numpy as np

    if not np.isfinite(values).all():
        raise UnprocessableEntityError(
            "Simulated NPVs overflow at the drawn discount rates; lower rate_uncertainty.",
            code="simulation_overflow",
        )
    std = float(np.std(values, ddof=1))
    return MonteCarlo(
        simulations=len(values),
        distribution=params.distribution,
        mean=float(np.mean(values)),
        std=std,
        standard_error=std / math.sqrt(len(values)),
        percentiles=[
            PercentileValue(percentile=q, npv=float(v))
            for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)
        ],
        probability_positive=float(np.mean(values > 0)),
    )


# ----------------------------------------------------------------------------- output


def _irr_status(candidates: list[float], flows: np.ndarray, run: Run) -> tuple[float | None, str]:
    import numpy as np

    if len(candidates) == 1:
        return candidates[0], "unique"
    if not candidates:
        if not (np.any(flows > 0) and np.any(flows < 0)):
            run.warn("The flows never change sign, so no discount rate makes the NPV zero: no IRR.")
        else:
            run.warn(
                f"No discount rate between {LOWEST_RATE:.2%} and {HIGHEST_RATE:,.0%} makes the "
                "NPV zero: no IRR."
            )
        return None, "none"
    shown = ", ".join(f"{rate:.4%}" for rate in candidates)
    run.warn(
        f"The flows change sign more than once and the NPV is zero at {len(candidates)} rates "
        f"({shown}): the IRR is not unique and is not reported."
    )
    return None, "multiple"


def _periods(flows: np.ndarray, labels: list[str | float | None], rate: float) -> list[PeriodFlow]:
    import numpy as np

    discounted = present_values(flows, rate)
    with np.errstate(invalid="ignore"):
        cumulative, cumulative_discounted = np.cumsum(flows), np.cumsum(discounted)
    return [
        PeriodFlow(
            period=t,
            label=labels[t],
            cash_flow=float(flows[t]),
            discounted=float(discounted[t]),
            cumulative=float(cumulative[t]),
            cumulative_discounted=float(cumulative_discounted[t]),
        )
        for t in range(len(flows))
    ]


def _cumulative_chart(result: RoiPredictionResult) -> dict[str, Any]:
    data = [
        {"period": p.period, "value": value, "series": series}
        for p in result.periods
        for value, series in (
            (p.cumulative, "cumulative flow"),
            (p.cumulative_discounted, "cumulative discounted flow"),
        )
    ]
    return charts.line(
        data,
        charts.field("period", "quantitative", title="period"),
        charts.field("value", "quantitative", title="cumulative value"),
        color=charts.field("series", "nominal", title=None),
        title="Cumulative cash flow: payback where it crosses 0",
    )


def _tornado_chart(result: RoiPredictionResult) -> dict[str, Any]:
    shown = result.sensitivity[:TORNADO_INPUTS]
    data = [
        {
            "input": item.input,
            "from": min(item.npv_low, item.npv_high),
            "to": max(item.npv_low, item.npv_high),
        }
        for item in shown
    ]
    return charts.chart(
        data,
        "bar",
        {
            "y": charts.field("input", "nominal", title=None, sort=[item.input for item in shown]),
            "x": charts.field("from", "quantitative", title="NPV"),
            "x2": {"field": "to"},
        },
        title=f"NPV sensitivity (tornado) around {result.npv:,.2f}",
    )


def _histogram(values: np.ndarray) -> dict[str, Any]:
    import numpy as np

    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    bars = charts.chart(
        [
            {"start": edges[i], "end": edges[i + 1], "draws": int(counts[i])}
            for i in range(len(counts))
        ],
        "bar",
        {
            "x": charts.field("start", "quantitative", title="NPV", bin={"binned": True}),
            "x2": {"field": "end"},
            "y": charts.field("draws", "quantitative", title="draws"),
        },
        title="",
    )
    zero = charts.chart(
        [{"npv": 0.0}],
        {"type": "rule", "color": "#d62728"},
        {"x": charts.field("npv", "quantitative")},
        title="",
    )
    return charts.layer(bars, zero, title="Simulated NPV")


def _when(value: float | None) -> str:
    return f"{value:.2f} periods" if value is not None else "never within the flows"


def _summary(result: RoiPredictionResult) -> str:
    irr = f"{result.irr:.2%}" if result.irr is not None else f"none ({result.irr_status})"
    mc = result.monte_carlo
    p5, p95 = mc.percentiles[0].npv, mc.percentiles[-1].npv
    top = result.sensitivity[0]
    return (
        f"NPV at {result.discount_rate:.2%} per period: {result.npv:,.2f}; IRR {irr}. Payback "
        f"after {_when(result.payback_period)} (discounted: "
        f"{_when(result.discounted_payback_period)}). Over {mc.simulations} simulations the NPV "
        f"averages {mc.mean:,.2f} (90% between {p5:,.2f} and {p95:,.2f}) and is positive in "
        f"{mc.probability_positive:.1%} of them. The NPV is most sensitive to the {top.input} "
        f"({top.npv_low:,.2f} to {top.npv_high:,.2f})."
    )


def _names(labels: list[str | float | None]) -> list[str]:
    """How the tornado names each period: its label, or its number."""
    return [
        str(t) if label is None else f"{label:g}" if isinstance(label, float) else label
        for t, label in enumerate(labels)
    ]


def _require_finite(values: list[float], rate: float) -> None:
    """Discount factors beyond the float range (many periods at a rate near -100%) give no
    answer."""
    if not all(math.isfinite(value) for value in values):
        raise UnprocessableEntityError(
            f"Discounting {len(values)} periods at {rate:.2%} overflows; the NPV cannot be "
            "computed at this rate.",
            code="npv_overflow",
        )


def compute(
    frame: pd.DataFrame, params: RoiPredictionParams, run: Run
) -> Outcome[RoiPredictionResult]:
    import numpy as np

    flows = _flows(frame, params)
    values = flows.values
    rate = params.discount_rate
    run.progress(0.1, "discounting the flows")
    periods = _periods(values, flows.labels, rate)
    discounted = np.array([period.discounted for period in periods])
    _require_finite([period.cumulative_discounted for period in periods], rate)
    run.progress(0.2, "searching the IRR")
    candidates = irr_candidates(values)
    irr, status = _irr_status(candidates, values, run)
    run.progress(0.3, "measuring sensitivities")
    tornado = _tornado(values, params, _names(flows.labels))
    _require_finite([item.npv_low for item in tornado] + [item.npv_high for item in tornado], rate)
    simulated = _simulate(values, params, run)
    run.progress(0.9, "summarising")
    outflow = float(-values[values < 0].sum())
    inflow = float(values[values > 0].sum())
    result = RoiPredictionResult(
        npv=npv(values, rate),
        discount_rate=rate,
        irr=irr,
        irr_status=status,
        irr_candidates=candidates,
        payback_period=payback(values),
        discounted_payback_period=payback(discounted),
        roi=(inflow - outflow) / outflow if outflow > 0 else None,
        total_inflow=inflow,
        total_outflow=outflow,
        sensitivity=tornado,
        monte_carlo=_monte_carlo(simulated, params),
        periods=periods,
    )
    return Outcome(
        result=result,
        summary=_summary(result),
        charts=[_cumulative_chart(result), _tornado_chart(result), _histogram(simulated)],
    )


def _example_data() -> Records:
    """A machine bought for 120,000: savings that grow for three years, then level off and
    fall as it ages; an overhaul in year 5 and a resale value in the last year."""
    flows = [-120_000, 28_000, 34_000, 39_000, 41_000, 12_000, 38_000, 33_000, 26_000]
    return [{"year": 2025 + t, "cash_flow": flow} for t, flow in enumerate(flows)]


METHOD: Method[RoiPredictionParams, RoiPredictionResult] = Method(
    name="roi_prediction",
    summary="Investment appraisal: NPV, IRR, simple and discounted payback, a tornado of "
    "sensitivities and a Monte Carlo distribution of the NPV",
    params=RoiPredictionParams,
    result=RoiPredictionResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=RoiPredictionParams(
            cash_flow="cash_flow", period="year", discount_rate=0.08, simulations=5_000
        ),
    ),
    numeric_param="cash_flow",
    min_rows=2,
)
