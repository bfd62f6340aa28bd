"""spend_pattern: recurring payments, the seasonality of spend, and unusual payments.

From dated payments (date, payee, amount):

- **Recurring payments.** Each payee's payments, in date order, give the days between them.
  Their median names the period when it falls in that period's window of days (weekly 5-9,
  biweekly 12-16, monthly 24-38, quarterly 80-102, yearly 350-380: calendar months of 28 to
  31 days and a few days' jitter fit); the payee is recurring when it was paid at least
  ``min_payments`` times and at least ``min_regularity`` of its intervals fall in the window.
  Each gets its typical amount (the median) and how much that varies (robust coefficient of
  variation), how much its intervals jitter, the next expected date (the last plus one
  period, calendar-aware) and whether it is still active.
- **Seasonality.** Total spend per day (days without a payment count as zero) grouped by day
  of the week, tested with the Kruskal-Wallis H test (daily totals are skewed, heavy-tailed
  and often zero, so ranks rather than means); and the totals of complete calendar months
  grouped by month of the year (from two years of data on: an effect must repeat), tested
  with one-way ANOVA (a month's total sums many payments, so it is close to normal, and with
  two or three totals per month of the year ranks could barely ever reach significance).
- **Unusual payments.** Amounts are compared on a log scale (spend is skewed: twice the
  typical amount is as far out as half of it). A payment is unusual when its robust z-score
  (distance from the median over MAD * 1.4826; over the mean absolute deviation * 1.2533
  when the MAD is 0, as for a fixed rent; Iglewicz and Hoaglin) passes
  ``outlier_threshold``: against the payee's own payments for a payee paid at least five
  times, else against the payments of all the rarely paid payees that are not recurring
  (large ones only; a recurring payee paid less often, such as a yearly one, is not judged).
  Amounts of zero or less (refunds) are not judged.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.engines.analytics.methods.anomaly import MAD_TO_SD
from aiplatform.engines.analytics.methods.customer_ltv import transaction_times

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "RecurringPayment",
    "SeasonLevel",
    "Seasonality",
    "SpendPatternParams",
    "SpendPatternResult",
    "UnusualPayment",
]

#: Mean absolute deviation * this estimates the standard deviation of normal data; the
#: robust z-score's scale when more than half the values are equal (MAD = 0).
MEAN_AD_TO_SD = 1.2533
#: A payee paid at least this often is its own reference for unusual payments.
PAYEE_REFERENCE = 5
#: The month-of-year test needs this many complete months (two cycles).
MONTHS_FOR_TEST = 24
#: At most this many unusual payments are listed (the most unusual first).
MAX_LISTED = 1_000
#: The payments chart draws at most this many usual payments (a seeded sample) besides the
#: unusual ones.
CHART_PAYMENTS = 5_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

SeasonTest = Literal["kruskal", "anova"]


@dataclass(frozen=True, slots=True)
class _Period:
    name: str
    #: Nominal length in days.
    days: float
    #: Intervals in [low, high] days count as this period.
    low: float
    high: float
    #: The calendar step to the next payment: (months, days).
    step: tuple[int, int]


_PERIODS = (
    _Period("weekly", 7.0, 5.0, 9.0, (0, 7)),
    _Period("biweekly", 14.0, 12.0, 16.0, (0, 14)),
    _Period("monthly", 365.25 / 12, 24.0, 38.0, (1, 0)),
    _Period("quarterly", 365.25 / 4, 80.0, 102.0, (3, 0)),
    _Period("yearly", 365.25, 350.0, 380.0, (12, 0)),
)


class SpendPatternParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with the payment's date (ISO 8601 text).
    date: str
    #: Column naming the payee (merchant, creditor) of each payment.
    payee: str
    #: Numeric column with the amount paid (spend is the sum of amounts as given).
    amount: str
    #: Fewest payments to a payee for it to count as recurring.
    min_payments: Annotated[int, msgspec.Meta(ge=3, le=1000)] = 3
    #: Smallest share of a payee's intervals that must fall in its period's window.
    min_regularity: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.8
    #: Robust z-score beyond which a payment is unusual (3.5: Iglewicz and Hoaglin).
    outlier_threshold: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 3.5
    #: Significance level of the seasonality tests.
    alpha: Annotated[float, msgspec.Meta(gt=0.0, lt=0.5)] = 0.05


class RecurringPayment(msgspec.Struct, kw_only=True):
    payee: str
    #: "weekly", "biweekly", "monthly", "quarterly" or "yearly".
    period: str
    #: Median days between payments.
    interval_days: float
    #: Robust standard deviation of the days between payments (the dates' jitter).
    interval_sd: float
    #: Share of the intervals in the period's window (1: every one).
    regularity: float
    payments: int
    #: Typical amount: the median.
    amount: float
    #: Robust coefficient of variation of the amounts, MAD * 1.4826 / |median| (0: the same
    #: amount in most payments); None when the typical amount is 0.
    amount_variation: float | None
    #: Typical amount times payments per year.
    annual_amount: float
    #: Dates of the first and the last payment (ISO 8601).
    first: str
    last: str
    #: The last payment plus one period (calendar months for monthly and longer periods).
    next_expected: str
    #: The last payment is at most one period's window before the end of the data.
    active: bool


class SeasonLevel(msgspec.Struct, kw_only=True):
    #: "Jan".."Dec" or "Mon".."Sun".
    label: str
    #: Mean total spend: per day for weekdays, per month for months; None when the data hold
    #: no such day or complete month.
    mean: float | None
    #: Days, or complete months, behind the mean.
    count: int


class Seasonality(msgspec.Struct, kw_only=True):
    #: "weekday" (daily totals) or "month" (totals of complete calendar months).
    by: str
    #: "kruskal" (Kruskal-Wallis H test, for the daily totals) or "anova" (one-way ANOVA F
    #: test, for the monthly totals).
    test: str
    levels: list[SeasonLevel]
    #: H or F; None when the test cannot be made (see ``note``).
    statistic: float | None
    p_value: float | None
    #: p_value < alpha.
    significant: bool | None
    #: The share of the variance the grouping explains (0..1): epsilon squared (of the ranks)
    #: for Kruskal-Wallis, eta squared for ANOVA.
    effect_size: float | None
    #: Why the test was not made, when it was not.
    note: str | None = None


class UnusualPayment(msgspec.Struct, kw_only=True):
    #: The payment's row in the data (0-based).
    row: int
    date: str
    payee: str
    amount: float
    #: The typical amount it is compared with (the median of the reference payments).
    typical: float
    #: Robust z-score of the amount's log.
    z: float
    #: "payee": against the payee's own payments; "overall": against the payments of
    #: rarely paid payees.
    basis: str


class SpendPatternResult(msgspec.Struct, kw_only=True):
    #: Recurring payees, highest annual amount first.
    recurring: list[RecurringPayment]
    #: By weekday, then by month.
    seasonality: list[Seasonality]
    #: Unusual payments, most unusual first (at most 1000 listed).
    unusual: list[UnusualPayment]
    #: Payments used (rows with a date, a payee and an amount).
    payments: int
    #: Distinct payees.
    payees: int
    #: Sum of all amounts.
    total: float
    #: Share of the total paid to recurring payees.
    recurring_share: float | None
    #: Date of the first payment (ISO 8601).
    first: str
    #: Date of the last payment: the end of the data.
    last: str


# ----------------------------------------------------------------------------- input


def _payments(frame: pd.DataFrame, params: SpendPatternParams, run: Run) -> pd.DataFrame:
    """(row, date, payee, amount), roles checked, rows missing a value left out with a
    warning, in date order."""
    import pandas as pd

    dates = transaction_times(frame, params.date, "date")
    payee = columns.column(frame, params.payee, "payee")
    amount = columns.numeric(frame, params.amount, "amount", allow_constant=True)
    table = pd.DataFrame(
        {"row": range(len(frame)), "date": dates.dt.normalize(), "payee": payee, "amount": amount}
    )
    missing = table.isna().any(axis=1)
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows miss a date, payee or amount; they are left out.")
    table = table[~missing].assign(payee=lambda rows: rows["payee"].astype(str))
    columns.require_rows(len(table), 2, "spend_pattern (rows with a date, payee and amount)")
    return table.sort_values(["date", "row"], kind="stable").reset_index(drop=True)


def _iso(value: Any) -> str:
    return str(value.date().isoformat())


# ----------------------------------------------------------------------------- recurring


def _mad_sd(values: np.ndarray) -> float:
    """MAD * 1.4826: the standard deviation of normal data, unmoved by a few outliers."""
    import numpy as np

    return float(np.median(np.abs(values - np.median(values)))) * MAD_TO_SD


def _recurring_one(
    payee: str, group: pd.DataFrame, end: pd.Timestamp, params: SpendPatternParams
) -> RecurringPayment | None:
    """The payee as a recurring payment, or None when its payments are not regular."""
    import numpy as np
    import pandas as pd

    if len(group) < params.min_payments:
        return None
    intervals = np.diff(group["date"].to_numpy()).astype("timedelta64[s]").astype(float) / 86_400
    median = float(np.median(intervals))
    period = next((p for p in _PERIODS if p.low <= median <= p.high), None)
    if period is None:
        return None
    regularity = float(np.mean((intervals >= period.low) & (intervals <= period.high)))
    if regularity < params.min_regularity:
        return None
    amounts = group["amount"].to_numpy(dtype=float)
    typical = float(np.median(amounts))
    first, last = group["date"].iloc[0], group["date"].iloc[-1]
    months, days = period.step
    following = last + pd.DateOffset(months=months, days=days)
    return RecurringPayment(
        payee=payee,
        period=period.name,
        interval_days=median,
        interval_sd=_mad_sd(intervals),
        regularity=regularity,
        payments=len(group),
        amount=typical,
        amount_variation=_mad_sd(amounts) / abs(typical) if typical != 0 else None,
        annual_amount=typical * 365.25 / period.days,
        first=_iso(first),
        last=_iso(last),
        next_expected=_iso(following),
        active=bool((end - last).days <= period.high),
    )


def _recurring(table: pd.DataFrame, params: SpendPatternParams, run: Run) -> list[RecurringPayment]:
    end = table["date"].iloc[-1]
    found: list[RecurringPayment] = []
    groups = list(table.groupby("payee", sort=True))
    for number, (payee, group) in enumerate(groups):
        if number % 500 == 0:
            run.progress(0.1 + 0.3 * number / len(groups), "looking for recurring payments")
        item = _recurring_one(str(payee), group, end, params)
        if item is not None:
            found.append(item)
    return sorted(found, key=lambda item: (-abs(item.annual_amount), item.payee))


def _names(recurring: list[RecurringPayment]) -> set[str]:
    return {item.payee for item in recurring}


# ----------------------------------------------------------------------------- seasonality


def _tested(
    by: str,
    labels: tuple[str, ...],
    groups: list[np.ndarray],
    *,
    alpha: float,
    note: str | None,
    test: SeasonTest,
) -> Seasonality:
    """Levels and the test of ``groups`` (one per label) differing: the test is made when
    ``note`` is None, at least two groups have values and the values vary within them."""
    import numpy as np

    levels = [
        SeasonLevel(
            label=label,
            mean=float(np.mean(values)) if len(values) else None,
            count=len(values),
        )
        for label, values in zip(labels, groups, strict=True)
    ]
    present = [values for values in groups if len(values)]
    within = sum(float(np.sum((values - np.mean(values)) ** 2)) for values in present)
    if note is None and len(present) < 2:
        note = "fewer than two groups have values"
    if note is None and within == 0:
        note = "the totals do not vary within the groups"
    if note is not None:
        return Seasonality(
            by=by,
            test=test,
            levels=levels,
            statistic=None,
            p_value=None,
            significant=None,
            effect_size=None,
            note=note,
        )
    statistic, p_value, effect = _test(present, test)
    return Seasonality(
        by=by,
        test=test,
        levels=levels,
        statistic=statistic,
        p_value=p_value,
        significant=bool(p_value < alpha),
        effect_size=effect,
    )


def _test(groups: list[np.ndarray], test: SeasonTest) -> tuple[float, float, float]:
    """The statistic, p-value and effect size: Kruskal-Wallis H with epsilon squared
    (H / (n - 1)), or one-way ANOVA F with eta squared (between / total sum of squares)."""
    import numpy as np
    from scipy import stats

    pooled = np.concatenate(groups)
    if test == "kruskal":
        statistic, p_value = stats.kruskal(*groups)
        return float(statistic), float(p_value), float(statistic) / (len(pooled) - 1)
    statistic, p_value = stats.f_oneway(*groups)
    grand = float(np.mean(pooled))
    between = sum(len(values) * (float(np.mean(values)) - grand) ** 2 for values in groups)
    total = float(np.sum((pooled - grand) ** 2))
    return float(statistic), float(p_value), between / total


def _by_weekday(table: pd.DataFrame, alpha: float) -> Seasonality:
    import pandas as pd

    days = pd.date_range(table["date"].iloc[0], table["date"].iloc[-1], freq="D")
    daily = table.groupby("date")["amount"].sum().reindex(days, fill_value=0.0)
    weekday = daily.index.dayofweek.to_numpy()
    values = daily.to_numpy(dtype=float)
    groups = [values[weekday == day] for day in range(7)]
    note = None if len(days) >= 14 else "fewer than two weeks of data"
    return _tested("weekday", _WEEKDAYS, groups, alpha=alpha, note=note, test="kruskal")


def _by_month(table: pd.DataFrame, alpha: float) -> Seasonality:
    """Totals of the calendar months the data cover completely, by month of the year."""
    import numpy as np
    import pandas as pd

    first, last = table["date"].iloc[0], table["date"].iloc[-1]
    months = table["date"].dt.to_period("M")
    totals = table.groupby(months)["amount"].sum()
    span = pd.period_range(first.to_period("M"), last.to_period("M"), freq="M")
    totals = totals.reindex(span, fill_value=0.0)
    complete = [
        period
        for period in span
        if period.start_time >= first and period.end_time.normalize() <= last
    ]
    totals = totals.loc[complete]
    month = np.array([period.month for period in totals.index], dtype=int)
    values = totals.to_numpy(dtype=float)
    groups = [values[month == number] for number in range(1, 13)]
    note = (
        None
        if len(complete) >= MONTHS_FOR_TEST
        else f"{len(complete)} complete months; testing the month of the year needs "
        f"{MONTHS_FOR_TEST} (two years)"
    )
    return _tested("month", _MONTHS, groups, alpha=alpha, note=note, test="anova")


# ----------------------------------------------------------------------------- unusual


def _robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores: distance from the median over MAD * 1.4826, or over the mean
    absolute deviation * 1.2533 when more than half the values are equal; zeros when the
    values do not vary."""
    import numpy as np

    deviation = values - np.median(values)
    scale = _mad_sd(values) or float(np.mean(np.abs(deviation))) * MEAN_AD_TO_SD
    return np.asarray(deviation / scale) if scale > 0 else np.zeros_like(values)


def _unusual(
    table: pd.DataFrame, recurring: list[RecurringPayment], params: SpendPatternParams
) -> list[UnusualPayment]:
    """Positive payments, on a log scale: those of often paid payees against the payee's
    own, the large ones of rarely paid payees that are not recurring against each other."""
    import numpy as np

    spend = table[table["amount"] > 0]
    sizes = spend.groupby("payee")["amount"].transform("size")
    found: list[UnusualPayment] = []
    for _, group in spend[sizes >= PAYEE_REFERENCE].groupby("payee", sort=True):
        amounts = group["amount"].to_numpy(dtype=float)
        z = _robust_z(np.log(amounts))
        typical = float(np.median(amounts))
        for k in np.flatnonzero(np.abs(z) > params.outlier_threshold):
            found.append(_flagged(group.iloc[int(k)], float(z[k]), typical, "payee"))
    rare = spend[(sizes < PAYEE_REFERENCE) & ~spend["payee"].isin(_names(recurring))]
    if len(rare) >= PAYEE_REFERENCE:
        amounts = rare["amount"].to_numpy(dtype=float)
        z = _robust_z(np.log(amounts))
        typical = float(np.median(amounts))
        for k in np.flatnonzero(z > params.outlier_threshold):
            found.append(_flagged(rare.iloc[int(k)], float(z[k]), typical, "overall"))
    return sorted(found, key=lambda item: (-abs(item.z), item.row))


def _flagged(payment: pd.Series, z: float, typical: float, basis: str) -> UnusualPayment:
    return UnusualPayment(
        row=int(payment["row"]),
        date=_iso(payment["date"]),
        payee=str(payment["payee"]),
        amount=float(payment["amount"]),
        typical=typical,
        z=z,
        basis=basis,
    )


# ----------------------------------------------------------------------------- output


def _monthly_chart(table: pd.DataFrame, recurring: list[RecurringPayment]) -> dict[str, Any]:
    names = _names(recurring)
    kind = table["payee"].map(lambda payee: "recurring" if payee in names else "other")
    totals = table.groupby([table["date"].dt.to_period("M"), kind])["amount"].sum()
    return charts.bar(
        [
            {"month": str(month), "kind": str(which), "amount": float(amount)}
            for (month, which), amount in totals.items()
        ],
        charts.field("month", "ordinal", title="month"),
        charts.field("amount", "quantitative", title="spend"),
        color=charts.field("kind", "nominal", title=None),
        title="Spend per month: recurring payments and the rest",
    )


def _weekday_chart(season: Seasonality) -> dict[str, Any]:
    return charts.bar(
        [{"weekday": level.label, "mean": level.mean} for level in season.levels],
        charts.field("weekday", "ordinal", title="day of week", sort=list(_WEEKDAYS)),
        charts.field("mean", "quantitative", title="mean spend per day"),
        title="Mean daily spend by day of the week",
    )


def _payments_chart(
    table: pd.DataFrame, unusual: list[UnusualPayment], seed: int
) -> dict[str, Any]:
    """Every unusual payment and up to :data:`CHART_PAYMENTS` others (a seeded sample)."""
    flagged = {item.row for item in unusual}
    rows = [int(row) for row in table["row"]]
    usual = [k for k, row in enumerate(rows) if row not in flagged]
    if len(usual) > CHART_PAYMENTS:
        usual = random.Random(seed).sample(usual, CHART_PAYMENTS)
    shown = sorted([*usual, *(k for k, row in enumerate(rows) if row in flagged)])
    return charts.point(
        [
            {
                "date": table["date"].iloc[k],
                "amount": float(table["amount"].iloc[k]),
                "payee": str(table["payee"].iloc[k]),
                "unusual": "unusual" if rows[k] in flagged else "usual",
            }
            for k in shown
        ],
        charts.field("date", "temporal", title="date"),
        charts.field("amount", "quantitative", title="amount"),
        color=charts.field(
            "unusual",
            "nominal",
            title=None,
            scale={"domain": ["usual", "unusual"], "range": ["#9aa5b1", "#d62728"]},
        ),
        tooltip=[charts.field("payee", "nominal"), charts.field("amount", "quantitative")],
        title="Payments, unusual ones marked",
    )


def _season_text(season: Seasonality, alpha: float) -> str:
    what = "day of the week" if season.by == "weekday" else "month of the year"
    if season.p_value is None:
        return f"Spend by {what} was not tested ({season.note})."
    present = [level for level in season.levels if level.mean is not None]
    peak = max(present, key=lambda level: level.mean or 0.0)
    verdict = "differs" if season.significant else "does not differ significantly"
    test = "Kruskal-Wallis" if season.test == "kruskal" else "ANOVA"
    return (
        f"Spend by {what} {verdict} ({test} p = {season.p_value:.3g}, alpha "
        f"{alpha:g}); highest on {peak.label} (mean {peak.mean:.4g})."
    )


def _summary(result: SpendPatternResult, params: SpendPatternParams) -> str:
    text = (
        f"{result.payments} payments to {result.payees} payees from {result.first} to "
        f"{result.last}, {result.total:.2f} in all. "
    )
    if result.recurring:
        listed = "; ".join(
            f"{item.payee} {item.period} about {item.amount:.2f}" for item in result.recurring[:5]
        )
        share = result.recurring_share or 0.0
        text += (
            f"{len(result.recurring)} recurring payments ({share:.0%} of spend): {listed}"
            f"{'; ...' if len(result.recurring) > 5 else ''}. "
        )
    else:
        text += "No recurring payment was found. "
    text += " ".join(_season_text(season, params.alpha) for season in result.seasonality)
    if result.unusual:
        top = result.unusual[0]
        text += (
            f" {len(result.unusual)} unusual payments; the most unusual: {top.amount:.2f} to "
            f"{top.payee} on {top.date} (typically {top.typical:.2f})."
        )
    else:
        text += " No payment is unusual."
    return text


def compute(
    frame: pd.DataFrame, params: SpendPatternParams, run: Run
) -> Outcome[SpendPatternResult]:
    table = _payments(frame, params, run)
    run.progress(0.1, "looking for recurring payments")
    recurring = _recurring(table, params, run)
    run.progress(0.45, "testing seasonality")
    seasonality = [_by_weekday(table, params.alpha), _by_month(table, params.alpha)]
    run.progress(0.7, "looking for unusual payments")
    unusual = _unusual(table, recurring, params)
    if len(unusual) > MAX_LISTED:
        run.warn(f"{len(unusual)} payments are unusual; the {MAX_LISTED} most unusual are listed.")
    total = float(table["amount"].sum())
    paid = float(table.loc[table["payee"].isin(_names(recurring)), "amount"].sum())
    result = SpendPatternResult(
        recurring=recurring,
        seasonality=seasonality,
        unusual=unusual[:MAX_LISTED],
        payments=len(table),
        payees=int(table["payee"].nunique()),
        total=total,
        recurring_share=paid / total if total != 0 else None,
        first=_iso(table["date"].iloc[0]),
        last=_iso(table["date"].iloc[-1]),
    )
    run.progress(0.9, "drawing charts")
    return Outcome(
        result=result,
        summary=_summary(result, params),
        charts=[
            _monthly_chart(table, recurring),
            _weekday_chart(seasonality[0]),
            _payments_chart(table, result.unusual, run.seed),
        ],
    )


# ----------------------------------------------------------------------------- example


def _example_data() -> Records:
    """Fourteen months of a household's payments: rent on the 1st, a streaming subscription
    around the 15th (one charge ten times too high), insurance every quarter, and one-off
    purchases at shops, more of them on Saturdays."""
    rng = random.Random(0)
    start = dt.date(2023, 1, 1)
    rows: Records = []
    for month in range(14):
        first = dt.date(2023 + month // 12, month % 12 + 1, 1)
        rows.append({"date": first.isoformat(), "payee": "Landlord", "amount": 950.0})
        charge = 129.9 if month == 9 else 12.99
        day = first + dt.timedelta(days=14 + rng.randint(-2, 2))
        rows.append({"date": day.isoformat(), "payee": "StreamCo", "amount": charge})
        if month % 3 == 0:
            rows.append({"date": first.isoformat(), "payee": "Insurer", "amount": 180.0})
    shops = ("Grocer", "Bakery", "Bookshop", "Pharmacy", "Hardware", "Cafe")
    for _ in range(90):
        day = start + dt.timedelta(days=rng.randrange(425))
        if day.weekday() != 5 and rng.random() < 0.5:
            day += dt.timedelta(days=(5 - day.weekday()) % 7)
        amount = round(rng.lognormvariate(3.0, 0.6), 2)
        rows.append({"date": day.isoformat(), "payee": rng.choice(shops), "amount": amount})
    return sorted(rows, key=lambda row: str(row["date"]))


METHOD: Method[SpendPatternParams, SpendPatternResult] = Method(
    name="spend_pattern",
    summary="Recurring payments with their period and amount, seasonality of spend by weekday "
    "and month (tested), and unusual payments.",
    params=SpendPatternParams,
    result=SpendPatternResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=SpendPatternParams(date="date", payee="payee", amount="amount"),
    ),
    numeric_param="amount",
    min_rows=10,
)
