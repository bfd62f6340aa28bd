"""customer_ltv: what each customer is likely to buy, and be worth, from a transaction log.

The log (customer, date, amount) is summarised per customer as repeat purchases (days, or
weeks, with a purchase after the first), recency (first to last purchase) and age (first
purchase to the end of the data), as Lifetimes does. A BG/NBD model (Fader, Hardie and Lee,
2005: purchases at a gamma-distributed rate, a beta-distributed chance of leaving after each
one) gives each customer's expected purchases over the horizon and the probability that the
customer is still active; a Gamma-Gamma model of the repeat purchases' amounts gives each
customer's expected spend per purchase. The customer's value is their product summed month by
month over the horizon, discounted at a monthly rate. Both models are fitted by maximum
likelihood; a fit that does not converge, or ends at the edge of the parameter space (no
spread between customers, nobody leaving, an average spend that does not exist), is refused
rather than reported.

Beside the models, every customer gets RFM scores: quintiles (1-5) of how recently they
bought, how often and how much in all, and a named segment from the recency and frequency
scores (champions, loyal, at risk, hibernating, ...).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import random
import warnings
from collections.abc import Iterator
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
    "CustomerLtvParams",
    "CustomerLtvResult",
    "CustomerValue",
    "FittedParameters",
    "SegmentSummary",
    "transaction_times",
]

#: Fewest customers, and fewest customers with a repeat purchase, the models are fitted to.
MIN_CUSTOMERS = 10
MIN_REPEAT_CUSTOMERS = 5
#: Shape parameters (r, a, b, p, q) outside this range mean the fit ran to the edge of the
#: parameter space: the data do not pin the model down.
SHAPE_RANGE = (1e-4, 1e4)
#: A parameter whose log has a standard error above this is not pinned down by the data
#: (its 95% interval spans a factor of e^(2 * 1.96 * 3), about 130,000): the likelihood is
#: flat along a ridge and the value found is arbitrary.
LOG_SE_LIMIT = 3.0
#: |correlation| of repeat purchases and their mean amount above which the Gamma-Gamma
#: model's independence assumption is doubtful (a warning).
INDEPENDENCE_LIMIT = 0.3
#: The scatter chart draws at most this many customers (a seeded sample beyond).
CHART_CUSTOMERS = 5_000
#: Time units, as Lifetimes' period codes.
_FREQ = {"day": "D", "week": "W"}
#: Days per time unit, for the summary's dates.
_UNIT_DAYS = {"day": 1.0, "week": 7.0}

TimeUnit = Literal["day", "week"]

#: Named segments by (recency score, frequency score): the common RFM grid.
_SEGMENTS: tuple[tuple[str, frozenset[int], frozenset[int]], ...] = (
    ("champions", frozenset({5}), frozenset({4, 5})),
    ("loyal", frozenset({3, 4}), frozenset({4, 5})),
    ("potential_loyalists", frozenset({4, 5}), frozenset({2, 3})),
    ("new", frozenset({5}), frozenset({1})),
    ("promising", frozenset({4}), frozenset({1})),
    ("need_attention", frozenset({3}), frozenset({3})),
    ("about_to_sleep", frozenset({3}), frozenset({1, 2})),
    ("cannot_lose", frozenset({1, 2}), frozenset({5})),
    ("at_risk", frozenset({1, 2}), frozenset({3, 4})),
    ("hibernating", frozenset({1, 2}), frozenset({1, 2})),
)


class CustomerLtvParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column identifying the customer of each transaction.
    customer: str
    #: Column with the transaction's date or time (ISO 8601 text).
    date: str
    #: Numeric column with the transaction's amount. Rows with an amount of zero or less
    #: (refunds) are left out.
    amount: str
    #: Months ahead the purchases and the value are predicted for.
    horizon_months: Annotated[int, msgspec.Meta(ge=1, le=120)] = 12
    #: Monthly discount rate of future spend (0.01: 1% a month).
    discount_rate: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.01
    #: The time unit purchases are counted in: several purchases by a customer within one
    #: unit count as one (their amounts add up).
    time_unit: TimeUnit = "day"
    #: L2 penalty on the models' log-parameters; a small one (0.001-0.1) helps a fit on few
    #: customers converge, at the price of some bias.
    penalizer: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)] = 0.0


class CustomerValue(msgspec.Struct, kw_only=True):
    customer: str
    #: Repeat purchases: time units with a purchase after the first one.
    frequency: int
    #: Time from the first purchase to the last, in ``time_unit``.
    recency: float
    #: Time from the first purchase to the end of the data, in ``time_unit``.
    age: float
    #: Mean amount of the repeat purchases; None for a customer who bought once.
    monetary_value: float | None
    #: Expected purchases over the horizon (BG/NBD).
    expected_purchases: float
    #: Probability that the customer is still active (BG/NBD). 1 for a customer who bought
    #: once: the model lets customers leave only after a repeat purchase.
    probability_alive: float
    #: Expected amount per purchase (Gamma-Gamma: the customer's own mean shrunk towards
    #: the population's).
    expected_spend: float
    #: Discounted value of the customer's expected purchases over the horizon.
    value: float
    #: RFM quintile scores, 1 (lowest) to 5: recency (5: bought most recently), frequency
    #: (number of purchases) and monetary (total spend).
    recency_score: int
    frequency_score: int
    monetary_score: int
    #: Named RFM segment from the recency and frequency scores.
    segment: str


class FittedParameters(msgspec.Struct, kw_only=True):
    #: BG/NBD: purchase rates are gamma(r, alpha) distributed (alpha in ``time_unit``).
    r: float
    alpha: float
    #: BG/NBD: the chance of leaving after a purchase is beta(a, b) distributed.
    a: float
    b: float
    #: Gamma-Gamma: amounts are gamma(p, nu) with nu gamma(q, v) distributed across customers.
    p: float
    q: float
    v: float


class SegmentSummary(msgspec.Struct, kw_only=True):
    segment: str
    customers: int
    #: Share of all customers.
    share: float
    #: Summed value of the segment's customers.
    value: float
    mean_value: float
    mean_probability_alive: float


class CustomerLtvResult(msgspec.Struct, kw_only=True):
    #: One entry per customer, highest value first.
    customers: list[CustomerValue]
    #: The fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, v) parameters.
    parameters: FittedParameters
    #: Named RFM segments, highest summed value first.
    segments: list[SegmentSummary]
    #: Transactions used (after rows with missing values or amounts <= 0 are left out).
    transactions: int
    #: Customers with at least one repeat purchase (the Gamma-Gamma model is fitted to them).
    repeat_customers: int
    #: The end of the data (the last purchase's time unit), ISO 8601.
    observation_end: str
    #: Months the purchases and values are predicted for.
    horizon_months: int
    #: Monthly rate the values are discounted at.
    discount_rate: float
    #: The unit frequency, recency and age are counted in: "day" or "week".
    time_unit: str
    #: Expected purchases of all customers over the horizon.
    expected_purchases: float
    #: Summed value of all customers.
    total_value: float
    #: Population mean spend per purchase implied by the Gamma-Gamma fit (p * v / (q - 1)).
    mean_spend: float


# ----------------------------------------------------------------------------- input


def transaction_times(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    """The column ``name`` as naive UTC datetimes, repeats allowed (a log has many rows per
    day); missing values stay missing. 400 ``all_missing`` when none is present and
    ``not_a_time`` naming the first value that is not an ISO 8601 time."""
    import pandas as pd

    series = columns.column(frame, name, role)
    present = series.notna()
    if not bool(present.any()):
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has no values (all missing).",
            param=f"params.{role}",
            code="all_missing",
        )
    if pd.api.types.is_datetime64_any_dtype(series):
        times = pd.to_datetime(series, utc=True)
    else:
        text = series.where(~present, series.astype(str))
        times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        bad = times.isna() & present
        if bool(bad.any()):
            row = int(bad.to_numpy().argmax())
            raise InvalidRequestError(
                f"Column '{name}' given as {role} must hold ISO 8601 times; row {row} holds "
                f"{str(series.iloc[row])[:40]!r}.",
                param=f"params.{role}",
                code="not_a_time",
            )
    return times.dt.tz_convert(None)


def _transactions(frame: pd.DataFrame, params: CustomerLtvParams, run: Run) -> pd.DataFrame:
    """The log as (customer, date, amount), roles checked; rows missing a value and amounts
    of zero or less left out with a warning."""
    import pandas as pd

    customer = columns.column(frame, params.customer, "customer")
    dates = transaction_times(frame, params.date, "date")
    amount = columns.numeric(frame, params.amount, "amount")
    log = pd.DataFrame({"customer": customer, "date": dates, "amount": amount})
    missing = log.isna().any(axis=1)
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows miss a customer, date or amount; they are left out.")
    log = log[~missing]
    refunds = log["amount"] <= 0
    if bool(refunds.any()):
        run.warn(
            f"{int(refunds.sum())} rows have an amount of zero or less (refunds); they are "
            "left out."
        )
    log = log[~refunds].assign(customer=lambda table: table["customer"].astype(str))
    count = int(log["customer"].nunique())
    if count < MIN_CUSTOMERS:
        raise InvalidRequestError(
            f"The customer_ltv engine needs purchases by at least {MIN_CUSTOMERS} customers; "
            f"the data have {count}.",
            param="data",
            code="too_few_customers",
        )
    return log.reset_index(drop=True)


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class _Fits:
    parameters: FittedParameters
    expected_purchases: np.ndarray
    probability_alive: np.ndarray
    expected_spend: np.ndarray
    value: np.ndarray


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lifetimes predates the numpy, pandas and scipy it runs on: its deprecation and
    overflow warnings, and the optimiser report it prints when a fit fails, are kept out of
    the response (the results are checked instead)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _fit_failed(model: str, error: Exception) -> UnprocessableEntityError:
    return UnprocessableEntityError(
        f"The {model} model did not converge on these data ({type(error).__name__}); a small "
        "penalizer (e.g. 0.01) or more customers may help.",
        code="fit_failed",
    )


def _check_parameters(parameters: FittedParameters, log_errors: dict[str, float]) -> None:
    """A 422 ``degenerate_fit`` when a parameter is not finite, a shape parameter ran to the
    edge of the parameter space, a parameter is not pinned down (the standard error of its
    log, ``log_errors``, is not finite or above :data:`LOG_SE_LIMIT`), or the mean spend does
    not exist (q <= 1)."""
    values = msgspec.structs.asdict(parameters)
    low, high = SHAPE_RANGE
    for name, value in values.items():
        shape = name in ("r", "a", "b", "p", "q")
        if not math.isfinite(value) or value <= 0 or (shape and not low <= value <= high):
            raise UnprocessableEntityError(
                f"The fit ended at {name} = {value:.3g}, at the edge of the parameter space: "
                "the data do not pin the model down (too little spread between customers, or "
                "too few who stopped buying).",
                code="degenerate_fit",
            )
        error = log_errors[name]
        if not (math.isfinite(error) and error <= LOG_SE_LIMIT):
            raise UnprocessableEntityError(
                f"The fit leaves {name} undetermined ({name} = {value:.3g}, standard error of "
                f"its log {error:.3g}): the likelihood is flat, so the data do not pin the "
                "model down. More customers, or a small penalizer, may help.",
                code="degenerate_fit",
            )
    if parameters.q <= 1.0 + 1e-6:
        raise UnprocessableEntityError(
            f"The Gamma-Gamma fit gives q = {parameters.q:.3g} <= 1: the mean spend per "
            "purchase does not exist for these amounts.",
            code="degenerate_fit",
        )


def _fit(summary: pd.DataFrame, params: CustomerLtvParams, run: Run) -> _Fits:
    """BG/NBD and Gamma-Gamma fitted to the per-customer summary; the predictions."""
    import numpy as np

    with _quiet():
        from lifetimes import (  # type: ignore[import-untyped,unused-ignore]
            BetaGeoFitter,
            GammaGammaFitter,
        )
        from lifetimes.utils import ConvergenceError  # type: ignore[import-untyped,unused-ignore]

        failures = (ConvergenceError, np.linalg.LinAlgError, ValueError, FloatingPointError)
        frequency, recency, age = summary["frequency"], summary["recency"], summary["T"]
        run.progress(0.3, "fitting the BG/NBD purchase model")
        try:
            bgnbd = BetaGeoFitter(penalizer_coef=params.penalizer).fit(frequency, recency, age)
        except failures as error:
            raise _fit_failed("BG/NBD", error) from error
        run.progress(0.5, "fitting the Gamma-Gamma spend model")
        repeat = summary[summary["frequency"] > 0]
        try:
            spend = GammaGammaFitter(penalizer_coef=params.penalizer).fit(
                repeat["frequency"], repeat["monetary_value"], q_constraint=True
            )
        except failures as error:
            raise _fit_failed("Gamma-Gamma", error) from error
        parameters = FittedParameters(
            **{key: float(value) for key, value in bgnbd.params_.items()},
            **{key: float(value) for key, value in spend.params_.items()},
        )
        # Lifetimes' standard errors are the delta method's: se(log x) = se(x) / x.
        log_errors = {
            str(key): float(error / fitted.params_[key])
            for fitted in (bgnbd, spend)
            for key, error in fitted.standard_errors_.items()
        }
        _check_parameters(parameters, log_errors)
        run.progress(0.65, "predicting purchases and value")
        units = params.horizon_months * (30.0 if params.time_unit == "day" else 4.345)
        expected = bgnbd.conditional_expected_number_of_purchases_up_to_time(
            units, frequency, recency, age
        )
        alive = bgnbd.conditional_probability_alive(frequency, recency, age)
        per_purchase = spend.conditional_expected_average_profit(
            frequency, summary["monetary_value"]
        )
        value = spend.customer_lifetime_value(
            bgnbd,
            frequency,
            recency,
            age,
            summary["monetary_value"],
            time=params.horizon_months,
            discount_rate=params.discount_rate,
            freq=_FREQ[params.time_unit],
        )
    fits = _Fits(
        parameters=parameters,
        expected_purchases=np.asarray(expected, dtype=float),
        probability_alive=np.asarray(alive, dtype=float),
        expected_spend=np.asarray(per_purchase, dtype=float),
        value=np.asarray(value, dtype=float),
    )
    for name in ("expected_purchases", "probability_alive", "expected_spend", "value"):
        if not np.isfinite(getattr(fits, name)).all():
            raise UnprocessableEntityError(
                f"The fitted models give non-finite {name.replace('_', ' ')} for some customers.",
                code="degenerate_fit",
            )
    return fits


def _summarise(log: pd.DataFrame, params: CustomerLtvParams) -> pd.DataFrame:
    """Per customer: frequency, recency, T (age) and the repeat purchases' mean amount."""
    with _quiet():
        from lifetimes.utils import (  # type: ignore[import-untyped,unused-ignore]
            summary_data_from_transaction_data,
        )

        summary = summary_data_from_transaction_data(
            log, "customer", "date", monetary_value_col="amount", freq=_FREQ[params.time_unit]
        )
    repeat = int((summary["frequency"] > 0).sum())
    if repeat < MIN_REPEAT_CUSTOMERS:
        raise UnprocessableEntityError(
            f"Only {repeat} customers bought more than once (in different {params.time_unit}s); "
            f"the models need at least {MIN_REPEAT_CUSTOMERS}.",
            code="too_few_repeat_customers",
        )
    return summary.sort_index()


def _independence(summary: pd.DataFrame, run: Run) -> None:
    """Warn when repeat purchases and their mean amount are correlated (Gamma-Gamma assumes
    they are not)."""
    import numpy as np

    repeat = summary[summary["frequency"] > 0]
    x, y = repeat["frequency"].to_numpy(), repeat["monetary_value"].to_numpy()
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return
    correlation = float(np.corrcoef(x, y)[0, 1])
    if abs(correlation) > INDEPENDENCE_LIMIT:
        run.warn(
            f"Repeat purchases and their mean amount are correlated (r = {correlation:.2f}); "
            "the Gamma-Gamma spend model assumes they are not, so values may be biased."
        )


# ----------------------------------------------------------------------------- RFM


def _quintiles(values: pd.Series) -> pd.Series:
    """Scores 1-5 by percentile rank (ties share a score)."""
    import numpy as np

    ranks = values.rank(method="average", pct=True)
    return np.ceil(ranks * 5).clip(1, 5).astype(int)


def _segment(recency: int, frequency: int) -> str:
    for name, recencies, frequencies in _SEGMENTS:
        if recency in recencies and frequency in frequencies:
            return name
    raise AssertionError(f"RFM scores ({recency}, {frequency}) are outside the grid")


def _rfm(log: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Recency, frequency and monetary scores and the segment of each customer (in the
    summary's order)."""
    import pandas as pd

    spent = log.groupby("customer")["amount"].sum().reindex(summary.index)
    scores = pd.DataFrame(
        {
            "recency_score": _quintiles(-(summary["T"] - summary["recency"])),
            "frequency_score": _quintiles(summary["frequency"]),
            "monetary_score": _quintiles(spent),
        },
        index=summary.index,
    )
    scores["segment"] = [
        _segment(int(r), int(f))
        for r, f in zip(scores["recency_score"], scores["frequency_score"], strict=True)
    ]
    return scores


# ----------------------------------------------------------------------------- output


def _customers(summary: pd.DataFrame, fits: _Fits, rfm: pd.DataFrame) -> list[CustomerValue]:
    import numpy as np

    items = [
        CustomerValue(
            customer=str(customer),
            frequency=int(row.frequency),
            recency=float(row.recency),
            age=float(row.T),
            monetary_value=float(row.monetary_value) if row.frequency > 0 else None,
            expected_purchases=float(fits.expected_purchases[i]),
            probability_alive=float(fits.probability_alive[i]),
            expected_spend=float(fits.expected_spend[i]),
            value=float(fits.value[i]),
            recency_score=int(rfm["recency_score"].iloc[i]),
            frequency_score=int(rfm["frequency_score"].iloc[i]),
            monetary_score=int(rfm["monetary_score"].iloc[i]),
            segment=str(rfm["segment"].iloc[i]),
        )
        for i, (customer, row) in enumerate(zip(summary.index, summary.itertuples(), strict=True))
    ]
    order = np.argsort(-fits.value, kind="stable")
    return [items[int(i)] for i in order]


def _segments(customers: list[CustomerValue]) -> list[SegmentSummary]:
    groups: dict[str, list[CustomerValue]] = {}
    for item in customers:
        groups.setdefault(item.segment, []).append(item)
    summaries = [
        SegmentSummary(
            segment=name,
            customers=len(members),
            share=len(members) / len(customers),
            value=sum(item.value for item in members),
            mean_value=sum(item.value for item in members) / len(members),
            mean_probability_alive=sum(item.probability_alive for item in members) / len(members),
        )
        for name, members in groups.items()
    ]
    return sorted(summaries, key=lambda item: (-item.value, item.segment))


def _segment_chart(result: CustomerLtvResult) -> dict[str, Any]:
    return charts.bar(
        [
            {"segment": item.segment, "value": item.value, "customers": item.customers}
            for item in result.segments
        ],
        charts.field("segment", "nominal", title="RFM segment", sort="-y"),
        charts.field("value", "quantitative", title=f"value over {result.horizon_months} months"),
        title="Customer value by RFM segment",
        tooltip=[charts.field("customers", "quantitative"), charts.field("value", "quantitative")],
    )


def _alive_chart(result: CustomerLtvResult, seed: int) -> dict[str, Any]:
    shown = result.customers
    if len(shown) > CHART_CUSTOMERS:
        picked = sorted(random.Random(seed).sample(range(len(shown)), CHART_CUSTOMERS))
        shown = [shown[i] for i in picked]
    return charts.point(
        [
            {
                "customer": item.customer,
                "recency": item.recency,
                "frequency": item.frequency,
                "alive": item.probability_alive,
            }
            for item in shown
        ],
        charts.field("recency", "quantitative", title=f"recency ({result.time_unit}s)"),
        charts.field("frequency", "quantitative", title="repeat purchases"),
        color=charts.field("alive", "quantitative", title="P(alive)"),
        tooltip=[charts.field("customer", "nominal"), charts.field("alive", "quantitative")],
        title="Probability a customer is still active, by recency and frequency",
    )


def _summary(result: CustomerLtvResult) -> str:
    fitted = result.parameters
    customers = result.customers
    top = max(1, len(customers) // 10)
    share = (
        sum(item.value for item in customers[:top]) / result.total_value
        if result.total_value > 0
        else 0.0
    )
    alive = sorted(item.probability_alive for item in customers)[len(customers) // 2]
    largest = max(result.segments, key=lambda item: (item.customers, item.segment))
    return (
        f"{len(customers)} customers ({result.repeat_customers} bought more than once) made "
        f"{result.transactions} purchases up to {result.observation_end[:10]}. BG/NBD: r = "
        f"{fitted.r:.3g}, alpha = {fitted.alpha:.3g}, a = {fitted.a:.3g}, b = {fitted.b:.3g}; "
        f"Gamma-Gamma: p = {fitted.p:.3g}, q = {fitted.q:.3g}, v = {fitted.v:.3g} (mean spend "
        f"{result.mean_spend:.4g} per purchase). Over the next {result.horizon_months} months "
        f"they are expected to make {result.expected_purchases:.4g} purchases worth "
        f"{result.total_value:.4g} (discounted at {result.discount_rate:.2%} a month); the "
        f"top 10% of customers hold {share:.0%} of it. The median probability of still being "
        f"active is {alive:.2f}; the largest RFM segment is '{largest.segment}' "
        f"({largest.customers} customers)."
    )


def compute(frame: pd.DataFrame, params: CustomerLtvParams, run: Run) -> Outcome[CustomerLtvResult]:
    log = _transactions(frame, params, run)
    run.progress(0.1, "summarising purchases per customer")
    summary = _summarise(log, params)
    _independence(summary, run)
    fits = _fit(summary, params, run)
    run.progress(0.8, "scoring RFM segments")
    customers = _customers(summary, fits, _rfm(log, summary))
    fitted = fits.parameters
    end = log["date"].max().to_period(_FREQ[params.time_unit]).to_timestamp()
    result = CustomerLtvResult(
        customers=customers,
        parameters=fitted,
        segments=_segments(customers),
        transactions=len(log),
        repeat_customers=int((summary["frequency"] > 0).sum()),
        observation_end=end.isoformat(),
        horizon_months=params.horizon_months,
        discount_rate=params.discount_rate,
        time_unit=params.time_unit,
        expected_purchases=float(fits.expected_purchases.sum()),
        total_value=float(fits.value.sum()),
        mean_spend=fitted.p * fitted.v / (fitted.q - 1.0),
    )
    run.progress(0.95, "drawing charts")
    return Outcome(
        result=result,
        summary=_summary(result),
        charts=[_segment_chart(result), _alive_chart(result, run.seed)],
    )


# ----------------------------------------------------------------------------- example


def _example_data() -> Records:
    """A year of purchases by 32 customers who join over the first three months, buy at
    their own rate and may stop after any repeat purchase (a BG/NBD process); amounts vary
    around each customer's own mean."""
    rng = random.Random(0)
    start = dt.date(2024, 1, 1)
    rows: Records = []
    for number in range(32):
        rate = rng.gammavariate(2.0, 1 / 60.0)  # purchases a day
        leave = rng.betavariate(1.0, 4.0)
        mean = rng.gammavariate(6.0, 5.0)
        joined = rng.randrange(90)
        day = 0.0
        while joined + day < 365:
            rows.append(
                {
                    "customer": f"C{number:03d}",
                    "date": (start + dt.timedelta(days=joined + int(day))).isoformat(),
                    "amount": round(rng.gammavariate(3.0, mean / 3.0), 2),
                }
            )
            if day > 0 and rng.random() < leave:
                break
            day += rng.expovariate(rate)
    return rows


METHOD: Method[CustomerLtvParams, CustomerLtvResult] = Method(
    name="customer_ltv",
    summary="Customer lifetime value from a transaction log: BG/NBD purchases and activity, "
    "Gamma-Gamma spend, and RFM segments.",
    params=CustomerLtvParams,
    result=CustomerLtvResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=CustomerLtvParams(customer="customer", date="date", amount="amount"),
    ),
    numeric_param="amount",
    min_rows=2 * MIN_CUSTOMERS,
)
