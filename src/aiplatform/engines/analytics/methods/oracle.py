"""oracle: which series help predict which (Granger causality), with the lag and the evidence.

Each column is tested for a unit root (augmented Dickey-Fuller) and differenced, up to twice,
until it looks stationary; the series are then aligned. For each ordered pair (cause, effect)
the lag is chosen by an information criterion over VAR orders 1..max_lag on the two series,
and the ssr F-test of statsmodels' ``grangercausalitytests`` at that lag asks whether the
cause's past improves on the effect's own past. The p-values are corrected across pairs
(Holm, or Benjamini-Hochberg) before they are compared with ``alpha``.

Granger causality is predictive precedence, not causation: a common driver of both series, or
a lag longer than ``max_lag``, can make or hide it.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "OracleParams", "OracleResult"]

#: Most times a column is differenced to make it stationary.
_MAX_DIFFERENCES = 2
#: ADF p-value under which a column counts as stationary.
_ADF_LEVEL = 0.05
#: Rows needed besides 3 per lag: the rows differencing takes, and a few to spare.
_SPARE_ROWS = 2 * _MAX_DIFFERENCES + 10
#: Fewest rows the engine accepts (max_lag 1).
_MIN_ROWS = 3 + _SPARE_ROWS
#: The smallest p-value the chart draws (-log10 of it: 300).
_P_FLOOR = 1e-300


class Pair(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column whose past may help predict ``effect``.
    cause: str
    #: Column to predict.
    effect: str


class OracleParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric columns (two or more): every ordered pair of them is tested. Give this or
    #: ``pairs``.
    columns: Annotated[list[str], msgspec.Meta(max_length=20)] | None = None
    #: Explicit (cause, effect) pairs to test, instead of every pair of ``columns``.
    pairs: Annotated[list[Pair], msgspec.Meta(min_length=1, max_length=100)] | None = None
    #: Longest lag considered (in rows).
    max_lag: Annotated[int, msgspec.Meta(ge=1, le=24)] = 4
    #: Column to order the rows by (ISO 8601 times or numbers); absent: the rows' own order.
    time: str | None = None
    #: Significance level, after the multiple-testing correction.
    alpha: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.05
    #: Information criterion that picks each pair's lag among VAR orders 1..max_lag.
    criterion: Literal["aic", "bic"] = "aic"
    #: Correction across pairs: Holm (family-wise error) or Benjamini-Hochberg ("fdr_bh",
    #: false discovery rate).
    correction: Literal["holm", "fdr_bh"] = "holm"


class PairResult(msgspec.Struct, kw_only=True):
    cause: str
    effect: str
    #: The lag tested (lags 1..lag of both series), chosen by the criterion.
    lag: int
    #: F statistic of the ssr F-test.
    f_statistic: float
    #: p-value before the correction.
    raw_p_value: float
    #: p-value after the correction across pairs.
    p_value: float
    #: Whether ``p_value`` is below ``alpha``: the cause's past helps predict the effect.
    significant: bool


class OracleResult(msgspec.Struct, kw_only=True):
    #: How many times each column was differenced before testing (0: used as it is).
    differenced: dict[str, int]
    pairs: list[PairResult]
    #: Rows the tests ran on (after missing rows and differencing).
    observations: int
    alpha: float
    correction: str
    criterion: str


@dataclass(frozen=True, slots=True)
class _Tested:
    lag: int
    f_statistic: float
    p_value: float


def compute(frame: pd.DataFrame, params: OracleParams, run: Run) -> Outcome[OracleResult]:
    names, pairs = _roles(frame, params)
    values = columns.numeric_columns(frame, names, "columns" if params.columns else "pairs")
    values = _ordered(frame, values, params, run)
    run.progress(0.1, "checking stationarity")
    stationary, differenced = _make_stationary(values, run)
    run.progress(0.3, "testing pairs")
    tested: list[_Tested] = []
    for index, (cause, effect) in enumerate(pairs):
        run.progress(0.3 + 0.6 * index / len(pairs), f"testing {cause} → {effect}")
        tested.append(_granger(stationary, cause, effect, params))
    run.progress(0.9, "correcting for multiple tests")
    corrected = _correct([test.p_value for test in tested], params)
    result = OracleResult(
        differenced=differenced,
        pairs=[
            PairResult(
                cause=cause,
                effect=effect,
                lag=test.lag,
                f_statistic=test.f_statistic,
                raw_p_value=test.p_value,
                p_value=p_value,
                significant=p_value < params.alpha,
            )
            for (cause, effect), test, p_value in zip(pairs, tested, corrected, strict=True)
        ],
        observations=len(stationary),
        alpha=params.alpha,
        correction=params.correction,
        criterion=params.criterion,
    )
    return Outcome(result=result, summary=_summary(result), charts=[_chart(result)])


def _roles(frame: pd.DataFrame, params: OracleParams) -> tuple[list[str], list[tuple[str, str]]]:
    """The columns to read and the ordered pairs to test; 400s for unknown columns and for
    fewer than two columns or a pair of a column with itself."""
    if params.columns is not None and params.pairs is not None:
        raise InvalidRequestError(
            "Give either columns (every ordered pair is tested) or pairs, not both.",
            param="params.pairs",
            code="conflicting_params",
        )
    if params.columns is not None:
        names = columns.columns(frame, params.columns, "columns")
        if len(names) < 2:
            raise InvalidRequestError(
                "Granger causality needs at least two columns to test one against the other.",
                param="params.columns",
                code="too_few_columns",
            )
        return names, [(cause, effect) for cause in names for effect in names if cause != effect]
    if params.pairs is None:
        raise InvalidRequestError(
            "Give the columns to test (columns) or the (cause, effect) pairs (pairs).",
            param="params.columns",
            code="missing_columns",
        )
    pairs: list[tuple[str, str]] = []
    for pair in params.pairs:
        columns.column(frame, pair.cause, "pairs")
        columns.column(frame, pair.effect, "pairs")
        if pair.cause == pair.effect:
            raise InvalidRequestError(
                f"The pair ({pair.cause}, {pair.effect}) tests a column against itself.",
                param="params.pairs",
                code="same_column",
            )
        if (pair.cause, pair.effect) not in pairs:
            pairs.append((pair.cause, pair.effect))
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    return names, pairs


def _ordered(
    frame: pd.DataFrame, values: pd.DataFrame, params: OracleParams, run: Run
) -> pd.DataFrame:
    """The values in time order, rows with a missing value left out (with a warning), and
    enough of them for ``max_lag``."""
    if params.time is not None:
        times = columns.time_column(frame, params.time, "time")
        values = values.loc[times.sort_values(kind="stable").index]
    complete = values.dropna().reset_index(drop=True)
    if len(complete) < len(values):
        run.warn(
            f"{len(values) - len(complete)} rows with a missing value were left out; the "
            "rows around them are treated as adjacent."
        )
    needed = 3 * params.max_lag + _SPARE_ROWS
    if len(complete) < needed:
        raise InvalidRequestError(
            f"Testing lags up to max_lag = {params.max_lag} needs at least 3 * max_lag + "
            f"{_SPARE_ROWS} = {needed} complete rows; the data have {len(complete)}.",
            param="params.max_lag",
            code="too_few_rows",
        )
    return complete


def _make_stationary(values: pd.DataFrame, run: Run) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each column differenced until the ADF test rejects a unit root (at most twice), then
    all cut to the rows every column still has."""
    import pandas as pd

    series: dict[str, pd.Series] = {}
    differenced: dict[str, int] = {}
    for name in values.columns:
        column = values[name]
        _refuse_exact_curve(name, column)
        times = 0
        while not _stationary(column) and times < _MAX_DIFFERENCES:
            column = column.diff().iloc[1:]
            times += 1
        if times == _MAX_DIFFERENCES and not _stationary(column):
            run.warn(f"'{name}' still looks non-stationary after differencing it twice.")
        series[name] = column
        differenced[name] = times
    aligned = pd.DataFrame(series).iloc[max(differenced.values()) :]
    return aligned.reset_index(drop=True), differenced


def _refuse_exact_curve(name: str, column: pd.Series) -> None:
    """A 422 for a column that is an exact line (or parabola) in the row order: differencing
    leaves a constant, and no test can be computed on it."""
    import numpy as np

    values = column.to_numpy(dtype=float)
    tolerance = 1e-9 * max(1.0, float(np.abs(values).max()))
    for order in range(1, _MAX_DIFFERENCES + 1):
        steps = np.diff(values, n=order)
        if float(np.ptp(steps)) <= tolerance:
            raise UnprocessableEntityError(
                f"Column '{name}' changes by exactly the same amount from row to row "
                f"(after {order} difference(s) it is constant); it has no variation left to "
                "test.",
                code="degenerate_series",
            )


def _stationary(column: pd.Series) -> bool:
    """Whether the augmented Dickey-Fuller test rejects a unit root; a column without
    variation counts as stationary (there is nothing to difference)."""
    import warnings

    from statsmodels.tools.sm_exceptions import InterpolationWarning
    from statsmodels.tsa.stattools import adfuller

    values = column.to_numpy(dtype=float)
    if float(values.std()) == 0.0:
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InterpolationWarning)
        p_value = float(adfuller(values, autolag="AIC", result_object=True).pvalue)
    return p_value < _ADF_LEVEL


def _granger(data: pd.DataFrame, cause: str, effect: str, params: OracleParams) -> _Tested:
    """The lag chosen for the two series, and the ssr F-test of ``cause`` → ``effect`` at it."""
    from statsmodels.tools.sm_exceptions import InfeasibleTestError
    from statsmodels.tsa.stattools import grangercausalitytests

    pair: np.ndarray = data[[effect, cause]].to_numpy(dtype=float)
    lag = _select_lag(pair, params)
    try:
        tests = grangercausalitytests(pair, [lag])
    except InfeasibleTestError:
        raise UnprocessableEntityError(
            f"The test of {cause} → {effect} cannot be computed: after differencing, a column "
            "is constant or one series fits the other exactly.",
            code="degenerate_series",
        ) from None
    f_statistic, p_value = tests[lag][0]["ssr_ftest"][:2]
    return _Tested(lag=lag, f_statistic=float(f_statistic), p_value=float(p_value))


def _select_lag(pair: np.ndarray, params: OracleParams) -> int:
    """The VAR order (1..max_lag) the criterion prefers for the two series."""
    import numpy as np
    from statsmodels.tsa.api import VAR

    try:
        orders = VAR(pair).select_order(maxlags=params.max_lag, trend="c")
    except (ValueError, np.linalg.LinAlgError):
        return 1
    chosen = getattr(orders, params.criterion)
    return max(1, int(chosen))


def _correct(p_values: list[float], params: OracleParams) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    corrected = multipletests(p_values, alpha=params.alpha, method=params.correction)[1]
    return [min(1.0, float(p_value)) for p_value in corrected]


def _summary(result: OracleResult) -> str:
    found = [pair for pair in result.pairs if pair.significant]
    differenced = [f"{name} ({times}x)" for name, times in result.differenced.items() if times]
    parts = [
        f"{len(result.pairs)} ordered pairs tested on {result.observations} rows "
        f"({result.correction} correction, alpha {result.alpha:g}, lag by "
        f"{result.criterion.upper()})."
    ]
    if differenced:
        parts.append(f"Differenced to stationarity: {', '.join(differenced)}.")
    if found:
        shown = "; ".join(
            f"{pair.cause} → {pair.effect} at lag {pair.lag} (p = {pair.p_value:.3g})"
            for pair in sorted(found, key=lambda pair: pair.p_value)
        )
        parts.append(f"Significant: {shown}.")
    else:
        parts.append("No pair is significant: no series' past helps predict another's.")
    return " ".join(parts)


def _chart(result: OracleResult) -> dict[str, Any]:
    data = [
        {
            "pair": f"{pair.cause} → {pair.effect}",
            "minus_log10_p": -math.log10(max(pair.p_value, _P_FLOOR)),
            "lag": pair.lag,
            "significant": "yes" if pair.significant else "no",
        }
        for pair in result.pairs
    ]
    bars = charts.bar(
        data,
        charts.field("minus_log10_p", "quantitative", title="-log10 p (corrected)"),
        charts.field("pair", "nominal", title="cause → effect", sort="-x"),
        title="pairs",
        color=charts.field("significant", "nominal", title="significant"),
        tooltip=[charts.field("pair", "nominal"), charts.field("lag", "quantitative")],
    )
    threshold = charts.chart(
        [{"alpha": -math.log10(result.alpha)}],
        {"type": "rule", "strokeDash": [4, 4]},
        {"x": charts.field("alpha", "quantitative")},
        title="alpha",
    )
    return charts.layer(bars, threshold, title="Granger causality: -log10 p per pair")


def _example_data() -> list[dict[str, Cell]]:
    """120 days: ``demand`` follows ``ads`` three days later; ``weather`` is unrelated."""
    rng = random.Random(0)
    ads, weather = [0.0] * 120, [0.0] * 120
    demand = [0.0] * 120
    for day in range(120):
        previous = ads[day - 1] if day else 0.0
        ads[day] = 0.6 * previous + rng.gauss(0, 1)
        weather[day] = (0.5 * weather[day - 1] if day else 0.0) + rng.gauss(0, 1)
        demand[day] = (0.8 * ads[day - 3] if day >= 3 else 0.0) + rng.gauss(0, 1)
    start = dt.date(2024, 1, 1)
    return [
        {
            "day": (start + dt.timedelta(days=day)).isoformat(),
            "ads": round(ads[day], 4),
            "demand": round(demand[day], 4),
            "weather": round(weather[day], 4),
        }
        for day in range(120)
    ]


METHOD: Method[OracleParams, OracleResult] = Method(
    name="oracle",
    summary="Granger causality between series: which past helps predict which, at what lag.",
    params=OracleParams,
    result=OracleResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=OracleParams(columns=["ads", "demand", "weather"], max_lag=6, time="day"),
    ),
    numeric_param="columns",
    min_rows=_MIN_ROWS,
)
