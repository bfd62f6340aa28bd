"""chronos: forecast a series, choosing among ETS, ARIMA and Theta by a rolling-origin backtest.

Each candidate (statsforecast's ``AutoETS``, ``AutoARIMA`` and ``AutoTheta``) forecasts the
last ``horizon`` values from up to three origins; the one with the lowest mean absolute scaled
error (MASE, scaled by the in-sample seasonal naive error) is refit on the whole series and
forecasts ``horizon`` steps with a prediction interval. The seasonal naive forecast on the same
folds is the yardstick the backtest reports beside it.

The module also holds the time-series helpers the trend engine shares: the ordered series, the
season length a time step implies, and the times that follow the last one.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "ChronosParams",
    "ChronosResult",
    "OrderedSeries",
    "infer_season_length",
    "ordered_series",
    "time_value",
]

#: Backtest origins at most (each forecasts ``horizon`` values).
_FOLDS = 3
#: Fewest values a model is fit on, whatever the season.
_MIN_TRAIN = 10
_CANDIDATES = ("AutoETS", "AutoARIMA", "AutoTheta")
_DAY = 86_400.0


class ChronosParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with the times (ISO 8601 text, or numbers); rows are ordered by it.
    time: str
    #: Numeric column to forecast.
    target: str
    #: How many steps ahead to forecast (one step: the series' time step).
    horizon: Annotated[int, msgspec.Meta(ge=1, le=500)]
    #: Values per seasonal cycle (12 for monthly data with a yearly cycle; 1: no season).
    #: Absent: inferred from the time step (hourly 24, daily 7, monthly 12, quarterly 4,
    #: otherwise 1).
    season_length: Annotated[int, msgspec.Meta(ge=1, le=400)] | None = None
    #: Prediction interval level, in percent.
    level: Annotated[int, msgspec.Meta(ge=50, le=99)] = 95


class ForecastPoint(msgspec.Struct, kw_only=True):
    #: ISO 8601 text for a datetime series, a number for a numeric time.
    time: str | float
    value: float
    lower: float
    upper: float


class Backtest(msgspec.Struct, kw_only=True):
    #: The chosen model's mean absolute scaled error over the folds.
    mase: float
    #: The chosen model's symmetric mean absolute percentage error (0..200).
    smape: float
    #: The seasonal naive forecast's MASE on the same folds (above 1 would be odd: the scale
    #: is the in-sample seasonal naive error).
    naive_mase: float
    #: The seasonal naive forecast's sMAPE on the same folds.
    naive_smape: float
    #: How many origins the backtest forecast from.
    folds: int
    #: Values forecast from each origin (the horizon).
    horizon: int


class Candidate(msgspec.Struct, kw_only=True):
    model: str
    #: Mean MASE over the folds.
    mase: float
    smape: float


class ChronosResult(msgspec.Struct, kw_only=True):
    #: The model chosen by the backtest and refit on the whole series.
    model: str
    season_length: int
    #: Interval level in percent.
    level: int
    forecast: list[ForecastPoint]
    backtest: Backtest
    #: Every model that was scored, best first.
    candidates: list[Candidate]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderedSeries:
    """A series ordered by time, inner gaps interpolated."""

    #: Datetimes, or floats.
    times: pd.Series
    values: np.ndarray
    #: Whether the times are datetimes (else numbers).
    temporal: bool


# --- shared time-series helpers -----------------------------------------------------------


def ordered_series(frame: pd.DataFrame, time: str, target: str, run: Run) -> OrderedSeries:
    """The target ordered by time; leading and trailing missing values dropped and inner ones
    interpolated linearly (with a warning)."""
    import pandas as pd

    times = columns.time_column(frame, time, "time")
    values = columns.numeric(frame, target, "target")
    order = times.sort_values(kind="stable").index
    times = times.loc[order].reset_index(drop=True)
    values = values.loc[order].reset_index(drop=True)
    present = values.notna().to_numpy()
    first, last = int(present.argmax()), len(present) - int(present[::-1].argmax())
    if first > 0 or last < len(values):
        run.warn(
            f"{first + len(values) - last} leading or trailing rows without a '{target}' value "
            "were left out."
        )
        times = times.iloc[first:last].reset_index(drop=True)
        values = values.iloc[first:last].reset_index(drop=True)
    gaps = int(values.isna().sum())
    if gaps:
        run.warn(f"{gaps} missing '{target}' values were interpolated linearly.")
        values = values.interpolate(method="linear")
    temporal = bool(pd.api.types.is_datetime64_any_dtype(times))
    return OrderedSeries(times=times, values=values.to_numpy(dtype=float), temporal=temporal)


def median_step_days(times: pd.Series) -> float:
    """The median time step in days (datetimes only)."""
    steps = times.diff().dropna().dt.total_seconds()
    return float(steps.median()) / _DAY if len(steps) else 0.0


def infer_season_length(times: pd.Series, temporal: bool) -> int:
    """The cycle a datetime step implies: hourly 24, daily 7, monthly 12, quarterly 4;
    numeric times and any other step: 1."""
    if not temporal or len(times) < 3:
        return 1
    days = median_step_days(times)
    cycles = ((1 / 24, 24), (1.0, 7), (30.4, 12), (91.3, 4))
    for step, season in cycles:
        if abs(days - step) <= 0.1 * step:
            return season
    return 1


def time_value(value: Any) -> str | float:
    """A time as a result carries it: ISO 8601 text for a datetime, a float for a number."""
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return float(value)


def future_times(times: pd.Series, temporal: bool, steps: int, run: Run) -> list[str | float]:
    """The ``steps`` times after the last one, at the series' own frequency (or its median
    step when it has none)."""
    import pandas as pd

    if temporal:
        freq = pd.infer_freq(times) if len(times) >= 3 else None
        if freq is not None:
            ahead = pd.date_range(times.iloc[-1], periods=steps + 1, freq=freq)[1:]
        else:
            step = times.diff().dropna().median()
            run.warn(f"The times are not evenly spaced; forecast times step by {step}.")
            ahead = pd.DatetimeIndex([times.iloc[-1] + step * (k + 1) for k in range(steps)])
        return [time_value(value) for value in ahead]
    step = float(times.diff().dropna().median())
    last = float(times.iloc[-1])
    return [last + step * (k + 1) for k in range(steps)]


# --- backtest ------------------------------------------------------------------------------


def _min_train(season_length: int) -> int:
    return max(2 * season_length, _MIN_TRAIN)


def _season_for(count: int, params: ChronosParams, series: OrderedSeries, run: Run) -> int:
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
            f"A forecast {params.horizon} steps ahead with season_length {season} needs at "
            f"least max(2 * season_length, {_MIN_TRAIN}) + horizon = {needed} values; the "
            f"series has {count}.",
            param="params.horizon",
            code="series_too_short",
        )
    return season


def _model(name: str, season_length: int) -> Any:
    from statsforecast import models

    if name == "AutoARIMA":
        # Seasonal AR and MA orders up to 1 and p + q + P + Q up to 4: the full default
        # search takes about four times as long (each backtest fold refits it) and rarely
        # forecasts better.
        return models.AutoARIMA(season_length=season_length, max_P=1, max_Q=1, max_order=4)
    return getattr(models, name)(season_length=season_length)


def _fit_forecast(
    name: str, y: np.ndarray, horizon: int, season_length: int, level: int | None
) -> dict[str, Any]:
    """statsforecast's forecast of ``horizon`` values after ``y``."""
    import warnings

    with warnings.catch_warnings():
        # ARIMA's optimiser reports "possible convergence problem" for candidate orders it
        # then scores and usually discards; numerical noise of the same kind comes as
        # RuntimeWarnings.
        warnings.filterwarnings("ignore", category=UserWarning, module="statsforecast")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="statsforecast")
        forecast: dict[str, Any] = _model(name, season_length).forecast(
            y=y, h=horizon, level=None if level is None else [level]
        )
    return forecast


def _seasonal_naive(y: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    import numpy as np

    last = y[-season_length:]
    return np.array([last[k % season_length] for k in range(horizon)], dtype=float)


def _scale(y: np.ndarray, season_length: int) -> float:
    """The in-sample seasonal naive mean absolute error: MASE's denominator."""
    import numpy as np

    return float(np.mean(np.abs(y[season_length:] - y[:-season_length])))


def _smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    import numpy as np

    denominator = np.abs(actual) + np.abs(forecast)
    safe = np.where(denominator == 0, 1.0, denominator)
    terms = np.where(denominator == 0, 0.0, 2 * np.abs(actual - forecast) / safe)
    return float(100 * np.mean(terms))


class _Scores(msgspec.Struct):
    mase: list[float] = msgspec.field(default_factory=list)
    smape: list[float] = msgspec.field(default_factory=list)


def _origins(count: int, horizon: int, season_length: int) -> list[int]:
    """Where each fold's training data end (the last fold ends ``horizon`` before the end)."""
    folds = min(_FOLDS, (count - _min_train(season_length)) // horizon)
    return [count - (folds - k) * horizon for k in range(folds)]


def _backtest(
    y: np.ndarray, horizon: int, season_length: int, run: Run
) -> tuple[dict[str, _Scores], _Scores]:
    """Each candidate's and the seasonal naive forecast's scores per fold."""
    import numpy as np

    origins = _origins(len(y), horizon, season_length)
    scores = {name: _Scores() for name in _CANDIDATES}
    naive = _Scores()
    failed: dict[str, str] = {}
    steps = len(origins) * len(_CANDIDATES)
    for fold, end in enumerate(origins):
        train, actual = y[:end], y[end : end + horizon]
        scale = _scale(train, season_length)
        if scale == 0:
            raise UnprocessableEntityError(
                "The series repeats itself exactly every season before a backtest origin, so "
                "forecast errors cannot be scaled (MASE is undefined).",
                code="no_error_scale",
            )
        guess = _seasonal_naive(train, horizon, season_length)
        naive.mase.append(float(np.mean(np.abs(actual - guess))) / scale)
        naive.smape.append(_smape(actual, guess))
        for index, name in enumerate(_CANDIDATES):
            run.progress(
                0.05 + 0.75 * (fold * len(_CANDIDATES) + index) / steps,
                f"backtest fold {fold + 1}/{len(origins)}: {name}",
            )
            if name in failed:
                continue
            try:
                mean = np.asarray(_fit_forecast(name, train, horizon, season_length, None)["mean"])
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
                failed[name] = str(error)[:120]
                continue
            if not np.all(np.isfinite(mean)):
                failed[name] = "non-finite forecast"
                continue
            scores[name].mase.append(float(np.mean(np.abs(actual - mean))) / scale)
            scores[name].smape.append(_smape(actual, mean))
    for name, why in failed.items():
        run.warn(f"{name} could not be fit in the backtest ({why}); it was not considered.")
        del scores[name]
    return scores, naive


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


# --- the computation -----------------------------------------------------------------------


def compute(frame: pd.DataFrame, params: ChronosParams, run: Run) -> Outcome[ChronosResult]:
    series = ordered_series(frame, params.time, params.target, run)
    y: np.ndarray = series.values
    season = _season_for(len(y), params, series, run)
    run.progress(0.05, "backtesting ETS, ARIMA and Theta")
    scores, naive = _backtest(y, params.horizon, season, run)
    if not scores:
        raise UnprocessableEntityError(
            "None of ETS, ARIMA and Theta could be fit to the series.", code="no_model_fits"
        )
    candidates = sorted(
        (
            Candidate(model=name, mase=_mean(score.mase), smape=_mean(score.smape))
            for name, score in scores.items()
        ),
        key=lambda candidate: candidate.mase,
    )
    best = candidates[0]
    run.progress(0.85, f"refitting {best.model} on the whole series")
    forecast = _final_forecast(best.model, y, params, season)
    times = future_times(series.times, series.temporal, params.horizon, run)
    points = [
        ForecastPoint(time=time, value=float(mean), lower=float(low), upper=float(high))
        for time, mean, low, high in zip(times, *forecast, strict=True)
    ]
    backtest = Backtest(
        mase=best.mase,
        smape=best.smape,
        naive_mase=_mean(naive.mase),
        naive_smape=_mean(naive.smape),
        folds=len(naive.mase),
        horizon=params.horizon,
    )
    result = ChronosResult(
        model=best.model,
        season_length=season,
        level=params.level,
        forecast=points,
        backtest=backtest,
        candidates=candidates,
    )
    run.progress(0.95, "drawing the forecast")
    return Outcome(
        result=result,
        summary=_summary(result, params),
        charts=[_chart(series, points, params)],
    )


def _final_forecast(
    name: str, y: np.ndarray, params: ChronosParams, season: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chosen model refit on all values: mean, lower and upper bound."""
    import numpy as np

    try:
        out = _fit_forecast(name, y, params.horizon, season, params.level)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        raise UnprocessableEntityError(
            f"{name} could not be refit on the whole series ({str(error)[:120]}).",
            code="fit_failed",
        ) from None
    mean = np.asarray(out["mean"], dtype=float)
    lower = np.asarray(out[f"lo-{params.level}"], dtype=float)
    upper = np.asarray(out[f"hi-{params.level}"], dtype=float)
    if not (np.isfinite(mean).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
        raise UnprocessableEntityError(
            f"{name} refit on the whole series gave a non-finite forecast.", code="fit_failed"
        )
    return mean, lower, upper


def _summary(result: ChronosResult, params: ChronosParams) -> str:
    backtest = result.backtest
    others = ", ".join(f"{c.model} {c.mase:.3f}" for c in result.candidates[1:])
    first, last = result.forecast[0], result.forecast[-1]
    verdict = "beats" if backtest.mase < backtest.naive_mase else "does not beat"
    return (
        f"{result.model} was chosen (season length {result.season_length}) by a backtest over "
        f"{backtest.folds} folds of {backtest.horizon} steps: MASE {backtest.mase:.3f}, sMAPE "
        f"{backtest.smape:.1f}%, which {verdict} the seasonal naive forecast's MASE "
        f"{backtest.naive_mase:.3f}"
        + (f" (other models: {others})." if others else ".")
        + f" Forecast of '{params.target}' {params.horizon} steps ahead: {first.value:.4g} at "
        f"{first.time} to {last.value:.4g} at {last.time}, with a {result.level}% interval "
        f"of [{last.lower:.4g}, {last.upper:.4g}] at the last step."
    )


def _chart(
    series: OrderedSeries, points: list[ForecastPoint], params: ChronosParams
) -> dict[str, Any]:
    kind: charts.FieldType = "temporal" if series.temporal else "quantitative"
    history = [
        {"time": time_value(time), "value": float(value), "series": "history"}
        for time, value in zip(series.times, series.values, strict=True)
    ]
    ahead = [{"time": p.time, "value": p.value, "series": "forecast"} for p in points]
    band = charts.chart(
        [{"time": p.time, "lower": p.lower, "upper": p.upper} for p in points],
        {"type": "area", "opacity": 0.25},
        {
            "x": charts.field("time", kind, title=params.time),
            "y": charts.field("lower", "quantitative", title=params.target),
            "y2": {"field": "upper"},
        },
        title="interval",
    )
    lines = charts.line(
        history + ahead,
        charts.field("time", kind, title=params.time),
        charts.field("value", "quantitative", title=params.target),
        title="series",
        color=charts.field("series", "nominal", title=None),
    )
    return charts.layer(
        band, lines, title=f"{params.target}: history and {params.level}% forecast interval"
    )


# --- the declaration -----------------------------------------------------------------------


def _example_data() -> list[dict[str, Cell]]:
    """Four years of monthly values: a rising trend, a yearly cycle and noise."""
    rng = random.Random(0)
    rows: list[dict[str, Cell]] = []
    for month in range(48):
        when = dt.date(2019 + month // 12, month % 12 + 1, 1)
        season = 8 * math.sin(2 * math.pi * month / 12)
        rows.append(
            {
                "month": when.isoformat(),
                "sales": round(100 + 0.6 * month + season + rng.gauss(0, 1.5), 2),
            }
        )
    return rows


METHOD: Method[ChronosParams, ChronosResult] = Method(
    name="chronos",
    summary="Forecast a series with ETS, ARIMA or Theta, chosen by a rolling-origin backtest.",
    params=ChronosParams,
    result=ChronosResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=ChronosParams(time="month", target="sales", horizon=12),
    ),
    numeric_param="target",
    min_rows=_MIN_TRAIN + 1,
)
