"""budget_variance: actual against budget per line and period, material variances flagged.

Rows are summed per category and period (a line of the budget). Each line's variance is
actual - budget, and its relative variance that over the budget's magnitude. Whether a
variance is favourable depends on the line's type: on a revenue line more than budgeted is
favourable, on a cost line less than budgeted is; the impact on profit is the variance
itself for revenue and its negative for cost, so impacts add up across lines to the change
of profit against budget. A variance is material when it reaches the absolute and/or the
relative threshold (a variance against a zero budget counts as infinitely large relatively).

The module also holds the helpers the profit_margin engine shares: a column read as labels,
and periods put in time order.
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
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METHOD", "BudgetVarianceParams", "BudgetVarianceResult", "labels", "period_order"]

LineType = Literal["revenue", "cost"]
Direction = Literal["favourable", "unfavourable", "on_budget"]

#: Values of a ``line_type`` column read as each type (case and surrounding spaces ignored).
_TYPE_WORDS: dict[str, LineType] = {
    "revenue": "revenue",
    "revenues": "revenue",
    "income": "revenue",
    "sales": "revenue",
    "cost": "cost",
    "costs": "cost",
    "expense": "cost",
    "expenses": "cost",
}
#: Lines and categories a summary names at most.
_NAMED = 3


class BudgetVarianceParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column naming each row's budget line (category, account).
    category: str
    #: Numeric column with the actual amounts.
    actual: str
    #: Numeric column with the budgeted amounts.
    budget: str
    #: Column with each row's period (month, quarter: text, dates or numbers). None: the
    #: data are one period.
    period: str | None = None
    #: Column with each row's line type: "revenue" (also "revenues", "income", "sales") or
    #: "cost" (also "costs", "expense", "expenses"); case is ignored.
    line_type: str | None = None
    #: Line type by category, for the categories the ``line_type`` column does not type.
    line_types: dict[str, LineType] | None = None
    #: The type of every line neither ``line_type`` nor ``line_types`` types. None: such a
    #: line is an error.
    default_line_type: LineType | None = None
    #: Material when |variance| is at least this amount. None: no absolute test.
    threshold_abs: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    #: Material when |variance| / |budget| is at least this share (0.1: 10%). None: no
    #: relative test.
    threshold_rel: Annotated[float, msgspec.Meta(ge=0.0)] | None = 0.1
    #: With both thresholds: "either" flags a variance that reaches one of them, "both" only
    #: one that reaches both.
    materiality: Literal["either", "both"] = "either"


class VarianceLine(msgspec.Struct, kw_only=True):
    category: str
    #: The period's label (None when the data are one period).
    period: str | None
    line_type: LineType
    actual: float
    budget: float
    #: actual - budget.
    variance: float
    #: variance / |budget|; None when the budget is zero.
    relative_variance: float | None
    direction: Direction
    #: The variance's effect on profit: the variance on a revenue line, minus it on a cost
    #: line (positive: favourable).
    impact: float
    material: bool


class VariancePeriod(msgspec.Struct, kw_only=True):
    period: str
    #: Revenue actual minus budget, over the period's revenue lines.
    revenue_variance: float
    #: Cost actual minus budget, over its cost lines (negative: under budget).
    cost_variance: float
    #: Effect of all the period's variances on profit: revenue_variance - cost_variance.
    impact: float
    #: Material lines in the period.
    material: int


class BudgetVarianceResult(msgspec.Struct, kw_only=True):
    #: One per category and period, categories in order of first appearance, periods in time
    #: order (or order of first appearance when they are not times).
    lines: list[VarianceLine]
    #: Each category over all periods (the same tests applied to its totals).
    categories: list[VarianceLine]
    #: Per period (empty without a ``period`` column).
    periods: list[VariancePeriod]
    #: Sum of the favourable lines' |variance|.
    favourable_total: float
    #: Sum of the unfavourable lines' |variance|.
    unfavourable_total: float
    #: Effect of every variance on profit: favourable_total - unfavourable_total.
    total_impact: float
    #: How many lines are material.
    material_count: int
    threshold_abs: float | None
    threshold_rel: float | None
    materiality: str


# --- reading the table ---------------------------------------------------------------------


def labels(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    """A column as text labels; a 400 naming it when a value is missing."""
    values = columns.column(frame, name, role)
    missing = values.isna()
    if bool(missing.all()):
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has no values (all missing).",
            param=f"params.{role}",
            code="all_missing",
        )
    if bool(missing.any()):
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has a missing value at row "
            f"{int(missing.to_numpy().argmax())}.",
            param=f"params.{role}",
            code="missing_value",
        )
    return values.map(_label)


def _label(value: Any) -> str:
    """A label as text: whole numbers without a decimal point, times as ISO 8601."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def _types_from_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A ``line_type`` column read as "revenue" / "cost" (missing values stay missing)."""
    values = columns.column(frame, name, "line_type")
    present = values.notna()
    words = values[present].astype(str).str.strip().str.lower()
    typed = words.map(lambda word: _TYPE_WORDS.get(word, "")).reindex(values.index)
    typed = typed.where(present, None)
    unknown = typed == ""
    if bool(unknown.any()):
        row = int(unknown.to_numpy().argmax())
        raise InvalidRequestError(
            f"Column '{name}' given as line_type holds {str(values.iloc[row])[:40]!r} at row "
            f"{row}; a line is 'revenue' or 'cost'.",
            param="params.line_type",
            code="unknown_line_type",
        )
    return typed


def _line_types(
    frame: pd.DataFrame, categories: pd.Series, params: BudgetVarianceParams
) -> dict[str, LineType]:
    """Each category's type: the ``line_type`` column, then ``line_types``, then
    ``default_line_type``; a 400 for a category none of them types, or typed both ways."""
    found: dict[str, LineType] = {}
    if params.line_type is not None:
        typed = _types_from_column(frame, params.line_type)
        for category, kind in zip(categories, typed, strict=True):
            if kind is None:
                continue
            if found.setdefault(category, kind) != kind:
                raise InvalidRequestError(
                    f"Category '{category}' is typed both 'revenue' and 'cost' in column "
                    f"'{params.line_type}'.",
                    param="params.line_type",
                    code="conflicting_line_type",
                )
    for category in dict.fromkeys(categories):
        if category in found:
            continue
        kind = (params.line_types or {}).get(category, params.default_line_type)
        if kind is None:
            raise InvalidRequestError(
                f"Category '{category}' has no line type; give it in the line_type column, in "
                "params.line_types, or set params.default_line_type.",
                param="params.line_types",
                code="missing_line_type",
            )
        found[category] = kind
    return found


@dataclass(frozen=True, slots=True)
class _Table:
    """The rows summed per category and period, in reporting order."""

    frame: pd.DataFrame
    types: dict[str, LineType]
    periods: list[str]


def _table(frame: pd.DataFrame, params: BudgetVarianceParams, run: Run) -> _Table:
    import pandas as pd

    categories = labels(frame, params.category, "category")
    actual = columns.numeric(frame, params.actual, "actual", allow_constant=True)
    budget = columns.numeric(frame, params.budget, "budget", allow_constant=True)
    periods = (
        pd.Series([""] * len(frame), index=frame.index)
        if params.period is None
        else labels(frame, params.period, "period")
    )
    types = _line_types(frame, categories, params)
    missing = actual.isna() | budget.isna()
    if bool(missing.all()):
        raise InvalidRequestError(
            "No row has both an actual and a budgeted amount.",
            param="data",
            code="no_complete_rows",
        )
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows without an actual or a budget were left out.")
    rows = pd.DataFrame(
        {"category": categories, "period": periods, "actual": actual, "budget": budget}
    )[~missing]
    order = period_order(list(dict.fromkeys(rows["period"])))
    summed = rows.groupby(["category", "period"], sort=False)[["actual", "budget"]].sum()
    summed = summed.reset_index()
    rank = {category: index for index, category in enumerate(dict.fromkeys(rows["category"]))}
    place = {period: index for index, period in enumerate(order)}
    summed = summed.assign(
        _c=summed["category"].map(rank), _p=summed["period"].map(place)
    ).sort_values(["_c", "_p"], kind="stable")
    return _Table(
        frame=summed.drop(columns=["_c", "_p"]).reset_index(drop=True),
        types=types,
        periods=order if params.period is not None else [],
    )


def period_order(periods: list[str]) -> list[str]:
    """Periods in time order when every label is a number or an ISO 8601 date (or a year
    and month, "2024-03"), else in order of first appearance."""
    keys: list[float] = []
    for period in periods:
        key = _period_key(period)
        if key is None:
            return periods
        keys.append(key)
    return [period for _, period in sorted(zip(keys, periods, strict=True))]


def _period_key(label: str) -> float | None:
    try:
        return float(label)
    except ValueError:
        pass
    text = label + "-01" if len(label) == 7 else label
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None).timestamp()
    except ValueError:
        return None


# --- variances -----------------------------------------------------------------------------


def _line(
    category: str,
    period: str | None,
    *,
    kind: LineType,
    actual: float,
    budget: float,
    params: BudgetVarianceParams,
) -> VarianceLine:
    variance = actual - budget
    relative = variance / abs(budget) if budget != 0 else None
    sign = 1.0 if kind == "revenue" else -1.0
    impact = sign * variance
    direction: Direction = (
        "on_budget" if variance == 0 else "favourable" if impact > 0 else "unfavourable"
    )
    return VarianceLine(
        category=category,
        period=period,
        line_type=kind,
        actual=actual,
        budget=budget,
        variance=variance,
        relative_variance=relative,
        direction=direction,
        impact=impact,
        material=_material(variance, relative, params),
    )


def _material(variance: float, relative: float | None, params: BudgetVarianceParams) -> bool:
    """Whether the variance reaches the thresholds given (as ``materiality`` combines them);
    no variance is never material."""
    if variance == 0:
        return False
    tests: list[bool] = []
    if params.threshold_abs is not None:
        tests.append(abs(variance) >= params.threshold_abs)
    if params.threshold_rel is not None:
        tests.append(relative is None or abs(relative) >= params.threshold_rel)
    if not tests:
        return False
    return all(tests) if params.materiality == "both" else any(tests)


def _lines(table: _Table, params: BudgetVarianceParams) -> list[VarianceLine]:
    period_given = params.period is not None
    return [
        _line(
            str(row.category),
            str(row.period) if period_given else None,
            kind=table.types[str(row.category)],
            actual=float(row.actual),
            budget=float(row.budget),
            params=params,
        )
        for row in table.frame.itertuples(index=False)
    ]


def _categories(table: _Table, params: BudgetVarianceParams) -> list[VarianceLine]:
    totals = table.frame.groupby("category", sort=False)[["actual", "budget"]].sum()
    return [
        _line(
            str(category),
            None,
            kind=table.types[str(category)],
            actual=float(row["actual"]),
            budget=float(row["budget"]),
            params=params,
        )
        for category, row in totals.iterrows()
    ]


def _periods(lines: list[VarianceLine], order: list[str]) -> list[VariancePeriod]:
    made: list[VariancePeriod] = []
    for period in order:
        inside = [line for line in lines if line.period == period]
        revenue = math.fsum(line.variance for line in inside if line.line_type == "revenue")
        cost = math.fsum(line.variance for line in inside if line.line_type == "cost")
        made.append(
            VariancePeriod(
                period=period,
                revenue_variance=revenue,
                cost_variance=cost,
                impact=revenue - cost,
                material=sum(line.material for line in inside),
            )
        )
    return made


def compute(
    frame: pd.DataFrame, params: BudgetVarianceParams, run: Run
) -> Outcome[BudgetVarianceResult]:
    if params.threshold_abs is None and params.threshold_rel is None:
        run.warn("No threshold is given (threshold_abs, threshold_rel): no variance is material.")
    run.progress(0.1, "summing actuals and budgets per line")
    table = _table(frame, params, run)
    run.progress(0.5, "computing variances")
    lines = _lines(table, params)
    favourable = math.fsum(abs(line.variance) for line in lines if line.direction == "favourable")
    unfavourable = math.fsum(
        abs(line.variance) for line in lines if line.direction == "unfavourable"
    )
    result = BudgetVarianceResult(
        lines=lines,
        categories=_categories(table, params),
        periods=_periods(lines, table.periods),
        favourable_total=favourable,
        unfavourable_total=unfavourable,
        total_impact=favourable - unfavourable,
        material_count=sum(line.material for line in lines),
        threshold_abs=params.threshold_abs,
        threshold_rel=params.threshold_rel,
        materiality=params.materiality,
    )
    run.progress(0.9, "drawing the variances")
    views = [_category_chart(result)]
    if result.periods:
        views.append(_heatmap(result))
    return Outcome(result=result, summary=_summary(result), charts=views)


# --- summary and charts --------------------------------------------------------------------


def _amount(value: float) -> str:
    return f"{value:+,.2f}"


def _where(line: VarianceLine) -> str:
    return line.category if line.period is None else f"{line.category} ({line.period})"


def _summary(result: BudgetVarianceResult) -> str:
    text = (
        f"{len(result.lines)} lines against budget: favourable variances "
        f"{result.favourable_total:,.2f}, unfavourable {result.unfavourable_total:,.2f}, an "
        f"effect on profit of {_amount(result.total_impact)}. "
    )
    material = sorted(
        (line for line in result.lines if line.material), key=lambda line: -abs(line.variance)
    )
    if not material:
        return text + "No variance is material."
    named = "; ".join(
        f"{_where(line)} {_amount(line.variance)}"
        + ("" if line.relative_variance is None else f" ({line.relative_variance:+.1%})")
        + f", {line.direction}"
        for line in material[:_NAMED]
    )
    more = f" and {len(material) - _NAMED} more" if len(material) > _NAMED else ""
    return text + f"{len(material)} material: {named}{more}."


def _category_chart(result: BudgetVarianceResult) -> dict[str, Any]:
    return charts.bar(
        [
            {"category": line.category, "variance": line.variance, "direction": line.direction}
            for line in result.categories
        ],
        charts.field("variance", "quantitative", title="actual - budget"),
        charts.field("category", "nominal", title=None, sort=None),
        title="Variance against budget by category",
        color=charts.field(
            "direction",
            "nominal",
            title=None,
            scale={
                "domain": ["favourable", "unfavourable", "on_budget"],
                "range": ["#2e7d32", "#c62828", "#9e9e9e"],
            },
        ),
    )


def _heatmap(result: BudgetVarianceResult) -> dict[str, Any]:
    return charts.chart(
        [
            {
                "category": line.category,
                "period": line.period,
                "relative": line.relative_variance,
                "impact": line.impact,
                "material": line.material,
            }
            for line in result.lines
        ],
        "rect",
        {
            "x": charts.field("period", "ordinal", title="period", sort=[*result.periods]),
            "y": charts.field("category", "nominal", title=None, sort=None),
            "color": charts.field(
                "impact",
                "quantitative",
                title="effect on profit",
                scale={"scheme": "redyellowgreen", "domainMid": 0},
            ),
            "tooltip": [
                charts.field("relative", "quantitative", title="variance", format=".1%"),
                charts.field("material", "nominal"),
            ],
        },
        title="Effect of each line's variance on profit, by period",
    )


# --- the declaration -----------------------------------------------------------------------


def _example_data() -> list[dict[str, Cell]]:
    """A quarter of a company's monthly budget: two revenue lines and four cost lines, the
    actuals scattered around the plan, hosting running over and travel under."""
    rng = random.Random(0)
    plan: list[tuple[str, str, float, float]] = [
        ("Product sales", "revenue", 120_000.0, 1.0),
        ("Services", "revenue", 35_000.0, 1.0),
        ("Payroll", "cost", 80_000.0, 1.0),
        ("Marketing", "cost", 15_000.0, 1.0),
        ("Cloud hosting", "cost", 9_000.0, 1.25),
        ("Travel", "cost", 4_000.0, 0.6),
    ]
    rows: list[dict[str, Cell]] = []
    for month in ("2024-01", "2024-02", "2024-03"):
        for line, kind, budget, drift in plan:
            actual = budget * drift * rng.uniform(0.93, 1.07)
            rows.append(
                {
                    "month": month,
                    "line": line,
                    "type": kind,
                    "budget": budget,
                    "actual": round(actual, 2),
                }
            )
    return rows


METHOD: Method[BudgetVarianceParams, BudgetVarianceResult] = Method(
    name="budget_variance",
    summary="Actual against budget per line and period: variances, which are material, which "
    "favourable.",
    params=BudgetVarianceParams,
    result=BudgetVarianceResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=BudgetVarianceParams(
            category="line", actual="actual", budget="budget", period="month", line_type="type"
        ),
    ),
    numeric_param="actual",
    min_rows=1,
)
