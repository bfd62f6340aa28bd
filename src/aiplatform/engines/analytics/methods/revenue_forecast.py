"""revenue_forecast: a revenue forecast with prediction intervals, growth rates and what-ifs.

Exponential smoothing models (statsmodels ``ETSModel``: simple, Holt's linear and damped
trends, and Holt-Winters with an additive or, for positive revenue, a multiplicative season)
are scored as the chronos engine scores its candidates: each forecasts the last ``horizon``
values from up to three origins, and the one with the lowest mean absolute scaled error is
refit on the whole series. Its prediction interval is analytic for additive-error models and
simulated (seeded by the run's seed) for multiplicative ones.

Growth is reported as it is read in finance: the last period against the one before, the last
year's total against the year before (when a year is a whole number of periods), the trend's
growth (a log-linear fit with one effect per position in the season), and the growth the
forecast implies (its values against those a year, or a season, earlier). A what-if adds an
extra growth per year to the forecast, compounded period by period.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.engines.analytics.methods.chronos import (
    Backtest,
    Candidate,
    OrderedSeries,
    _min_train,
    _origins,
    _scale,
    _seasonal_naive,
    _smape,
    future_times,
    infer_season_length,
    median_step_days,
    ordered_series,
    time_value,
)
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "RevenueForecastParams", "RevenueForecastResult"]

#: Fewest values the engine forecasts from (as chronos).
_MIN_ROWS = 11
#: Paths simulated for the interval of a multiplicative model.
_SIMULATIONS = 2_000
_YEAR_DAYS = 365.2425
#: Time steps (in days) that make a whole number of periods a year.
_CADENCES = ((1.0, 365), (7.0, 52), (30.4, 12), (91.3, 4), (_YEAR_DAYS, 1))


class RevenueForecastParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with the times (ISO 8601 text, or numbers); rows are ordered by it.
    time: str
    #: Numeric column with the revenue per period.
    revenue: str
    #: How many periods ahead to forecast.
    horizon: Annotated[int, msgspec.Meta(ge=1, le=500)]
    #: Values per seasonal cycle (12 for monthly revenue with a yearly cycle; 1: no season).
    #: Absent: inferred from the time step (hourly 24, daily 7, monthly 12, quarterly 4,
    #: otherwise 1).
    season_length: Annotated[int, msgspec.Meta(ge=1, le=400)] | None = None
    #: Periods per year, for year-over-year growth, growth per year and the what-ifs. Absent:
    #: inferred from the time step (daily 365, weekly 52, monthly 12, quarterly 4, yearly 1,
    #: else 365.2425 days over the step); numeric times have none unless it is given.
    periods_per_year: Annotated[float, msgspec.Meta(gt=0.0, le=1_000_000.0)] | None = None
    #: Prediction interval level, in percent.
    level: Annotated[int, msgspec.Meta(ge=50, le=99)] = 95
    #: What-ifs: extra growth per year added to the forecast (0.05: five points more a year,
    #: compounded each period), one scenario path per value.
    growth_scenarios: Annotated[
        list[Annotated[float, msgspec.Meta(gt=-1.0, le=10.0)]], msgspec.Meta(max_length=20)
    ] = msgspec.field(default_factory=list)


class RevenuePoint(msgspec.Struct, kw_only=True):
    #: ISO 8601 text for a datetime series, a number for a numeric time.
    time: str | float
    value: float
    lower: float
    upper: float
    #: Growth against the value a year earlier (history or forecast); None without a whole
    #: number of periods per year or a positive value to compare with.
    year_over_year: float | None


class GrowthPoint(msgspec.Struct, kw_only=True):
    time: str | float
    value: float
    #: Growth against the period before (None for the first, or after a value <= 0).
    period_over_period: float | None
    #: Growth against the period a year before (None where there is none).
    year_over_year: float | None


class RevenueGrowth(msgspec.Struct, kw_only=True):
    #: The last period against the one before.
    period_over_period: float | None
    #: The total of the last year against the year before (None without two years of
    #: values or a whole number of periods per year).
    year_over_year: float | None
    #: Growth per period of the trend: a log-linear fit with one effect per position in the
    #: season (None when some revenue is zero or negative).
    trend_per_period: float | None
    #: The same, compounded to a year (None without periods per year).
    trend_per_year: float | None
    #: The growth per period the forecast implies: its total against the total of the values
    #: ``compared_lag`` periods before each forecast period, taken to the 1/lag power.
    forecast_per_period: float | None
    #: The same, compounded to a year.
    forecast_per_year: float | None
    #: Periods between the values the forecast's growth compares: a year when a year is a
    #: whole number of periods and the series is that long, else the season length.
    compared_lag: int


class RevenueScenario(msgspec.Struct, kw_only=True):
    #: The extra growth per year.
    extra_growth: float
    #: The forecast times (1 + extra_growth) ** (periods ahead / periods per year).
    values: list[float]
    total: float
    #: The growth per year the scenario path implies (as ``growth.forecast_per_year``).
    growth_per_year: float | None


class RevenueForecastResult(msgspec.Struct, kw_only=True):
    #: The model chosen by the backtest and refit on the whole series, in ETS notation
    #: (error, trend, season: N none, A additive, Ad additive damped, M multiplicative).
    model: str
    season_length: int
    periods_per_year: float | None
    #: Interval level in percent.
    level: int
    forecast: list[RevenuePoint]
    #: The sum of the forecast values.
    forecast_total: float
    growth: RevenueGrowth
    #: Each period of the history with its growth rates.
    history: list[GrowthPoint]
    #: One per ``growth_scenarios`` value, in the order given.
    scenarios: list[RevenueScenario]
    backtest: Backtest
    #: Every model that was scored, best first.
    candidates: list[Candidate]


@dataclass(frozen=True, slots=True)
class _Spec:
    """One exponential smoothing model: error, trend and season kinds."""

    error: str
    trend: str | None
    damped: bool
    seasonal: str | None

    @property
    def name(self) -> str:
        trend = "N" if self.trend is None else self.trend[0].upper() + ("d" if self.damped else "")
        season = "N" if self.seasonal is None else self.seasonal[0].upper()
        return f"ETS({self.error[0].upper()},{trend},{season})"


def _candidates(season: int, positive: bool) -> list[_Spec]:
    """Holt-Winters with a plain or damped trend for a seasonal series, simple and Holt
    smoothing otherwise; multiplicative errors, trends (growth at a rate rather than by an
    amount) and seasons only for positive revenue."""
    seasonal = "add" if season > 1 else None
    specs = [_Spec("add", "add", damped, seasonal) for damped in (False, True)]
    if season == 1:
        specs.insert(0, _Spec("add", None, False, None))
    if positive:
        seasonal = "mul" if season > 1 else None
        specs += [
            _Spec("mul", trend, damped, seasonal)
            for trend in ("add", "mul")
            for damped in (False, True)
        ]
    return specs


@dataclass(frozen=True, slots=True)
class _Fit:
    results: Any
    converged: bool


def _fit(spec: _Spec, y: np.ndarray, season: int) -> _Fit:
    """``spec`` fitted to ``y`` by maximum likelihood (statsmodels' warnings kept in)."""
    import pandas as pd
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A pandas series: statsmodels' prediction results need an index.
        model = ETSModel(
            pd.Series(y),
            error=spec.error,
            trend=spec.trend,
            damped_trend=spec.damped,
            seasonal=spec.seasonal,
            seasonal_periods=season if spec.seasonal is not None else None,
            # Initial states from the first cycles (Hyndman et al.) rather than estimated
            # with the smoothing weights: a fraction of the optimiser's work, and the series
            # always holds the two cycles and ten values it needs.
            initialization_method="heuristic",
        )
        results = model.fit(disp=False)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return _Fit(results=results, converged=converged)


_FIT_ERRORS: tuple[type[Exception], ...] = (ValueError, ArithmeticError)


# --- the series and its calendar -----------------------------------------------------------


def _series(frame: pd.DataFrame, params: RevenueForecastParams, run: Run) -> OrderedSeries:
    """The revenue in time order; roles checked first, each error naming its params field."""
    columns.time_column(frame, params.time, "time")
    columns.numeric(frame, params.revenue, "revenue")
    return ordered_series(frame, params.time, params.revenue, run)


def _season_for(count: int, params: RevenueForecastParams, series: OrderedSeries, run: Run) -> int:
    """The season length to use; a 400 naming the rule when the series is too short."""
    season = params.season_length
    if season is None:
        season = infer_season_length(series.times, series.temporal)
        if season > 1 and count < _min_train(season) + params.horizon:
            run.warn(
                f"The series is too short for a season of {season} "
                f"({_min_train(season) + params.horizon} values needed); no season is modelled."
            )
            season = 1
    needed = _min_train(season) + params.horizon
    if count < needed:
        raise InvalidRequestError(
            f"A forecast {params.horizon} periods ahead with season_length {season} needs at "
            f"least max(2 * season_length, 10) + horizon = {needed} values; the series has "
            f"{count}.",
            param="params.horizon",
            code="series_too_short",
        )
    return season


def _periods_per_year(params: RevenueForecastParams, series: OrderedSeries) -> float | None:
    """Given, or read from a calendar step: a whole number for the usual cadences."""
    if params.periods_per_year is not None:
        return params.periods_per_year
    if not series.temporal or len(series.times) < 2:
        return None
    days = median_step_days(series.times)
    if days <= 0:
        return None
    for step, count in _CADENCES:
        if abs(days - step) <= 0.1 * step:
            return float(count)
    return _YEAR_DAYS / days


def _year_lag(periods_per_year: float | None) -> int | None:
    """Periods in a year when that is a whole number of two or more."""
    if periods_per_year is None or periods_per_year < 2:
        return None
    whole = round(periods_per_year)
    return whole if abs(periods_per_year - whole) < 1e-9 else None


# --- backtest ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Scores:
    mase: list[float]
    smape: list[float]


def _backtest(
    y: np.ndarray, horizon: int, season: int, specs: list[_Spec], run: Run
) -> tuple[dict[str, _Scores], _Scores]:
    """Each candidate's and the seasonal naive forecast's scores per fold (as chronos)."""
    import numpy as np

    origins = _origins(len(y), horizon, season)
    scores = {spec.name: _Scores([], []) for spec in specs}
    naive = _Scores([], [])
    failed: dict[str, str] = {}
    steps = len(origins) * len(specs)
    for fold, end in enumerate(origins):
        train, actual = y[:end], y[end : end + horizon]
        scale = _scale(train, season)
        if scale == 0:
            raise UnprocessableEntityError(
                "The revenue repeats itself exactly every season before a backtest origin, so "
                "forecast errors cannot be scaled (MASE is undefined).",
                code="no_error_scale",
            )
        guess = _seasonal_naive(train, horizon, season)
        naive.mase.append(float(np.mean(np.abs(actual - guess))) / scale)
        naive.smape.append(_smape(actual, guess))
        for index, spec in enumerate(specs):
            run.progress(
                0.05 + 0.7 * (fold * len(specs) + index) / steps,
                f"backtest fold {fold + 1}/{len(origins)}: {spec.name}",
            )
            if spec.name in failed:
                continue
            try:
                mean = np.asarray(_fit(spec, train, season).results.forecast(horizon), dtype=float)
            except _FIT_ERRORS as error:
                failed[spec.name] = str(error)[:120]
                continue
            if not np.isfinite(mean).all():
                failed[spec.name] = "non-finite forecast"
                continue
            scores[spec.name].mase.append(float(np.mean(np.abs(actual - mean))) / scale)
            scores[spec.name].smape.append(_smape(actual, mean))
    for name, why in failed.items():
        run.warn(f"{name} could not be fit in the backtest ({why}); it was not considered.")
        del scores[name]
    return scores, naive


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


@dataclass(frozen=True, slots=True)
class _Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _final_forecast(
    spec: _Spec, y: np.ndarray, params: RevenueForecastParams, season: int, run: Run
) -> _Forecast:
    """The chosen model refit on all values: mean and interval (simulated, seeded, for a
    multiplicative model)."""
    import numpy as np

    try:
        fit = _fit(spec, y, season)
        prediction = fit.results.get_prediction(
            start=len(y),
            end=len(y) + params.horizon - 1,
            simulate_repetitions=_SIMULATIONS,
            rng=np.random.default_rng(run.seed),
        )
        frame = prediction.summary_frame(alpha=1 - params.level / 100)
    except _FIT_ERRORS as error:
        raise UnprocessableEntityError(
            f"{spec.name} could not be refit on the whole series ({str(error)[:120]}).",
            code="fit_failed",
        ) from None
    if not fit.converged:
        run.warn(f"The optimiser fitting {spec.name} did not fully converge.")
    forecast = _Forecast(
        mean=frame["mean"].to_numpy(dtype=float),
        lower=frame["pi_lower"].to_numpy(dtype=float),
        upper=frame["pi_upper"].to_numpy(dtype=float),
    )
    if not all(np.isfinite(part).all() for part in (forecast.mean, forecast.lower, forecast.upper)):
        raise UnprocessableEntityError(
            f"{spec.name} refit on the whole series gave a non-finite forecast.",
            code="fit_failed",
        )
    return forecast


# --- growth --------------------------------------------------------------------------------


def _growth(new: float, old: float) -> float | None:
    """new / old - 1, when old is positive."""
    return float(new / old - 1) if old > 0 else None


def _lagged_growth(values: np.ndarray, lag: int | None) -> list[float | None]:
    """Each value's growth against the one ``lag`` positions before."""
    if lag is None:
        return [None] * len(values)
    return [
        _growth(float(values[k]), float(values[k - lag])) if k >= lag else None
        for k in range(len(values))
    ]


def _trend_growth(y: np.ndarray, season: int) -> float | None:
    """Growth per period of a log-linear fit with one effect per position in the season."""
    import numpy as np

    if (y <= 0).any():
        return None
    rows = np.arange(len(y))
    cycle = (rows[:, None] % season == np.arange(1, season)[None, :]).astype(float)
    design = np.column_stack([np.ones(len(y)), rows.astype(float), cycle])
    coefficients = np.linalg.lstsq(design, np.log(y), rcond=None)[0]
    return float(math.expm1(float(coefficients[1])))


def _implied_ratio(history: np.ndarray, path: np.ndarray, lag: int) -> float | None:
    """The path's total against the total of the values ``lag`` periods before each of its
    periods (history, then the path itself)."""
    import numpy as np

    combined = np.concatenate([history, path])
    start = len(history) - lag
    base = float(combined[start : start + len(path)].sum())
    total = float(path.sum())
    if base <= 0 or total <= 0:
        return None
    return total / base


def _per(ratio: float | None, periods: float | None) -> float | None:
    """A growth ratio over ``periods`` periods (or years) as growth per period (or year)."""
    if ratio is None or periods is None:
        return None
    return float(ratio ** (1 / periods) - 1)


def _compared_lag(count: int, season: int, year: int | None) -> int:
    return year if year is not None and count >= year else season


def _growth_summary(
    y: np.ndarray,
    forecast: np.ndarray,
    season: int,
    periods_per_year: float | None,
) -> RevenueGrowth:
    year = _year_lag(periods_per_year)
    lag = _compared_lag(len(y), season, year)
    trend = _trend_growth(y, season)
    ratio = _implied_ratio(y, forecast, lag)
    yearly = None
    if year is not None and len(y) >= 2 * year:
        yearly = _growth(float(y[-year:].sum()), float(y[-2 * year : -year].sum()))
    return RevenueGrowth(
        period_over_period=_growth(float(y[-1]), float(y[-2])),
        year_over_year=yearly,
        trend_per_period=trend,
        trend_per_year=(
            None
            if trend is None or periods_per_year is None
            else float((1 + trend) ** periods_per_year - 1)
        ),
        forecast_per_period=_per(ratio, lag),
        forecast_per_year=_per(ratio, None if periods_per_year is None else lag / periods_per_year),
        compared_lag=lag,
    )


def _scenarios(
    y: np.ndarray,
    forecast: np.ndarray,
    params: RevenueForecastParams,
    periods_per_year: float | None,
    lag: int,
) -> list[RevenueScenario]:
    """The forecast with each extra growth per year compounded period by period."""
    import numpy as np

    if not params.growth_scenarios or periods_per_year is None:
        return []
    ahead = np.arange(1, len(forecast) + 1, dtype=float)
    made: list[RevenueScenario] = []
    for extra in params.growth_scenarios:
        values = forecast * (1 + extra) ** (ahead / periods_per_year)
        ratio = _implied_ratio(y, values, lag)
        made.append(
            RevenueScenario(
                extra_growth=extra,
                values=[float(value) for value in values],
                total=float(values.sum()),
                growth_per_year=_per(ratio, lag / periods_per_year),
            )
        )
    return made


# --- the computation -----------------------------------------------------------------------


def compute(
    frame: pd.DataFrame, params: RevenueForecastParams, run: Run
) -> Outcome[RevenueForecastResult]:
    import numpy as np

    series = _series(frame, params, run)
    y: np.ndarray = series.values
    season = _season_for(len(y), params, series, run)
    per_year = _periods_per_year(params, series)
    if params.growth_scenarios and per_year is None:
        raise InvalidRequestError(
            "Growth scenarios are per year, and numeric times say nothing of how many periods "
            "make a year; give params.periods_per_year.",
            param="params.periods_per_year",
            code="periods_per_year_unknown",
        )
    specs = _candidates(season, positive=bool((y > 0).all()))
    run.progress(0.05, "backtesting exponential smoothing models")
    scores, naive = _backtest(y, params.horizon, season, specs, run)
    if not scores:
        raise UnprocessableEntityError(
            "None of the exponential smoothing models could be fit to the revenue.",
            code="no_model_fits",
        )
    candidates = sorted(
        (
            Candidate(model=name, mase=_mean(score.mase), smape=_mean(score.smape))
            for name, score in scores.items()
        ),
        key=lambda candidate: candidate.mase,
    )
    best = next(spec for spec in specs if spec.name == candidates[0].model)
    run.progress(0.8, f"refitting {best.name} on the whole series")
    forecast = _final_forecast(best, y, params, season, run)
    run.progress(0.9, "computing growth rates and scenarios")
    growth = _growth_summary(y, forecast.mean, season, per_year)
    year = _year_lag(per_year)
    path = np.concatenate([y, forecast.mean])
    times = future_times(series.times, series.temporal, params.horizon, run)
    yearly = _lagged_growth(path, year)[len(y) :]
    result = RevenueForecastResult(
        model=best.name,
        season_length=season,
        periods_per_year=per_year,
        level=params.level,
        forecast=[
            RevenuePoint(
                time=time, value=float(mean), lower=float(low), upper=float(high), year_over_year=g
            )
            for time, mean, low, high, g in zip(
                times, forecast.mean, forecast.lower, forecast.upper, yearly, strict=True
            )
        ],
        forecast_total=float(forecast.mean.sum()),
        growth=growth,
        history=_history(series, year),
        scenarios=_scenarios(y, forecast.mean, params, per_year, growth.compared_lag),
        backtest=Backtest(
            mase=candidates[0].mase,
            smape=candidates[0].smape,
            naive_mase=_mean(naive.mase),
            naive_smape=_mean(naive.smape),
            folds=len(naive.mase),
            horizon=params.horizon,
        ),
        candidates=candidates,
    )
    run.progress(0.95, "drawing the forecast")
    return Outcome(
        result=result,
        summary=_summary(result, params),
        charts=[_forecast_chart(series, result, params), _growth_chart(result, params)],
    )


def _history(series: OrderedSeries, year: int | None) -> list[GrowthPoint]:
    values = series.values
    return [
        GrowthPoint(
            time=time_value(time), value=float(value), period_over_period=pop, year_over_year=yoy
        )
        for time, value, pop, yoy in zip(
            series.times,
            values,
            _lagged_growth(values, 1),
            _lagged_growth(values, year),
            strict=True,
        )
    ]


def _amount(value: float) -> str:
    """A money amount as people read it: whole units with thousands separators from 1,000
    up, four significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 1_000 else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _summary(result: RevenueForecastResult, params: RevenueForecastParams) -> str:
    backtest, growth = result.backtest, result.growth
    first, last = result.forecast[0], result.forecast[-1]
    verdict = "beats" if backtest.mase < backtest.naive_mase else "does not beat"
    text = (
        f"{result.model} was chosen (season length {result.season_length}) by a backtest over "
        f"{backtest.folds} folds of {backtest.horizon} periods: MASE {backtest.mase:.3f}, which "
        f"{verdict} the seasonal naive forecast's {backtest.naive_mase:.3f}. "
        f"'{params.revenue}' is forecast at {_amount(first.value)} ({first.time}) to "
        f"{_amount(last.value)} ({last.time}), {_amount(result.forecast_total)} in all, with a "
        f"{result.level}% interval from {_amount(last.lower)} to {_amount(last.upper)} at the "
        "last period. Growth: last period "
        f"{_percent(growth.period_over_period)}, last year {_percent(growth.year_over_year)}, "
        f"trend {_percent(growth.trend_per_year)} a year, implied by the forecast "
        f"{_percent(growth.forecast_per_year)} a year."
    )
    if result.scenarios:
        text += (
            " What-ifs: "
            + "; ".join(
                f"{scenario.extra_growth:+.1%} a year gives {_amount(scenario.total)}"
                for scenario in result.scenarios
            )
            + "."
        )
    return text


def _forecast_chart(
    series: OrderedSeries, result: RevenueForecastResult, params: RevenueForecastParams
) -> dict[str, Any]:
    kind: charts.FieldType = "temporal" if series.temporal else "quantitative"
    x = charts.field("time", kind, title=params.time)
    points = result.forecast
    lines = [
        {"time": point.time, "value": point.value, "series": "history"} for point in result.history
    ] + [{"time": point.time, "value": point.value, "series": "forecast"} for point in points]
    for scenario in result.scenarios:
        lines += [
            {"time": point.time, "value": value, "series": f"what-if {scenario.extra_growth:+.1%}"}
            for point, value in zip(points, scenario.values, strict=True)
        ]
    band = charts.chart(
        [{"time": p.time, "lower": p.lower, "upper": p.upper} for p in points],
        {"type": "area", "opacity": 0.25},
        {
            "x": x,
            "y": charts.field("lower", "quantitative", title=params.revenue),
            "y2": {"field": "upper"},
        },
        title="interval",
    )
    drawn = charts.line(
        lines,
        x,
        charts.field("value", "quantitative", title=params.revenue),
        title="revenue",
        color=charts.field("series", "nominal", title=None),
    )
    return charts.layer(
        band, drawn, title=f"{params.revenue}: history, forecast ({result.level}%) and what-ifs"
    )


def _growth_chart(result: RevenueForecastResult, params: RevenueForecastParams) -> dict[str, Any]:
    """Year-over-year growth by period when a year is a whole number of periods, else
    period-over-period growth (history, then forecast)."""
    yearly = _year_lag(result.periods_per_year) is not None
    rows: list[dict[str, Any]] = []
    previous = result.history[-1].value
    for point in result.history:
        growth = point.year_over_year if yearly else point.period_over_period
        rows.append({"time": point.time, "growth": growth, "part": "history"})
    for forecast in result.forecast:
        growth = forecast.year_over_year if yearly else _growth(forecast.value, previous)
        previous = forecast.value
        rows.append({"time": forecast.time, "growth": growth, "part": "forecast"})
    kind: charts.FieldType = "temporal" if isinstance(rows[0]["time"], str) else "quantitative"
    name = "year-over-year" if yearly else "period-over-period"
    return charts.bar(
        [row for row in rows if row["growth"] is not None],
        charts.field("time", kind, title=params.time),
        charts.field("growth", "quantitative", title=f"{name} growth", axis={"format": "%"}),
        title=f"{params.revenue}: {name} growth",
        color=charts.field("part", "nominal", title=None),
    )


# --- the declaration -----------------------------------------------------------------------


def _example_data() -> list[dict[str, Cell]]:
    """Four years of monthly revenue growing 8% a year, with a yearly cycle of +-12% and 2%
    noise."""
    rng = random.Random(0)
    rows: list[dict[str, Cell]] = []
    for month in range(48):
        when = dt.date(2021 + month // 12, month % 12 + 1, 1)
        season = 1 + 0.12 * math.sin(2 * math.pi * (month - 9) / 12)
        value = 50_000 * 1.08 ** (month / 12) * season * math.exp(rng.gauss(0, 0.02))
        rows.append({"month": when.isoformat(), "revenue": round(value, 2)})
    return rows


METHOD: Method[RevenueForecastParams, RevenueForecastResult] = Method(
    name="revenue_forecast",
    summary="Forecast revenue with exponential smoothing, its growth rates and growth what-ifs.",
    params=RevenueForecastParams,
    result=RevenueForecastResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=RevenueForecastParams(
            time="month", revenue="revenue", horizon=12, growth_scenarios=[-0.05, 0.05]
        ),
    ),
    numeric_param="revenue",
    min_rows=_MIN_ROWS,
)
