"""profit_margin: gross, operating and net margins by segment, their trend, and the mix effect.

Rows are summed per segment (product, region) and period. Gross profit is revenue minus the
cost of goods sold, operating profit gross profit minus operating expenses, net profit the
operating (or, without operating expenses, the gross) profit minus the other expenses
(interest, tax, one-offs); each margin is its profit over revenue. A margin's trend is the
least-squares slope over the periods in order (scipy's ``linregress``, with its p-value).

The total margin of a period is the revenue-weighted mean of the segments' margins, so its
change between two periods splits exactly into a rate effect (each segment's margin change at
its old share: sum of s0 * dm), a mix effect (each share change at its old margin: sum of
ds * m0) and their interaction (sum of ds * dm); the Shapley split gives the interaction half
to each (shares and margins averaged over the two periods). A segment without revenue in one
of the two periods (entering or leaving) contributes its whole change to the mix effect.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.engines.analytics.methods.budget_variance import labels, period_order
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METHOD", "ProfitMarginParams", "ProfitMarginResult"]

Level = Literal["gross", "operating", "net"]
_LEVELS: tuple[Level, ...] = ("gross", "operating", "net")
#: Fewest periods a margin trend is fitted over.
_TREND_PERIODS = 3


class ProfitMarginParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column naming each row's product or segment.
    segment: str
    #: Numeric column with revenue (zero or more).
    revenue: str
    #: Numeric column with the cost of goods sold.
    cogs: str
    #: Numeric column with operating expenses. None: no operating margin.
    operating_expenses: str | None = None
    #: Numeric columns subtracted below operating profit (interest, tax, one-offs; a
    #: negative value is income). Empty: no net margin.
    other_expenses: Annotated[list[str], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    #: Column with each row's period (text, dates or numbers). None: one period, no trend
    #: and no mix analysis.
    period: str | None = None
    #: The period the mix analysis starts from. None: the first period.
    base_period: str | None = None
    #: The period the mix analysis compares with it. None: the last period.
    compare_period: str | None = None
    #: The margin the mix analysis explains. None: the deepest one the columns give (net,
    #: else operating, else gross).
    mix_margin: Level | None = None


class Margins(msgspec.Struct, kw_only=True):
    #: The segment (None: all segments together).
    segment: str | None
    #: The period (None: all periods together).
    period: str | None
    revenue: float
    gross_profit: float
    #: gross_profit / revenue; None when there is no revenue.
    gross_margin: float | None
    #: None without an operating_expenses column.
    operating_profit: float | None
    operating_margin: float | None
    #: None without other_expenses columns.
    net_profit: float | None
    net_margin: float | None
    #: The segment's share of the revenue of its period (of all revenue when period is None);
    #: None for a total or when there is no revenue.
    revenue_share: float | None


class MarginTrend(msgspec.Struct, kw_only=True):
    #: None: all segments together.
    segment: str | None
    margin: Level
    #: Change of the margin per period (least squares over the periods in order).
    slope: float
    #: p-value of a zero slope; None when the margin does not vary.
    p_value: float | None
    #: Periods with a margin the slope was fitted over.
    periods: int


class MixPart(msgspec.Struct, kw_only=True):
    segment: str
    base_share: float
    compare_share: float
    #: None when the segment has no revenue in that period.
    base_margin: float | None
    compare_margin: float | None
    rate_effect: float
    mix_effect: float
    interaction: float
    shapley_rate_effect: float
    shapley_mix_effect: float


class MixDecomposition(msgspec.Struct, kw_only=True):
    margin: Level
    base_period: str
    compare_period: str
    #: The total margin in each period.
    base_margin: float
    compare_margin: float
    #: compare_margin - base_margin = rate_effect + mix_effect + interaction
    #: = shapley_rate_effect + shapley_mix_effect.
    total_change: float
    rate_effect: float
    mix_effect: float
    interaction: float
    shapley_rate_effect: float
    shapley_mix_effect: float
    #: Each segment's part of the effects.
    segments: list[MixPart]


class ProfitMarginResult(msgspec.Struct, kw_only=True):
    #: Each segment over all periods, in order of first appearance.
    segments: list[Margins]
    #: Each segment in each period (empty without a period column).
    by_period: list[Margins]
    #: All segments together, per period in time order (one entry without a period column).
    totals: list[Margins]
    #: Each margin's slope per period, for every segment and the total (empty with fewer
    #: than three periods).
    trends: list[MarginTrend]
    #: What explains the change of the total margin between two periods (None with fewer
    #: than two periods).
    mix: MixDecomposition | None


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    #: segment, period, revenue, cogs, and opex / other when given.
    rows: pd.DataFrame
    periods: list[str]
    segments: list[str]
    levels: tuple[Level, ...]


def _table(frame: pd.DataFrame, params: ProfitMarginParams, run: Run) -> _Table:
    import pandas as pd

    segments = labels(frame, params.segment, "segment")
    revenue = columns.numeric(frame, params.revenue, "revenue", allow_constant=True)
    cogs = columns.numeric(frame, params.cogs, "cogs", allow_constant=True)
    parts = {"revenue": revenue, "cogs": cogs}
    if params.operating_expenses is not None:
        parts["opex"] = columns.numeric(
            frame, params.operating_expenses, "operating_expenses", allow_constant=True
        )
    if params.other_expenses:
        other = columns.numeric_columns(
            frame, params.other_expenses, "other_expenses", allow_constant=True
        )
        parts["other"] = other.sum(axis=1, min_count=len(params.other_expenses))
    periods = (
        pd.Series([""] * len(frame), index=frame.index)
        if params.period is None
        else labels(frame, params.period, "period")
    )
    rows = pd.DataFrame({"segment": segments, "period": periods, **parts})
    missing = rows[list(parts)].isna().any(axis=1)
    if bool(missing.all()):
        raise InvalidRequestError(
            "No row has every amount the margins need.", param="data", code="no_complete_rows"
        )
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows with a missing amount were left out.")
        rows = rows[~missing]
    negative = rows["revenue"] < 0
    if bool(negative.any()):
        raise InvalidRequestError(
            f"Column '{params.revenue}' given as revenue holds a negative amount at row "
            f"{negative.idxmax()}; revenue is zero or more (book returns as "
            "a cost).",
            param="params.revenue",
            code="negative_revenue",
        )
    levels: tuple[Level, ...] = ("gross",)
    if params.operating_expenses is not None:
        levels += ("operating",)
    if params.other_expenses:
        levels += ("net",)
    return _Table(
        rows=rows,
        periods=period_order(list(dict.fromkeys(rows["period"]))),
        segments=list(dict.fromkeys(rows["segment"])),
        levels=levels,
    )


def _margins(
    sums: pd.Series, segment: str | None, period: str | None, share_of: float | None
) -> Margins:
    """The profits and margins of summed amounts."""
    revenue = float(sums["revenue"])
    gross = revenue - float(sums["cogs"])
    operating = gross - float(sums["opex"]) if "opex" in sums else None
    above = gross if operating is None else operating
    net_profit = above - float(sums["other"]) if "other" in sums else None
    share = None if share_of is None or share_of <= 0 else revenue / share_of
    return _margin_row(segment, period, revenue, (gross, operating, net_profit), share)


def _margin_row(
    segment: str | None,
    period: str | None,
    revenue: float,
    profits: tuple[float, float | None, float | None],
    revenue_share: float | None,
) -> Margins:
    """The margins of a revenue and its (gross, operating, net) profits; a margin of no
    revenue is None."""

    def margin(profit: float | None) -> float | None:
        return None if profit is None or revenue <= 0 else profit / revenue

    gross, operating, net = profits
    return Margins(
        segment=segment,
        period=period,
        revenue=revenue,
        gross_profit=gross,
        gross_margin=margin(gross),
        operating_profit=operating,
        operating_margin=margin(operating),
        net_profit=net,
        net_margin=margin(net),
        revenue_share=revenue_share,
    )


def _amounts(table: _Table) -> list[str]:
    return [name for name in ("revenue", "cogs", "opex", "other") if name in table.rows]


def _by_segment(table: _Table) -> list[Margins]:
    sums = table.rows.groupby("segment", sort=False)[_amounts(table)].sum()
    total = float(sums["revenue"].sum())
    return [_margins(row, str(name), None, total) for name, row in sums.iterrows()]


def _by_period(table: _Table, given: bool) -> tuple[list[Margins], list[Margins]]:
    """Each segment in each period, and each period's total."""
    amounts = _amounts(table)
    totals = table.rows.groupby("period", sort=False)[amounts].sum()
    period_totals = [
        _margins(totals.loc[period], None, period if given else None, None)
        for period in table.periods
    ]
    if not given:
        return [], period_totals
    sums = table.rows.groupby(["segment", "period"], sort=False)[amounts].sum()
    cells = [
        _margins(sums.loc[(segment, period)], segment, period, float(totals.loc[period, "revenue"]))
        for segment in table.segments
        for period in table.periods
        if (segment, period) in sums.index
    ]
    return cells, period_totals


def _margin_of(margins: Margins, level: Level) -> float | None:
    value: float | None = getattr(margins, f"{level}_margin")
    return value


def _profit_of(margins: Margins, level: Level) -> float:
    value: float | None = getattr(margins, f"{level}_profit")
    if value is None:
        raise ValueError(f"no {level} profit")
    return value


# --- trends --------------------------------------------------------------------------------


def _trend(series: list[Margins], periods: list[str], level: Level) -> MarginTrend | None:
    from scipy.stats import linregress

    place = {period: index for index, period in enumerate(periods)}
    points = [
        (float(place[str(item.period)]), value)
        for item in series
        if (value := _margin_of(item, level)) is not None
    ]
    if len(points) < _TREND_PERIODS:
        return None
    x, y = zip(*points, strict=True)
    if max(y) == min(y):
        return MarginTrend(
            segment=series[0].segment, margin=level, slope=0.0, p_value=None, periods=len(y)
        )
    fit = linregress(x, y)
    p_value = float(fit.pvalue)
    return MarginTrend(
        segment=series[0].segment,
        margin=level,
        slope=float(fit.slope),
        p_value=p_value if math.isfinite(p_value) else None,
        periods=len(y),
    )


def _trends(cells: list[Margins], totals: list[Margins], table: _Table) -> list[MarginTrend]:
    if len(table.periods) < _TREND_PERIODS:
        return []
    groups = [[cell for cell in cells if cell.segment == segment] for segment in table.segments]
    found: list[MarginTrend] = []
    for series in [totals, *groups]:
        for level in table.levels:
            trend = _trend(series, table.periods, level)
            if trend is not None:
                found.append(trend)
    return found


# --- the mix effect ------------------------------------------------------------------------


def _chosen_periods(params: ProfitMarginParams, periods: list[str]) -> tuple[str, str] | None:
    """The base and compare periods (given, else the first and the last)."""
    for name in ("base_period", "compare_period"):
        value = getattr(params, name)
        if value is not None and params.period is None:
            raise InvalidRequestError(
                f"{name} needs params.period, the column with each row's period.",
                param="params.period",
                code="period_needed",
            )
        if value is not None and value not in periods:
            shown = ", ".join(repr(period) for period in periods[:20])
            raise InvalidRequestError(
                f"Period {value!r} given as {name} is not in the data (periods: {shown}).",
                param=f"params.{name}",
                code="unknown_period",
            )
    if len(periods) < 2:
        return None
    base = params.base_period if params.base_period is not None else periods[0]
    compare = params.compare_period if params.compare_period is not None else periods[-1]
    if base == compare:
        raise InvalidRequestError(
            f"base_period and compare_period are both {base!r}; the mix analysis compares two "
            "periods.",
            param="params.compare_period",
            code="same_period",
        )
    return base, compare


def _mix_level(params: ProfitMarginParams, levels: tuple[Level, ...]) -> Level:
    if params.mix_margin is None:
        return levels[-1]
    if params.mix_margin not in levels:
        needs = "operating_expenses" if params.mix_margin == "operating" else "other_expenses"
        raise InvalidRequestError(
            f"mix_margin {params.mix_margin!r} needs params.{needs}.",
            param="params.mix_margin",
            code="margin_unavailable",
        )
    return params.mix_margin


def _mix_part(
    segment: str,
    before: Margins | None,
    after: Margins | None,
    totals: tuple[float, float],
    level: Level,
) -> MixPart:
    """One segment's share of the effects; ``totals``: each period's total revenue."""
    s0 = 0.0 if before is None else before.revenue / totals[0]
    s1 = 0.0 if after is None else after.revenue / totals[1]
    m0 = None if before is None else _margin_of(before, level)
    m1 = None if after is None else _margin_of(after, level)
    if m0 is None or m1 is None:
        # Entering or leaving: its whole change of contribution is mix.
        c0 = 0.0 if before is None else _profit_of(before, level) / totals[0]
        c1 = 0.0 if after is None else _profit_of(after, level) / totals[1]
        return MixPart(
            segment=segment,
            base_share=s0,
            compare_share=s1,
            base_margin=m0,
            compare_margin=m1,
            rate_effect=0.0,
            mix_effect=c1 - c0,
            interaction=0.0,
            shapley_rate_effect=0.0,
            shapley_mix_effect=c1 - c0,
        )
    return MixPart(
        segment=segment,
        base_share=s0,
        compare_share=s1,
        base_margin=m0,
        compare_margin=m1,
        rate_effect=s0 * (m1 - m0),
        mix_effect=(s1 - s0) * m0,
        interaction=(s1 - s0) * (m1 - m0),
        shapley_rate_effect=(s0 + s1) / 2 * (m1 - m0),
        shapley_mix_effect=(s1 - s0) * (m0 + m1) / 2,
    )


def _mix(
    params: ProfitMarginParams, table: _Table, cells: list[Margins], totals: list[Margins]
) -> MixDecomposition | None:
    chosen = _chosen_periods(params, table.periods)
    level = _mix_level(params, table.levels)
    if chosen is None or params.period is None:
        return None
    base, compare = chosen
    ends = {total.period: total for total in totals}
    first, last = ends[base], ends[compare]
    if first.revenue <= 0 or last.revenue <= 0:
        empty = base if first.revenue <= 0 else compare
        raise UnprocessableEntityError(
            f"Period {empty!r} has no revenue, so it has no margin to compare.",
            code="no_revenue",
        )
    cell = {(item.segment, item.period): item for item in cells}
    parts = [
        _mix_part(
            segment,
            cell.get((segment, base)),
            cell.get((segment, compare)),
            (first.revenue, last.revenue),
            level,
        )
        for segment in table.segments
        if (segment, base) in cell or (segment, compare) in cell
    ]
    m0 = _profit_of(first, level) / first.revenue
    m1 = _profit_of(last, level) / last.revenue
    return MixDecomposition(
        margin=level,
        base_period=base,
        compare_period=compare,
        base_margin=m0,
        compare_margin=m1,
        total_change=m1 - m0,
        rate_effect=math.fsum(part.rate_effect for part in parts),
        mix_effect=math.fsum(part.mix_effect for part in parts),
        interaction=math.fsum(part.interaction for part in parts),
        shapley_rate_effect=math.fsum(part.shapley_rate_effect for part in parts),
        shapley_mix_effect=math.fsum(part.shapley_mix_effect for part in parts),
        segments=parts,
    )


# --- the computation -----------------------------------------------------------------------


def compute(
    frame: pd.DataFrame, params: ProfitMarginParams, run: Run
) -> Outcome[ProfitMarginResult]:
    run.progress(0.1, "summing revenue and costs")
    table = _table(frame, params, run)
    run.progress(0.3, "computing margins by segment and period")
    segments = _by_segment(table)
    cells, totals = _by_period(table, params.period is not None)
    run.progress(0.5, "fitting margin trends")
    trends = _trends(cells, totals, table)
    run.progress(0.7, "splitting the change of the total margin")
    mix = _mix(params, table, cells, totals)
    result = ProfitMarginResult(
        segments=segments, by_period=cells, totals=totals, trends=trends, mix=mix
    )
    run.progress(0.9, "drawing the margins")
    views = [_segment_chart(result, table.levels)]
    if params.period is not None and len(table.periods) > 1:
        views.append(_period_chart(result, table))
    if mix is not None:
        views.append(_mix_chart(mix))
    return Outcome(result=result, summary=_summary(result, table), charts=views)


# --- summary and charts --------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _points(value: float) -> str:
    return f"{100 * value:+.2f} points"


def _summary(result: ProfitMarginResult, table: _Table) -> str:
    level = table.levels[-1]
    overall = _margins_total(result)
    ranked = sorted(
        (item for item in result.segments if _margin_of(item, level) is not None),
        key=lambda item: -(_margin_of(item, level) or 0.0),
    )
    text = (
        f"{len(result.segments)} segments, revenue {overall.revenue:,.2f}: gross margin "
        f"{_pct(overall.gross_margin)}"
        + (f", operating {_pct(overall.operating_margin)}" if "operating" in table.levels else "")
        + (f", net {_pct(overall.net_margin)}" if "net" in table.levels else "")
        + "."
    )
    if len(ranked) > 1:
        best, worst = ranked[0], ranked[-1]
        text += (
            f" Highest {level} margin: {best.segment} ({_pct(_margin_of(best, level))}); lowest: "
            f"{worst.segment} ({_pct(_margin_of(worst, level))})."
        )
    total_trend = next((t for t in result.trends if t.segment is None and t.margin == level), None)
    if total_trend is not None:
        p = "n/a" if total_trend.p_value is None else f"{total_trend.p_value:.3g}"
        text += (
            f" The total {level} margin moves {_points(total_trend.slope)} per period over "
            f"{total_trend.periods} periods (p = {p})."
        )
    mix = result.mix
    if mix is not None:
        text += (
            f" From {mix.base_period} to {mix.compare_period} the total {mix.margin} margin "
            f"went from {_pct(mix.base_margin)} to {_pct(mix.compare_margin)} "
            f"({_points(mix.total_change)}): rate effect {_points(mix.rate_effect)}, mix "
            f"effect {_points(mix.mix_effect)}, interaction {_points(mix.interaction)}."
        )
    return text


def _margins_total(result: ProfitMarginResult) -> Margins:
    """All segments over all periods."""
    revenue = math.fsum(item.revenue for item in result.segments)
    gross = math.fsum(item.gross_profit for item in result.segments)
    operating = (
        None
        if result.segments[0].operating_profit is None
        else math.fsum(item.operating_profit or 0.0 for item in result.segments)
    )
    net = (
        None
        if result.segments[0].net_profit is None
        else math.fsum(item.net_profit or 0.0 for item in result.segments)
    )

    return _margin_row(None, None, revenue, (gross, operating, net), None)


def _segment_chart(result: ProfitMarginResult, levels: tuple[Level, ...]) -> dict[str, Any]:
    rows = [
        {"segment": item.segment, "margin": level, "value": _margin_of(item, level)}
        for item in result.segments
        for level in levels
    ]
    return charts.bar(
        rows,
        charts.field("segment", "nominal", title=None, sort=None),
        charts.field("value", "quantitative", title="margin", axis={"format": "%"}),
        title="Margins by segment",
        color=charts.field("margin", "nominal", title=None, sort=list(levels)),
        xOffset=charts.field("margin", "nominal", sort=list(levels)),
    )


def _period_chart(result: ProfitMarginResult, table: _Table) -> dict[str, Any]:
    level = table.levels[-1]
    rows = [
        {"period": item.period, "segment": item.segment, "margin": _margin_of(item, level)}
        for item in result.by_period
    ] + [
        {"period": item.period, "segment": "all segments", "margin": _margin_of(item, level)}
        for item in result.totals
    ]
    return charts.line(
        rows,
        charts.field("period", "ordinal", title="period", sort=list(table.periods)),
        charts.field("margin", "quantitative", title=f"{level} margin", axis={"format": "%"}),
        title=f"{level.capitalize()} margin by period",
        color=charts.field("segment", "nominal", title=None),
    )


def _mix_chart(mix: MixDecomposition) -> dict[str, Any]:
    rows = [
        {"part": "rate effect", "change": mix.rate_effect},
        {"part": "mix effect", "change": mix.mix_effect},
        {"part": "interaction", "change": mix.interaction},
        {"part": "total change", "change": mix.total_change},
    ]
    return charts.bar(
        rows,
        charts.field("part", "nominal", title=None, sort=[row["part"] for row in rows]),
        charts.field("change", "quantitative", title="change of margin", axis={"format": "%"}),
        title=(
            f"What moved the total {mix.margin} margin from {mix.base_period} to "
            f"{mix.compare_period}"
        ),
    )


# --- the declaration -----------------------------------------------------------------------


def _example_data() -> list[dict[str, Cell]]:
    """Four quarters of three product lines: licences (high margin) shrink as hardware (low
    margin) grows, so the total margin falls though no line's own margin does much."""
    rows: list[dict[str, Cell]] = []
    lines = (
        ("Licences", 400_000.0, -30_000.0, 0.10, 0.45),
        ("Services", 250_000.0, 5_000.0, 0.45, 0.25),
        ("Hardware", 150_000.0, 60_000.0, 0.70, 0.12),
    )
    for quarter in range(4):
        when = dt.date(2024, 3 * quarter + 1, 1).isoformat()
        for name, revenue, growth, cost_share, opex_share in lines:
            amount = revenue + growth * quarter
            drift = 0.005 * quarter * (1 if name == "Services" else -1)
            rows.append(
                {
                    "quarter": when,
                    "product": name,
                    "revenue": round(amount, 2),
                    "cogs": round(amount * (cost_share + drift), 2),
                    "opex": round(amount * opex_share, 2),
                    "interest": 4_000.0,
                    "tax": round(amount * 0.05, 2),
                }
            )
    return rows


METHOD: Method[ProfitMarginParams, ProfitMarginResult] = Method(
    name="profit_margin",
    summary="Gross, operating and net margins by segment, their trend, and the mix effect.",
    params=ProfitMarginParams,
    result=ProfitMarginResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=ProfitMarginParams(
            segment="product",
            revenue="revenue",
            cogs="cogs",
            operating_expenses="opex",
            other_expenses=["interest", "tax"],
            period="quarter",
        ),
    ),
    numeric_param="revenue",
    min_rows=1,
)
