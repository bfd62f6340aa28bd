"""trend: a series split into trend, season and remainder, its slope, and where its level shifts.

STL (statsmodels, robust LOESS) separates the seasonal cycle when there is one, as one pattern
held fixed across cycles (a season free to drift soaks up noise and steps); a series without a
season gets a LOWESS trend. Change points are found on the seasonally adjusted series by binary
segmentation (ruptures) with a linear cost, so a steady slope is not taken for a series of
steps; the penalty is scaled to the noise, estimated robustly from successive differences and
raised when the remainder is autocorrelated. The slope is that of one line through the series
with a level of its own in each segment between change points (a level shift does not bend
it) and one effect per position in the seasonal cycle, with Newey-West (heteroscedasticity
and autocorrelation consistent) errors.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.engines.analytics.methods.chronos import (
    OrderedSeries,
    infer_season_length,
    ordered_series,
    time_value,
)
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "TrendParams", "TrendResult"]

#: Fewest values the engine works on.
_MIN_ROWS = 8
#: Calendar units a slope may be given per, in days.
_UNITS = (
    ("second", 1 / 86_400),
    ("minute", 1 / 1_440),
    ("hour", 1 / 24),
    ("day", 1.0),
    ("week", 7.0),
    ("month", 365.2425 / 12),
    ("quarter", 365.2425 / 4),
    ("year", 365.2425),
)
#: Penalty per change point, in units of noise variance times log(n): a change costs its
#: location, a level and a slope (a BIC-like weight, a little above it).
_PENALTY_WEIGHT = 4.0
#: The slope's confidence level.
_CONFIDENCE = 0.95


class TrendParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with the times (ISO 8601 text, or numbers); rows are ordered by it.
    time: str
    #: Numeric column to decompose.
    target: str
    #: Values per seasonal cycle (12 for monthly data with a yearly cycle; 1: no season).
    #: Absent: inferred from the time step (hourly 24, daily 7, monthly 12, quarterly 4,
    #: otherwise 1).
    season_length: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    #: Most change points to report (0: do not look for any).
    max_change_points: Annotated[int, msgspec.Meta(ge=0, le=50)] = 5


class ChangePoint(msgspec.Struct, kw_only=True):
    #: Position (0-based, in time order) of the first row of the new segment.
    index: int
    #: That row's time: ISO 8601 text for datetimes, a number for numeric times.
    time: str | float
    #: How far the level moves at this point (new segment's level minus the previous one's,
    #: at a common slope).
    shift: float


class Component(msgspec.Struct, kw_only=True):
    time: str | float
    trend: float
    #: 0 when there is no season.
    seasonal: float
    #: What trend and season leave.
    resid: float


class TrendResult(msgspec.Struct, kw_only=True):
    #: Change of the target per ``slope_per`` (seasonally adjusted, levels free per segment).
    slope: float
    #: 95% confidence interval of the slope, [low, high] (Newey-West errors).
    slope_ci: list[float]
    #: p-value of a zero slope.
    slope_p_value: float
    #: The time unit the slope is per: a calendar unit (day, month, ...) for datetimes; the
    #: time column's own unit, named by the column, for numeric times.
    slope_per: str
    #: Season length used (1: no season).
    season_length: int
    change_points: list[ChangePoint]
    #: One row per value, in time order.
    components: list[Component]
    #: The noise level (standard deviation) the change-point penalty is scaled to: from
    #: successive differences, or larger when the noise is autocorrelated.
    noise_sd: float


@dataclass(frozen=True, slots=True)
class _Decomposition:
    trend: np.ndarray
    seasonal: np.ndarray
    resid: np.ndarray


def compute(frame: pd.DataFrame, params: TrendParams, run: Run) -> Outcome[TrendResult]:
    series = ordered_series(frame, params.time, params.target, run)
    y: np.ndarray = series.values
    if len(y) < _MIN_ROWS:
        raise InvalidRequestError(
            f"The trend engine needs at least {_MIN_ROWS} values with a '{params.target}'; "
            f"the series has {len(y)}.",
            param="data",
            code="too_few_rows",
        )
    season = _season_for(len(y), params, series, run)
    run.progress(0.1, "decomposing the series")
    parts = _decompose(y, season)
    adjusted = y - parts.seasonal
    cycles = len(y) / season
    run.progress(0.45, "looking for change points")
    breaks, noise = _change_points(
        adjusted,
        noise=_noise_sd(adjusted, cycles),
        cycles=cycles,
        season=season,
        most=params.max_change_points,
        run=run,
    )
    run.progress(0.75, "estimating the slope")
    x, unit = _elapsed(series, params.time)
    fit = _slope_fit(y, x, breaks, season)
    result = TrendResult(
        slope=fit.slope,
        slope_ci=[fit.low, fit.high],
        slope_p_value=fit.p_value,
        slope_per=unit,
        season_length=season,
        change_points=[
            ChangePoint(index=index, time=time_value(series.times.iloc[index]), shift=shift)
            for index, shift in zip(breaks, fit.shifts, strict=True)
        ],
        components=[
            Component(
                time=time_value(time),
                trend=float(trend),
                seasonal=float(seasonal),
                resid=float(resid),
            )
            for time, trend, seasonal, resid in zip(
                series.times, parts.trend, parts.seasonal, parts.resid, strict=True
            )
        ],
        noise_sd=noise,
    )
    run.progress(0.95, "drawing the series")
    return Outcome(
        result=result, summary=_summary(result, params), charts=[_chart(series, result, params)]
    )


def _season_for(count: int, params: TrendParams, series: OrderedSeries, run: Run) -> int:
    """The season length to use: STL needs two full cycles."""
    season = params.season_length
    if season is None:
        season = infer_season_length(series.times, series.temporal)
        if season > 1 and count < 2 * season:
            run.warn(
                f"The series has fewer than two cycles of {season} values; no season is separated."
            )
            return 1
    if season > 1 and count < 2 * season:
        raise InvalidRequestError(
            f"Separating a season of {season} values needs at least 2 * season_length = "
            f"{2 * season} values; the series has {count}.",
            param="params.season_length",
            code="series_too_short",
        )
    return season


def _decompose(y: np.ndarray, season: int) -> _Decomposition:
    """STL for a seasonal series; a LOWESS trend (and no season) otherwise."""
    import numpy as np

    if season > 1:
        from statsmodels.tsa.seasonal import STL

        # A smoother spanning the whole series with degree 0: one fixed seasonal pattern.
        # A season free to drift from cycle to cycle soaks up noise and steps, and the noise
        # then looks smaller than it is.
        span = 2 * len(y) + 1
        fit = STL(y, period=season, seasonal=span, seasonal_deg=0, robust=True).fit()
        trend, seasonal = np.asarray(fit.trend), np.asarray(fit.seasonal)
    else:
        from statsmodels.nonparametric.smoothers_lowess import lowess

        window = max(7, len(y) // 10)
        trend = lowess(
            y, np.arange(len(y)), frac=min(1.0, window / len(y)), it=2, return_sorted=False
        )
        seasonal = np.zeros_like(y)
    if not (np.isfinite(trend).all() and np.isfinite(seasonal).all()):
        raise UnprocessableEntityError(
            "The decomposition of the series did not give finite values.",
            code="decomposition_failed",
        )
    return _Decomposition(trend=trend, seasonal=seasonal, resid=y - trend - seasonal)


def _noise_sd(adjusted: np.ndarray, cycles: float) -> float:
    """The noise's standard deviation, from the median absolute deviation of successive
    differences (a level shift or a slope barely moves it). A seasonal pattern estimated from
    ``cycles`` cycles took 1/cycles of the noise's variance with it; that share is put back."""
    import numpy as np

    steps = np.diff(adjusted)
    mad = float(np.median(np.abs(steps - np.median(steps))))
    spread = mad / 0.6745 / math.sqrt(2)
    return spread * math.sqrt(cycles / (cycles - 1)) if cycles > 1 else spread


def _change_points(
    adjusted: np.ndarray, *, noise: float, cycles: float, season: int, most: int, run: Run
) -> tuple[list[int], float]:
    """Where the seasonally adjusted series' line (level and slope) changes, and the noise
    level the search was scaled to.

    Binary segmentation with a penalty of ``_PENALTY_WEIGHT * noise² * log(n)`` per change,
    capped at ``most`` changes. Successive differences understate the noise when it is
    autocorrelated, so the search runs a second time when the remainder of the first
    segmentation shows more (long-run) variance than ``noise`` says.
    """
    import numpy as np
    import ruptures

    count = len(adjusted)
    min_size = max(5, season)
    if most == 0 or noise == 0 or count < 2 * min_size:
        return [], noise
    signal = np.column_stack([adjusted, np.ones(count), np.arange(count, dtype=float)])
    search = ruptures.Binseg(model="linear", min_size=min_size, jump=max(1, count // 1000))
    search.fit(signal)
    ends: list[int] = search.predict(pen=_PENALTY_WEIGHT * noise**2 * math.log(count))
    long_run = math.sqrt(_long_run_variance(adjusted, ends, cycles))
    if long_run > noise:
        noise = long_run
        ends = search.predict(pen=_PENALTY_WEIGHT * noise**2 * math.log(count))
    if len(ends) - 1 > most:
        run.warn(
            f"The penalty admits {len(ends) - 1} change points; the {most} strongest are "
            "reported (max_change_points)."
        )
        ends = search.predict(n_bkps=most)
    return [int(end) for end in ends[:-1]], noise


def _long_run_variance(adjusted: np.ndarray, ends: list[int], cycles: float) -> float:
    """The remainder's variance after a line per segment, times (1 + r) / (1 - r) for its
    lag-1 autocorrelation r (clipped to 0..0.9), put back to the noise scale as
    :func:`_noise_sd` does."""
    import numpy as np

    pieces: list[np.ndarray] = []
    start = 0
    for end in ends:
        segment = adjusted[start:end]
        x = np.arange(len(segment), dtype=float)
        pieces.append(segment - np.polyval(np.polyfit(x, segment, 1), x))
        start = end
    remainder = np.concatenate(pieces)
    free = len(remainder) - 2 * len(pieces)
    if free < 3:
        return 0.0
    variance = float(np.sum(remainder**2)) / free
    r = float(np.sum(remainder[1:] * remainder[:-1]) / np.sum(remainder**2))
    r = min(max(r, 0.0), 0.9)
    share = cycles / (cycles - 1) if cycles > 1 else 1.0
    return variance * share * (1 + r) / (1 - r)


def _elapsed(series: OrderedSeries, time: str) -> tuple[np.ndarray, str]:
    """The times as numbers in the unit the slope is given per."""
    import numpy as np

    if not series.temporal:
        values = series.times.to_numpy(dtype=float)
        return values - values[0], time
    days = (series.times - series.times.iloc[0]).dt.total_seconds().to_numpy() / 86_400
    step = float(np.median(np.diff(days))) if len(days) > 1 else 1.0
    name, length = min(_UNITS, key=lambda unit: abs(math.log(max(step, 1e-9) / unit[1])))
    return days / length, name


@dataclass(frozen=True, slots=True)
class _SlopeFit:
    slope: float
    low: float
    high: float
    p_value: float
    #: Level change at each change point.
    shifts: list[float]


def _slope_fit(y: np.ndarray, x: np.ndarray, breaks: list[int], season: int) -> _SlopeFit:
    """OLS of the series on time with one level per segment and, for a seasonal series, one
    effect per position in the cycle (so the season's estimation error counts in the slope's
    interval); Newey-West errors (lags: the usual 4 (n/100)^(2/9)) with a t reference."""
    import numpy as np
    import statsmodels.api as sm

    count = len(y)
    rows = np.arange(count)
    segment = np.searchsorted(np.asarray(breaks, dtype=int), rows, side="right")
    levels = (segment[:, None] == np.arange(len(breaks) + 1)[None, :]).astype(float)
    cycle = (rows[:, None] % season == np.arange(1, season)[None, :]).astype(float)
    design = np.column_stack([x, levels, cycle])
    lags = max(1, math.floor(4 * (count / 100) ** (2 / 9)))
    fit = sm.OLS(y, design).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True
    )
    low, high = fit.conf_int(alpha=1 - _CONFIDENCE)[0]
    params = np.asarray(fit.params)
    values = [float(params[0]), float(low), float(high), float(fit.pvalues[0])]
    if not all(math.isfinite(value) for value in values):
        raise UnprocessableEntityError(
            "The slope could not be estimated (the fit is degenerate).", code="slope_failed"
        )
    shifts = [float(params[k + 2] - params[k + 1]) for k in range(len(breaks))]
    return _SlopeFit(
        slope=values[0], low=values[1], high=values[2], p_value=values[3], shifts=shifts
    )


def _summary(result: TrendResult, params: TrendParams) -> str:
    low, high = result.slope_ci
    season = (
        f"STL separated a season of {result.season_length} values"
        if result.season_length > 1
        else "No season was separated (LOWESS trend)"
    )
    if result.change_points:
        shifts = "; ".join(
            f"at {point.time} (row {point.index}) the level moves by {point.shift:+.4g}"
            for point in result.change_points
        )
        changes = f"{len(result.change_points)} change point(s): {shifts}."
    else:
        changes = "No change point stands out of the noise."
    return (
        f"{season}. '{params.target}' changes by {result.slope:+.4g} per {result.slope_per} "
        f"(95% CI [{low:.4g}, {high:.4g}], p = {result.slope_p_value:.3g}). {changes} "
        f"Noise standard deviation about {result.noise_sd:.4g}."
    )


def _chart(series: OrderedSeries, result: TrendResult, params: TrendParams) -> dict[str, Any]:
    kind: charts.FieldType = "temporal" if series.temporal else "quantitative"
    x = charts.field("time", kind, title=params.time)
    lines = [
        {"time": component.time, "value": float(value), "series": params.target}
        for component, value in zip(result.components, series.values, strict=True)
    ] + [
        {"time": component.time, "value": component.trend, "series": "trend"}
        for component in result.components
    ]
    views = [
        charts.line(
            lines,
            x,
            charts.field("value", "quantitative", title=params.target),
            title="series and trend",
            color=charts.field("series", "nominal", title=None),
        )
    ]
    if result.change_points:
        views.append(
            charts.chart(
                [{"time": point.time} for point in result.change_points],
                {"type": "rule", "strokeDash": [4, 4], "color": "firebrick"},
                {"x": x},
                title="change points",
            )
        )
    return charts.layer(*views, title=f"{params.target}: trend and change points")


def _example_data() -> list[dict[str, Cell]]:
    """Six years of monthly values: a slow rise, a yearly cycle, noise, and a level shift of
    +6 from month 40 on."""
    rng = random.Random(0)
    rows: list[dict[str, Cell]] = []
    for month in range(72):
        when = dt.date(2018 + month // 12, month % 12 + 1, 1)
        value = 50 + 0.2 * month + 4 * math.sin(2 * math.pi * month / 12) + rng.gauss(0, 1)
        rows.append({"month": when.isoformat(), "level": round(value + 6 * (month >= 40), 3)})
    return rows


METHOD: Method[TrendParams, TrendResult] = Method(
    name="trend",
    summary="Split a series into trend and season (STL), estimate its slope and find level shifts.",
    params=TrendParams,
    result=TrendResult,
    compute=compute,
    example=MethodExample(data=_example_data(), params=TrendParams(time="month", target="level")),
    numeric_param="target",
    min_rows=_MIN_ROWS,
)
