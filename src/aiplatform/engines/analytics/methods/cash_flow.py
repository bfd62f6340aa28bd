"""cash_flow: monthly net cash flow, burn rate, runway and a cumulative cash forecast.

The ledger's dated amounts (signed, or made signed by a column naming each row an inflow or
an outflow) are summed by calendar month, months without entries counting as zero. The burn
rate is the average net outflow over the last ``burn_months`` months, and the runway is the
current balance (``starting_balance`` plus every flow) over the burn: months of cash left at
that pace. None when cash is not being burnt, with the reason.

The forecast models the monthly net flow with exponential smoothing (statsmodels
``ETSModel``: simple, damped trend, and with a yearly season once there are two years of
months; the lowest AICc wins) and simulates its future paths, seeded by the run's seed; the
balance paths are the current balance plus each path's running sum, so the interval of the
balance carries the uncertainty of every month before it. The share of paths that go below
zero is the chance of running out of cash within the horizon.
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
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "CashFlowParams", "CashFlowResult"]

#: Fewest months of history the forecast is made from.
_MIN_FORECAST_MONTHS = 6
#: Months of history from which a yearly season is modelled.
_SEASONAL_MONTHS = 24
#: Simulated paths of the net flow.
_SIMULATIONS = 2_000


class CashFlowParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with each entry's date (ISO 8601 text); entries are summed by calendar month.
    date: str
    #: Numeric column with each entry's amount: signed (inflows positive, outflows negative),
    #: or, with ``flow_type``, as the entry's type says.
    amount: str
    #: Column naming each entry an inflow or an outflow (``inflow_label`` /
    #: ``outflow_label``, case and surrounding spaces ignored); its amount is added for an
    #: inflow and subtracted for an outflow. None: the amounts carry their sign.
    flow_type: str | None = None
    #: The ``flow_type`` value of an inflow.
    inflow_label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "inflow"
    #: The ``flow_type`` value of an outflow.
    outflow_label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "outflow"
    #: Cash at hand before the first entry.
    starting_balance: Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)] = 0.0
    #: The burn rate is the average net outflow over this many last months.
    burn_months: Annotated[int, msgspec.Meta(ge=1, le=120)] = 3
    #: Months of balance to forecast.
    horizon: Annotated[int, msgspec.Meta(ge=1, le=120)] = 12
    #: Interval level of the balance forecast, in percent.
    level: Annotated[int, msgspec.Meta(ge=50, le=99)] = 90


class MonthFlow(msgspec.Struct, kw_only=True):
    #: The month's first day (ISO 8601).
    month: str
    #: Sum of the month's inflows.
    inflow: float
    #: Sum of the month's outflows, as a positive number.
    outflow: float
    #: inflow - outflow.
    net: float
    #: Cash at the month's end.
    balance: float


class BalanceForecast(msgspec.Struct, kw_only=True):
    month: str
    #: The forecast net flow of the month.
    net: float
    #: The forecast balance at the month's end (current balance plus the forecast flows).
    balance: float
    #: The balance's interval at ``level`` (quantiles of the simulated paths).
    balance_lower: float
    balance_upper: float


class CashFlowResult(msgspec.Struct, kw_only=True):
    #: Every month from the first entry's to the last's, months without entries as zero.
    months: list[MonthFlow]
    #: starting_balance plus every flow.
    current_balance: float
    #: Months the burn rate is averaged over (fewer than asked only when the ledger is shorter).
    burn_months: int
    #: Average net outflow per month over the last ``burn_months`` months; negative when cash
    #: grew over them.
    burn_rate: float
    #: current_balance / burn_rate: months of cash left at the present burn (0 when the
    #: balance is already at or below zero). None when cash is not being burnt.
    runway_months: float | None
    #: Why there is no runway, when there is none.
    runway_reason: str | None
    #: The month the cash runs out at the present burn (None without a runway).
    cash_out_month: str | None
    #: The exponential smoothing model of the monthly net flow, in ETS notation (None when
    #: the ledger is too short to forecast).
    forecast_model: str | None
    level: int
    forecast: list[BalanceForecast]
    #: Share of the simulated balance paths that fall below zero within the horizon.
    cash_out_probability: float | None


# --- the ledger ----------------------------------------------------------------------------


def _dates(frame: pd.DataFrame, name: str) -> pd.Series:
    """The column as datetimes, each at the wall-clock time it was written with (an entry
    booked on the 31st stays in its month whatever its UTC offset); a 400 naming the column
    when a value is missing or is not an ISO 8601 date."""
    import pandas as pd

    raw = columns.column(frame, name, "date")
    if raw.isna().all():
        raise InvalidRequestError(
            f"Column '{name}' given as date has no values (all missing).",
            param="params.date",
            code="all_missing",
        )
    if raw.isna().any():
        raise InvalidRequestError(
            f"Column '{name}' given as date has missing dates (row {int(raw.isna().argmax())}).",
            param="params.date",
            code="missing_time",
        )
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = pd.to_datetime(raw)
        return stamps.dt.tz_localize(None) if stamps.dt.tz is not None else stamps
    text = raw.astype(str).str.strip()
    parsed = {value: _wall_time(value) for value in text.unique()}
    bad = text.map(lambda value: parsed[value] is None)
    if bool(bad.any()):
        row = int(bad.to_numpy().argmax())
        raise InvalidRequestError(
            f"Column '{name}' given as date must hold ISO 8601 dates; row {row} holds "
            f"{str(raw.iloc[row])[:40]!r}.",
            param="params.date",
            code="not_a_time",
        )
    return pd.to_datetime(text.map(parsed))


def _wall_time(text: str) -> dt.datetime | None:
    """An ISO 8601 date or time without its UTC offset; None when it is not one."""
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


def _signs(frame: pd.DataFrame, params: CashFlowParams) -> pd.Series | None:
    """+1 for an inflow, -1 for an outflow, by the ``flow_type`` column (None without one)."""
    if params.flow_type is None:
        return None
    if params.inflow_label.strip().lower() == params.outflow_label.strip().lower():
        raise InvalidRequestError(
            "inflow_label and outflow_label must differ.",
            param="params.outflow_label",
            code="same_labels",
        )
    kinds = columns.column(frame, params.flow_type, "flow_type").astype(str).str.strip()
    kinds = kinds.str.lower()
    inflow = kinds == params.inflow_label.strip().lower()
    outflow = kinds == params.outflow_label.strip().lower()
    unknown = ~(inflow | outflow)
    if bool(unknown.any()):
        row = int(unknown.to_numpy().argmax())
        raise InvalidRequestError(
            f"Column '{params.flow_type}' given as flow_type holds "
            f"{str(frame[params.flow_type].iloc[row])[:40]!r} at row {row}; each entry must be "
            f"'{params.inflow_label}' or '{params.outflow_label}'.",
            param="params.flow_type",
            code="unknown_flow_type",
        )
    return inflow.astype(float) - outflow.astype(float)


@dataclass(frozen=True, slots=True)
class _Months:
    """The ledger by calendar month."""

    starts: list[dt.date]
    inflow: np.ndarray
    outflow: np.ndarray

    @property
    def net(self) -> np.ndarray:
        net: np.ndarray = self.inflow - self.outflow
        return net


def _by_month(dates: pd.Series, flows: pd.Series) -> _Months:
    """Inflows and outflows summed per calendar month, every month from the first to the
    last (none: zero)."""
    import pandas as pd

    periods = dates.dt.to_period("M")
    frame = pd.DataFrame(
        {"month": periods, "inflow": flows.clip(lower=0), "outflow": (-flows).clip(lower=0)}
    )
    summed = frame.groupby("month").sum()
    span = pd.period_range(periods.min(), periods.max(), freq="M")
    summed = summed.reindex(span, fill_value=0.0)
    return _Months(
        starts=[period.start_time.date() for period in span],
        inflow=summed["inflow"].to_numpy(dtype=float),
        outflow=summed["outflow"].to_numpy(dtype=float),
    )


def _ledger(frame: pd.DataFrame, params: CashFlowParams, run: Run) -> _Months:
    dates = _dates(frame, params.date)
    amounts = columns.numeric(frame, params.amount, "amount", allow_constant=True)
    signs = _signs(frame, params)
    missing = amounts.isna()
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} entries without an amount were left out.")
    flows = amounts if signs is None else amounts * signs
    return _by_month(dates[~missing], flows[~missing])


# --- burn and runway -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Runway:
    burn_months: int
    burn_rate: float
    months: float | None
    reason: str | None
    cash_out: str | None


def _runway(months: _Months, balance: float, asked: int, run: Run) -> _Runway:
    """The burn over the last ``asked`` months and the months of cash it leaves."""
    count = min(asked, len(months.starts))
    if count < asked:
        run.warn(
            f"The ledger spans {count} months; the burn rate is averaged over those rather "
            f"than {asked} (burn_months)."
        )
    burn = -float(months.net[-count:].sum()) / count
    if burn <= 0:
        reason = (
            f"Cash is not being burnt: the net flow over the last {count} months was "
            f"{-burn:+,.2f} a month."
        )
        return _Runway(count, burn, None, reason, None)
    if balance <= 0:
        run.warn(f"The balance ({balance:,.2f}) is already at or below zero.")
        return _Runway(count, burn, 0.0, None, months.starts[-1].isoformat())
    runway = balance / burn
    return _Runway(count, burn, runway, None, _month_after(months.starts[-1], math.ceil(runway)))


def _month_after(start: dt.date, months: int) -> str:
    """The first day of the month ``months`` months after ``start``'s."""
    index = start.year * 12 + start.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1).isoformat()


# --- the forecast --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Forecast:
    model: str
    net: np.ndarray
    balance: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    cash_out_probability: float


def _fits(net: np.ndarray) -> list[tuple[str, Any]]:
    """Simple exponential smoothing, a damped trend and, from two years of months, both
    with a yearly season; each fitted with its warnings kept in."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    specs: list[tuple[str, str | None, str | None]] = [
        ("ETS(A,N,N)", None, None),
        ("ETS(A,Ad,N)", "add", None),
    ]
    if len(net) >= _SEASONAL_MONTHS:
        specs += [("ETS(A,N,A)", None, "add"), ("ETS(A,Ad,A)", "add", "add")]
    fitted: list[tuple[str, Any]] = []
    for name, trend, seasonal in specs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                results = ETSModel(
                    pd.Series(net),
                    error="add",
                    trend=trend,
                    damped_trend=trend is not None,
                    seasonal=seasonal,
                    seasonal_periods=12 if seasonal else None,
                ).fit(disp=False)
            except (ValueError, ArithmeticError):
                continue
        if math.isfinite(float(results.aicc)):
            fitted.append((name, results))
    return fitted


def _forecast(
    net: np.ndarray, balance: float, params: CashFlowParams, run: Run
) -> _Forecast | None:
    """The model of lowest AICc, its mean path and seeded simulated paths of the balance."""
    import numpy as np

    if len(net) < _MIN_FORECAST_MONTHS:
        run.warn(
            f"The ledger spans {len(net)} months; a forecast needs {_MIN_FORECAST_MONTHS}, so "
            "none is made."
        )
        return None
    if float(np.ptp(net)) == 0:
        # A flow that never varies: exponential smoothing has no noise to fit.
        flat = np.full(params.horizon, float(net[0]))
        path = balance + np.cumsum(flat)
        return _Forecast("constant", flat, path, path, path, float((path < 0).any()))
    fitted = _fits(net)
    if not fitted:
        raise UnprocessableEntityError(
            "No exponential smoothing model could be fit to the monthly net flow.",
            code="fit_failed",
        )
    name, results = min(fitted, key=lambda item: float(item[1].aicc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean = np.asarray(results.forecast(params.horizon), dtype=float)
        paths = np.asarray(
            results.simulate(
                params.horizon,
                anchor="end",
                repetitions=_SIMULATIONS,
                rng=np.random.default_rng(run.seed),
            ),
            dtype=float,
        ).reshape(params.horizon, _SIMULATIONS)
    balances = balance + np.cumsum(paths, axis=0)
    tail = (1 - params.level / 100) / 2
    lower, upper = np.quantile(balances, [tail, 1 - tail], axis=1)
    if not (np.isfinite(mean).all() and np.isfinite(balances).all()):
        raise UnprocessableEntityError(
            f"{name} gave a non-finite forecast of the net flow.", code="fit_failed"
        )
    return _Forecast(
        model=name,
        net=mean,
        balance=balance + np.cumsum(mean),
        lower=lower,
        upper=upper,
        cash_out_probability=float((balances < 0).any(axis=0).mean()),
    )


# --- the computation -----------------------------------------------------------------------


def compute(frame: pd.DataFrame, params: CashFlowParams, run: Run) -> Outcome[CashFlowResult]:
    import numpy as np

    run.progress(0.05, "summing the ledger by month")
    months = _ledger(frame, params, run)
    net = months.net
    balances = params.starting_balance + np.cumsum(net)
    current = float(balances[-1])
    run.progress(0.3, "computing burn and runway")
    runway = _runway(months, current, params.burn_months, run)
    run.progress(0.4, "forecasting the monthly net flow")
    forecast = _forecast(net, current, params, run)
    run.progress(0.9, "assembling the result")
    ahead = [_month_after(months.starts[-1], k + 1) for k in range(params.horizon)]
    result = CashFlowResult(
        months=[
            MonthFlow(
                month=start.isoformat(),
                inflow=float(inflow),
                outflow=float(outflow),
                net=float(inflow - outflow),
                balance=float(balance),
            )
            for start, inflow, outflow, balance in zip(
                months.starts, months.inflow, months.outflow, balances, strict=True
            )
        ],
        current_balance=current,
        burn_months=runway.burn_months,
        burn_rate=runway.burn_rate,
        runway_months=runway.months,
        runway_reason=runway.reason,
        cash_out_month=runway.cash_out,
        forecast_model=None if forecast is None else forecast.model,
        level=params.level,
        forecast=[]
        if forecast is None
        else [
            BalanceForecast(
                month=month,
                net=float(flow),
                balance=float(balance),
                balance_lower=float(low),
                balance_upper=float(high),
            )
            for month, flow, balance, low, high in zip(
                ahead, forecast.net, forecast.balance, forecast.lower, forecast.upper, strict=True
            )
        ],
        cash_out_probability=None if forecast is None else forecast.cash_out_probability,
    )
    run.progress(0.95, "drawing the cash flow")
    return Outcome(
        result=result,
        summary=_summary(result),
        charts=[_flow_chart(result, params), _balance_chart(result, params)],
    )


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _summary(result: CashFlowResult) -> str:
    first, last = result.months[0].month[:7], result.months[-1].month[:7]
    text = (
        f"{len(result.months)} months from {first} to {last}; the balance is now "
        f"{_money(result.current_balance)}. Over the last {result.burn_months} months the net "
        f"outflow averaged {_money(result.burn_rate)} a month"
    )
    if result.runway_months is None:
        text += f". {result.runway_reason}"
    else:
        text += (
            f", which leaves {result.runway_months:.1f} months of runway (cash runs out in "
            f"{result.cash_out_month and result.cash_out_month[:7]})."
        )
    if result.forecast:
        end = result.forecast[-1]
        text += (
            f" {result.forecast_model} forecasts a balance of {_money(end.balance)} in "
            f"{end.month[:7]} ({result.level}% interval {_money(end.balance_lower)} to "
            f"{_money(end.balance_upper)}); {result.cash_out_probability or 0:.0%} of simulated "
            "paths run out of cash within the horizon."
        )
    return text


def _flow_chart(result: CashFlowResult, params: CashFlowParams) -> dict[str, Any]:
    rows = [
        {"month": month.month, "amount": month.inflow, "flow": "inflow"} for month in result.months
    ] + [
        {"month": month.month, "amount": -month.outflow, "flow": "outflow"}
        for month in result.months
    ]
    return charts.bar(
        rows,
        charts.field("month", "temporal", title="month", timeUnit="yearmonth"),
        charts.field("amount", "quantitative", title=params.amount),
        title="Monthly inflows and outflows",
        color=charts.field("flow", "nominal", title=None),
    )


def _balance_chart(result: CashFlowResult, params: CashFlowParams) -> dict[str, Any]:
    x = charts.field("month", "temporal", title="month")
    lines = [
        {"month": month.month, "balance": month.balance, "series": "balance"}
        for month in result.months
    ] + [
        {"month": point.month, "balance": point.balance, "series": "forecast"}
        for point in result.forecast
    ]
    views = []
    if result.forecast:
        views.append(
            charts.chart(
                [
                    {"month": p.month, "lower": p.balance_lower, "upper": p.balance_upper}
                    for p in result.forecast
                ],
                {"type": "area", "opacity": 0.25},
                {
                    "x": x,
                    "y": charts.field("lower", "quantitative", title="balance"),
                    "y2": {"field": "upper"},
                },
                title="interval",
            )
        )
    views.append(
        charts.line(
            lines,
            x,
            charts.field("balance", "quantitative", title="balance"),
            title="balance",
            color=charts.field("series", "nominal", title=None),
        )
    )
    views.append(
        charts.chart(
            [{"zero": 0.0}],
            {"type": "rule", "strokeDash": [4, 4], "color": "firebrick"},
            {"y": charts.field("zero", "quantitative")},
            title="zero",
        )
    )
    return charts.layer(*views, title=f"Cash balance and its {result.level}% forecast interval")


# --- the declaration -----------------------------------------------------------------------


def _example_data() -> list[dict[str, Cell]]:
    """Eighteen months of a young company's ledger: sales receipts growing about 4% a month
    and rarely a grant, against payroll, rent and irregular supplier bills."""
    rng = random.Random(0)
    rows: list[dict[str, Cell]] = []
    for month in range(18):
        year, number = 2023 + month // 12, month % 12 + 1

        def day(d: int, year: int = year, number: int = number) -> str:
            return dt.date(year, number, d).isoformat()

        rows.append({"date": day(1), "amount": -42_000.0, "memo": "payroll"})
        rows.append({"date": day(3), "amount": -6_500.0, "memo": "rent"})
        for _ in range(2):
            bill = -round(rng.uniform(3_000, 9_000), 2)
            rows.append({"date": day(rng.randint(5, 27)), "amount": bill, "memo": "supplier"})
        for _ in range(3):
            sale = round(9_000 * 1.04**month * rng.uniform(0.8, 1.2), 2)
            rows.append({"date": day(rng.randint(2, 28)), "amount": sale, "memo": "sales"})
        if month == 6:
            rows.append({"date": day(15), "amount": 60_000.0, "memo": "grant"})
    return rows


METHOD: Method[CashFlowParams, CashFlowResult] = Method(
    name="cash_flow",
    summary="Monthly net cash flow, burn rate, runway and a cumulative cash forecast.",
    params=CashFlowParams,
    result=CashFlowResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=CashFlowParams(date="date", amount="amount", starting_balance=600_000.0),
    ),
    numeric_param="amount",
    min_rows=2,
)
