"""inventory_optimization: how much to order, when to reorder and how much safety stock to keep,
per item, from its demand history.

Each item's demand per period gives its mean ``d`` and sample standard deviation ``s_d``
(ddof 1; periods without a row are not counted, so a period without demand needs a row with
0). Annual demand is ``D = d * periods_per_year``; the economic order quantity is
``EOQ = sqrt(2 D S / H)`` for the ordering cost ``S`` per order and the holding cost ``H`` per
unit and year (given, or ``holding_rate`` times the item's unit cost). For a cycle service
level ``p`` (the chance of no stock-out while an order is under way), ``z`` is the standard
normal quantile of ``p`` and the safety stock is ``z * s_d * sqrt(L)`` for a lead time of
``L`` periods, or ``z * sqrt(L s_d^2 + d^2 s_L^2)`` when the lead time varies with standard
deviation ``s_L``; the reorder point is the mean demand during the lead time, ``d L``, plus
the safety stock. Items are classed A, B and C by annual demand value ``D * unit cost`` (by
annual units without a unit cost), as in a Pareto analysis.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.engines.analytics.methods.cost_optimization import abc_labels, dates_as_days
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "METHOD",
    "InventoryClass",
    "InventoryOptimizationParams",
    "InventoryOptimizationResult",
    "ItemPolicy",
]

#: Periods per year for a step of about this many days: (shortest, longest, per year).
_CALENDAR = (
    (1 / 24 * 0.9, 1 / 24 * 1.1, 8_760.0),
    (0.9, 1.1, 365.0),
    (6.5, 7.5, 52.0),
    (27.5, 31.5, 12.0),
    (88.0, 93.0, 4.0),
    (360.0, 367.0, 1.0),
)
#: The charts draw at most this many items (the highest annual demand value).
CHART_ITEMS = 40


class InventoryOptimizationParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column naming each row's item.
    item: str
    #: Numeric column with the item's demand in the row's period (0 or more).
    demand: str
    #: Column with the period (ISO 8601 times or numbers); with times, ``periods_per_year``
    #: may be left out. None: ``periods_per_year`` must be given.
    period: str | None = None
    #: Periods per year, to turn demand per period into annual demand. None: from the
    #: period column's step (hourly 8760, daily 365, weekly 52, monthly 12, quarterly 4,
    #: yearly 1).
    periods_per_year: Annotated[float, msgspec.Meta(gt=0.0, le=1_000_000.0)] | None = None
    #: Lead time in periods, for every item.
    lead_time: Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0)] | None = None
    #: Numeric column with each item's lead time in periods (its mean over the item's rows);
    #: instead of ``lead_time``.
    lead_time_column: str | None = None
    #: Standard deviation of the lead time in periods, for every item.
    lead_time_std: Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0)] | None = None
    #: Numeric column with each item's lead-time standard deviation (its mean over the
    #: item's rows); instead of ``lead_time_std``.
    lead_time_std_column: str | None = None
    #: Numeric column with each item's unit cost (its mean over the item's rows): ABC by
    #: annual demand value, and the holding cost with ``holding_rate``.
    unit_cost: str | None = None
    #: Cost of placing one order.
    ordering_cost: Annotated[float, msgspec.Meta(gt=0.0)]
    #: Cost of holding one unit for a year.
    holding_cost: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    #: Cost of holding one unit for a year as a share of its unit cost (0.25: 25%); instead
    #: of ``holding_cost``, with ``unit_cost``.
    holding_rate: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)] | None = None
    #: Cycle service level: the chance of no stock-out during a lead time.
    service_level: Annotated[float, msgspec.Meta(ge=0.5, lt=1.0)] = 0.95
    #: Cumulative share of annual demand value class A reaches.
    a_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.8
    #: Cumulative share classes A and B reach (above ``a_threshold``).
    b_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.95


class ItemPolicy(msgspec.Struct, kw_only=True):
    item: str
    #: Demand values (periods) the item has.
    periods: int
    #: Mean demand per period.
    mean_demand: float
    #: Sample standard deviation of demand per period.
    demand_std: float
    #: Mean demand per period times periods per year.
    annual_demand: float
    #: In periods.
    lead_time: float
    #: In periods; 0 when the lead time is taken as fixed.
    lead_time_std: float
    #: None without a unit cost column.
    unit_cost: float | None
    #: Per unit and year.
    holding_cost: float
    #: Economic order quantity: sqrt(2 * annual demand * ordering cost / holding cost).
    eoq: float
    #: Annual demand / EOQ; None without demand.
    orders_per_year: float | None
    safety_stock: float
    #: Mean demand during the lead time plus the safety stock.
    reorder_point: float
    #: Annual demand times unit cost (annual units without a unit cost).
    annual_value: float
    #: "A", "B" or "C".
    abc_class: str
    #: Orders per year times the ordering cost.
    annual_ordering_cost: float
    #: (EOQ / 2 + safety stock) times the holding cost.
    annual_holding_cost: float


class InventoryClass(msgspec.Struct, kw_only=True):
    #: "A", "B" or "C".
    name: str
    items: int
    annual_value: float
    share: float


class InventoryOptimizationResult(msgspec.Struct, kw_only=True):
    #: The cycle service level the safety stocks are sized for.
    service_level: float
    #: Standard normal quantile of the service level.
    z: float
    #: Periods per year used (given, or inferred from the period column).
    periods_per_year: float
    #: What the ABC classes rank: "value" (annual demand times unit cost) or "units".
    abc_basis: str
    #: One per item, highest annual value first.
    items: list[ItemPolicy]
    #: Classes A, B and C: how many items and how much annual value each holds.
    classes: list[InventoryClass]


# ----------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The rows with an item and a demand (per-row parameters NaN where not given), and the
    periods per year."""

    table: pd.DataFrame
    per_year: float


def _refuse_pair(given: list[str | float | None], names: tuple[str, str], needed: bool) -> None:
    """Exactly one (``needed``) or at most one of two alternative params."""
    count = sum(value is not None for value in given)
    if count > 1 or (needed and count == 0):
        raise InvalidRequestError(
            f"Give {'exactly' if needed else 'at most'} one of {names[0]} and {names[1]}.",
            param=f"params.{names[0]}",
            code="conflicting_params" if count > 1 else "missing_param",
        )


def _item_column(frame: pd.DataFrame, name: str) -> pd.Series:
    series = columns.column(frame, name, "item")
    if series.isna().all():
        raise InvalidRequestError(
            f"Column '{name}' given as item has no values (all missing).",
            param="params.item",
            code="all_missing",
        )
    return series.where(series.isna(), series.astype(str))


def _optional(frame: pd.DataFrame, name: str | None, role: str) -> pd.Series | float:
    """The numeric column ``name`` (a value may repeat), or NaN when it is not given."""
    if name is None:
        return math.nan
    return columns.numeric(frame, name, role, allow_constant=True)


def _refuse_negative(
    values: dict[str, pd.Series | float], params: InventoryOptimizationParams
) -> None:
    import pandas as pd

    for role, series in values.items():
        if isinstance(series, pd.Series) and bool((series < 0).any()):
            raise InvalidRequestError(
                f"Column '{getattr(params, role)}' given as {role} holds a negative value at "
                f"row {int((series < 0).to_numpy().argmax())}; it must be 0 or more.",
                param=f"params.{role}",
                code="negative_value",
            )


def _per_year(
    frame: pd.DataFrame, items: pd.Series, params: InventoryOptimizationParams, run: Run
) -> float:
    """``periods_per_year`` as given, or from the median step between an item's periods."""
    import numpy as np
    import pandas as pd

    if params.period is None:
        if params.periods_per_year is None:
            raise InvalidRequestError(
                "Give periods_per_year, or a period column with times to infer it from.",
                param="params.periods_per_year",
                code="missing_param",
            )
        return params.periods_per_year
    series = columns.column(frame, params.period, "period")
    numeric = pd.api.types.is_numeric_dtype(series) and series.dtype != bool
    days = dates_as_days(frame, params.period, "period")
    if params.periods_per_year is not None:
        return params.periods_per_year
    if numeric:
        raise InvalidRequestError(
            f"Column '{params.period}' holds numbers, not times: give periods_per_year.",
            param="params.periods_per_year",
            code="missing_param",
        )
    steps = [
        np.diff(np.unique(group.dropna().to_numpy(dtype=float)))
        for _, group in days.groupby(items, sort=False)
    ]
    flat = np.concatenate([step for step in steps if len(step)] or [np.zeros(0)])
    if len(flat) == 0:
        raise InvalidRequestError(
            "No item has two periods to infer periods_per_year from; give it.",
            param="params.periods_per_year",
            code="missing_param",
        )
    step = float(np.median(flat))
    for low, high, per_year in _CALENDAR:
        if low <= step <= high:
            return per_year
    run.warn(
        f"The periods are {step:.3g} days apart, no calendar unit: periods_per_year is taken "
        f"as 365.2425 / {step:.3g} = {365.2425 / step:.4g}."
    )
    return 365.2425 / step


def _inputs(frame: pd.DataFrame, params: InventoryOptimizationParams, run: Run) -> _Inputs:
    """Every column role checked, then the rows with a demand, and each param consistent."""
    import pandas as pd

    items = _item_column(frame, params.item)
    demand = columns.numeric(frame, params.demand, "demand", allow_constant=True)
    lead = _optional(frame, params.lead_time_column, "lead_time_column")
    lead_std = _optional(frame, params.lead_time_std_column, "lead_time_std_column")
    cost = _optional(frame, params.unit_cost, "unit_cost")
    per_year = _per_year(frame, items, params, run)
    _refuse_pair(
        [params.lead_time, params.lead_time_column], ("lead_time", "lead_time_column"), True
    )
    _refuse_pair(
        [params.lead_time_std, params.lead_time_std_column],
        ("lead_time_std", "lead_time_std_column"),
        False,
    )
    _refuse_pair([params.holding_cost, params.holding_rate], ("holding_cost", "holding_rate"), True)
    if params.holding_rate is not None and params.unit_cost is None:
        raise InvalidRequestError(
            "holding_rate needs a unit_cost column (the holding cost is rate * unit cost).",
            param="params.unit_cost",
            code="missing_param",
        )
    if params.b_threshold <= params.a_threshold:
        raise InvalidRequestError(
            f"b_threshold ({params.b_threshold:g}) must be above a_threshold "
            f"({params.a_threshold:g}).",
            param="params.b_threshold",
            code="invalid_thresholds",
        )
    _refuse_negative(
        {
            "demand": demand,
            "lead_time_column": lead,
            "lead_time_std_column": lead_std,
            "unit_cost": cost,
        },
        params,
    )
    table = pd.DataFrame(
        {"item": items, "demand": demand, "lead": lead, "lead_std": lead_std, "cost": cost}
    )
    kept = table["item"].notna() & table["demand"].notna()
    if not bool(kept.all()):
        run.warn(f"{int((~kept).sum())} rows without an item or a demand are left out.")
    return _Inputs(table=table[kept], per_year=per_year)


# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class _Item:
    name: str
    periods: int
    mean: float
    std: float
    lead: float
    lead_std: float
    cost: float | None


def _per_item(inputs: _Inputs, params: InventoryOptimizationParams, run: Run) -> list[_Item]:
    """Each item's demand statistics and parameters; items with fewer than two demand values
    are left out (no spread to size safety stock on)."""
    found: list[_Item] = []
    short: list[str] = []
    for name, group in inputs.table.groupby("item", sort=True):
        demand = group["demand"].to_numpy(dtype=float)
        if len(demand) < 2:
            short.append(str(name))
            continue
        lead = params.lead_time if params.lead_time is not None else _mean(group["lead"])
        lead_std = (
            params.lead_time_std
            if params.lead_time_std is not None
            else _mean(group["lead_std"])
            if params.lead_time_std_column is not None
            else None
        )
        cost = _mean(group["cost"]) if params.unit_cost is not None else None
        for role, value in (
            ("lead_time_column", lead),
            ("lead_time_std_column", lead_std),
            ("unit_cost", cost),
        ):
            if value is not None and math.isnan(value):
                raise InvalidRequestError(
                    f"Item '{name}' has no value in the {role} column '{getattr(params, role)}'.",
                    param=f"params.{role}",
                    code="missing_value",
                )
        found.append(
            _Item(
                name=str(name),
                periods=len(demand),
                mean=float(demand.mean()),
                std=float(demand.std(ddof=1)),
                lead=float(lead),
                lead_std=0.0 if lead_std is None else float(lead_std),
                cost=cost,
            )
        )
    if short:
        run.warn(
            f"{len(short)} items with fewer than two demand values are left out: "
            f"{', '.join(short[:10])}{', ...' if len(short) > 10 else ''}."
        )
    columns.require_rows(len(found), 1, "an item with at least two demand values")
    return found


def _mean(values: pd.Series) -> float:
    present = values.dropna()
    return float(present.mean()) if len(present) else math.nan


def safety_stock(z: float, mean: float, std: float, lead: float, lead_std: float) -> float:
    """``z * std * sqrt(lead)``, or ``z * sqrt(lead std^2 + mean^2 lead_std^2)`` when the
    lead time varies."""
    if lead_std == 0:
        return z * std * math.sqrt(lead)
    return z * math.sqrt(lead * std**2 + mean**2 * lead_std**2)


def _policy(
    item: _Item, z: float, per_year: float, params: InventoryOptimizationParams
) -> ItemPolicy:
    annual = item.mean * per_year
    holding = (
        params.holding_cost
        if params.holding_cost is not None
        else float(params.holding_rate or 0.0) * float(item.cost or 0.0)
    )
    if holding <= 0:
        raise InvalidRequestError(
            f"Item '{item.name}' has a unit cost of 0, so holding_rate gives it no holding "
            "cost; give holding_cost instead.",
            param="params.holding_rate",
            code="zero_holding_cost",
        )
    eoq = math.sqrt(2 * annual * params.ordering_cost / holding)
    stock = safety_stock(z, item.mean, item.std, item.lead, item.lead_std)
    orders = annual / eoq if eoq > 0 else None
    return ItemPolicy(
        item=item.name,
        periods=item.periods,
        mean_demand=item.mean,
        demand_std=item.std,
        annual_demand=annual,
        lead_time=item.lead,
        lead_time_std=item.lead_std,
        unit_cost=item.cost,
        holding_cost=holding,
        eoq=eoq,
        orders_per_year=orders,
        safety_stock=stock,
        reorder_point=item.mean * item.lead + stock,
        annual_value=annual * item.cost if item.cost is not None else annual,
        abc_class="",
        annual_ordering_cost=(orders or 0.0) * params.ordering_cost,
        annual_holding_cost=(eoq / 2 + stock) * holding,
    )


def _classed(
    policies: list[ItemPolicy], params: InventoryOptimizationParams
) -> tuple[list[ItemPolicy], list[InventoryClass]]:
    ranked = sorted(policies, key=lambda policy: (-policy.annual_value, policy.item))
    labels = abc_labels(
        [policy.annual_value for policy in ranked], params.a_threshold, params.b_threshold
    )
    ranked = [
        msgspec.structs.replace(policy, abc_class=label)
        for policy, label in zip(ranked, labels, strict=True)
    ]
    total = sum(policy.annual_value for policy in ranked)
    classes = []
    for label in "ABC":
        value = sum(policy.annual_value for policy in ranked if policy.abc_class == label)
        classes.append(
            InventoryClass(
                name=label,
                items=sum(policy.abc_class == label for policy in ranked),
                annual_value=value,
                share=value / total if total > 0 else 0.0,
            )
        )
    return ranked, classes


# ----------------------------------------------------------------------------- output


def _value_chart(result: InventoryOptimizationResult) -> dict[str, Any]:
    shown = result.items[:CHART_ITEMS]
    return charts.bar(
        [{"item": p.item, "value": p.annual_value, "class": p.abc_class} for p in shown],
        charts.field("item", "nominal", title="item", sort=[p.item for p in shown]),
        charts.field(
            "value",
            "quantitative",
            title="annual demand value" if result.abc_basis == "value" else "annual demand",
        ),
        color=charts.field(
            "class",
            "nominal",
            title="class",
            scale={"domain": ["A", "B", "C"], "range": ["#1f77b4", "#ff7f0e", "#9aa5b1"]},
        ),
        title="Items by annual demand value, classes A, B and C",
    )


def _reorder_chart(result: InventoryOptimizationResult) -> dict[str, Any]:
    shown = result.items[:CHART_ITEMS]
    data = [
        {"item": p.item, "units": value, "part": part}
        for p in shown
        for value, part in (
            (p.mean_demand * p.lead_time, "demand during lead time"),
            (p.safety_stock, "safety stock"),
        )
    ]
    return charts.bar(
        data,
        charts.field("item", "nominal", title="item", sort=[p.item for p in shown]),
        charts.field("units", "quantitative", title="units", stack="zero"),
        color=charts.field("part", "nominal", title=None),
        title=f"Reorder points at a {result.service_level:.0%} service level",
    )


def _summary(result: InventoryOptimizationResult) -> str:
    a = result.classes[0]
    top = result.items[0]
    return (
        f"{len(result.items)} items at a {result.service_level:.1%} cycle service level "
        f"(z = {result.z:.3f}), {result.periods_per_year:g} periods a year. Class A holds "
        f"{a.items} items and {a.share:.1%} of annual demand "
        f"{'value' if result.abc_basis == 'value' else 'units'}. The largest, {top.item}, "
        f"orders {top.eoq:,.1f} units at a time (EOQ), keeps {top.safety_stock:,.1f} as safety "
        f"stock and reorders at {top.reorder_point:,.1f}."
    )


def compute(
    frame: pd.DataFrame, params: InventoryOptimizationParams, run: Run
) -> Outcome[InventoryOptimizationResult]:
    from scipy.stats import norm

    inputs = _inputs(frame, params, run)
    run.progress(0.2, "summarising demand per item")
    items = _per_item(inputs, params, run)
    z = float(norm.ppf(params.service_level))
    policies = []
    for index, item in enumerate(items):
        run.progress(0.3 + 0.5 * index / len(items), "sizing orders and safety stock")
        policies.append(_policy(item, z, inputs.per_year, params))
    ranked, classes = _classed(policies, params)
    result = InventoryOptimizationResult(
        service_level=params.service_level,
        z=z,
        periods_per_year=inputs.per_year,
        abc_basis="value" if params.unit_cost is not None else "units",
        items=ranked,
        classes=classes,
    )
    if params.unit_cost is None:
        run.warn("Without a unit_cost column the ABC classes rank annual demand in units.")
    run.progress(0.9, "drawing charts")
    return Outcome(
        result=result,
        summary=_summary(result),
        charts=[_value_chart(result), _reorder_chart(result)],
    )


def _example_data() -> Records:
    """Two years of monthly demand for eight parts of very different value, each with its
    supplier's lead time in months and its unit cost."""
    rng = random.Random(0)
    parts = [
        ("bearing", 120.0, 35.0, 1.0),
        ("gasket", 400.0, 2.5, 0.5),
        ("motor", 15.0, 420.0, 2.0),
        ("pump", 8.0, 950.0, 3.0),
        ("seal", 260.0, 4.0, 0.5),
        ("sensor", 40.0, 85.0, 1.5),
        ("valve", 60.0, 60.0, 1.0),
        ("filter", 180.0, 12.0, 0.75),
    ]
    data: Records = []
    for month in range(24):
        when = dt.date(2023 + month // 12, month % 12 + 1, 1).isoformat()
        for name, mean, cost, lead in parts:
            demand = max(0, round(rng.gauss(mean, 0.25 * mean)))
            data.append(
                {
                    "month": when,
                    "part": name,
                    "demand": demand,
                    "lead_time_months": lead,
                    "unit_cost": cost,
                }
            )
    return data


METHOD: Method[InventoryOptimizationParams, InventoryOptimizationResult] = Method(
    name="inventory_optimization",
    summary="Inventory policy per item: economic order quantity, safety stock for a service "
    "level, reorder point and ABC classes by annual demand value",
    params=InventoryOptimizationParams,
    result=InventoryOptimizationResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=InventoryOptimizationParams(
            item="part",
            demand="demand",
            period="month",
            lead_time_column="lead_time_months",
            unit_cost="unit_cost",
            ordering_cost=75.0,
            holding_rate=0.25,
        ),
    ),
    numeric_param="demand",
    min_rows=2,
)
