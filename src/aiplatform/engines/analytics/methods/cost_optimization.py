"""cost_optimization: where spend goes (ABC), which lines paid too much, which payments repeat,
and what fixing them would save.

Spend is ranked by vendor (or any other column): class A is the smallest set of top items whose
spend reaches ``a_threshold`` of the total, class B the items after them up to
``b_threshold``, class C the rest. Unit prices (amount / quantity, a unit price column, or the
amount itself) are scored within each category by the modified z-score of Iglewicz and Hoaglin,
``0.6745 (x - median) / MAD`` (``(x - median) / (1.253314 * mean absolute deviation)`` when
more than half the prices are alike), so a few extreme lines do not hide each other. Payments
of the same vendor and amount (and invoice reference, when given) are taken in date order: the
first is an original, every later one at most ``window_days`` after that original is a
duplicate of it, and the first one beyond starts a new original. The savings are computed from
those findings only: every duplicate's amount, and for each overpriced line what it paid above
its category's median unit price.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "AbcClass",
    "AbcItem",
    "CostOptimizationParams",
    "CostOptimizationResult",
    "DuplicatePayment",
    "PriceOutlier",
    "Savings",
    "VendorSummary",
    "abc_labels",
    "dates_as_days",
    "modified_z",
]

#: MAD / this estimates the standard deviation of normal data (the modified z-score's 0.6745).
MAD_SCALE = 0.6745
#: Mean absolute deviation * this estimates the standard deviation of normal data.
MEAN_AD_SCALE = 1.253314
#: Categories with fewer priced lines than this are not scored.
MIN_CATEGORY_LINES = 5
#: Lists in the result hold at most this many entries (totals count every one).
MAX_LISTED = 1_000
#: The Pareto chart draws this many items; the prices chart at most this many normal lines.
CHART_ITEMS = 30
CHART_LINES = 5_000
#: Seconds per day, for numeric dates.
_DAY = 86_400.0


class CostOptimizationParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column naming each line's vendor (duplicates are matched within a vendor).
    vendor: str
    #: Numeric column with each line's spend; lines with a missing, zero or negative amount
    #: (credits) are left out.
    amount: str
    #: Column whose values are ranked by spend into classes A, B and C. None: ``vendor``.
    abc_by: str | None = None
    #: Column with each line's category: unit prices are compared within a category. None:
    #: all lines form one category.
    category: str | None = None
    #: Numeric column with the units bought: the unit price is amount / quantity (unless
    #: ``unit_price`` is given) and the savings of an overpriced line count its units.
    quantity: str | None = None
    #: Numeric column with each line's unit price. None: amount / quantity, or the amount
    #: itself when neither is given.
    unit_price: str | None = None
    #: Column with each payment's date (ISO 8601 text, or numbers counted in days). None:
    #: duplicates are matched on the invoice reference alone (with neither, they are not
    #: looked for).
    date: str | None = None
    #: Column with the invoice reference; when given, duplicates must share it.
    invoice: str | None = None
    #: Largest gap in days between an original payment and a later one that duplicates it.
    window_days: Annotated[float, msgspec.Meta(ge=0.0, le=3650.0)] = 3.0
    #: Cumulative share of spend class A reaches.
    a_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.8
    #: Cumulative share of spend classes A and B reach (above ``a_threshold``).
    b_threshold: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.95
    #: A unit price whose modified z-score is above this (or below minus this) is an outlier.
    outlier_threshold: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 3.5


class AbcItem(msgspec.Struct, kw_only=True):
    #: A value of the ``abc_by`` column.
    item: str
    spend: float
    #: Share of total spend.
    share: float
    #: Share of total spend of this item and every item ranked above it.
    cumulative_share: float
    #: "A", "B" or "C".
    abc_class: str


class AbcClass(msgspec.Struct, kw_only=True):
    #: "A", "B" or "C".
    name: str
    items: int
    spend: float
    share: float


class PriceOutlier(msgspec.Struct, kw_only=True):
    #: The line's position in the data (0-based).
    row: int
    vendor: str
    #: None when no category column is given.
    category: str | None
    unit_price: float
    #: The median unit price of the line's category.
    category_median: float
    #: Modified z-score of the unit price within its category.
    score: float
    #: "high" (paid above its category) or "low".
    direction: str
    #: What the line paid above its category's median unit price (0 for a low price).
    excess: float


class DuplicatePayment(msgspec.Struct, kw_only=True):
    #: The duplicate's position in the data (0-based).
    row: int
    #: The position of the earlier payment it repeats.
    original_row: int
    vendor: str
    amount: float
    #: The duplicate's invoice reference (None without an invoice column).
    invoice: str | None
    #: Days between the original and the duplicate (None without a date column).
    days_apart: float | None


class VendorSummary(msgspec.Struct, kw_only=True):
    vendor: str
    spend: float
    share: float
    lines: int
    overpriced_lines: int
    duplicate_payments: int
    #: The vendor's duplicates plus its overpriced lines' excess.
    savings: float


class Savings(msgspec.Struct, kw_only=True):
    #: Sum of the duplicate payments' amounts.
    duplicates: float
    #: Sum of what overpriced lines paid above their category's median unit price.
    overpricing: float
    total: float
    #: ``total`` as a share of spend.
    share_of_spend: float


class CostOptimizationResult(msgspec.Struct, kw_only=True):
    #: Sum of the amounts analysed.
    total_spend: float
    #: Lines analysed (positive amounts).
    lines: int
    #: The column spend is ranked by.
    abc_by: str
    #: Items ranked by spend, highest first (at most 1000 listed).
    abc: list[AbcItem]
    #: Classes A, B and C: how many items and how much spend each holds.
    classes: list[AbcClass]
    #: What the prices are: "unit_price" (the column), "amount_per_quantity" or "amount".
    price_basis: str
    #: Lines whose unit price is unusual within their category, highest score first.
    outliers: list[PriceOutlier]
    #: Duplicate payments, in row order.
    duplicates: list[DuplicatePayment]
    #: Vendors, largest savings first (then largest spend).
    vendors: list[VendorSummary]
    #: What removing the duplicates and paying the median unit price would save.
    savings: Savings


# ----------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class _Lines:
    """The lines analysed (positive amounts), one row each, with the original positions."""

    table: pd.DataFrame
    price_basis: str
    has_category: bool
    has_date: bool
    has_invoice: bool


def dates_as_days(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    """The date column as days (a float each, NaN where missing): numbers are taken as days,
    text is read as ISO 8601."""
    import pandas as pd

    series = columns.column(frame, name, role)
    if series.isna().all():
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has no values (all missing).",
            param=f"params.{role}",
            code="all_missing",
        )
    if pd.api.types.is_numeric_dtype(series) and series.dtype != bool:
        values = series.astype(float)
        columns.check_finite(values, name, role)
        return values
    present = series.dropna()
    try:
        times = pd.to_datetime(present.astype(str), format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        raise InvalidRequestError(
            f"Column '{name}' given as {role} must hold ISO 8601 dates or numbers.",
            param=f"params.{role}",
            code="not_a_time",
        ) from None
    seconds = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return (seconds / _DAY).reindex(series.index)


def _text(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    """A column as text (missing stays missing)."""
    series = columns.column(frame, name, role)
    return series.where(series.isna(), series.astype(str))


def _lines(frame: pd.DataFrame, params: CostOptimizationParams, run: Run) -> _Lines:
    """Every column role checked, then the lines with a positive amount and a vendor."""
    import numpy as np
    import pandas as pd

    vendor = columns.categorical(frame, params.vendor, "vendor")
    amount = columns.numeric(frame, params.amount, "amount")
    item = _text(frame, params.abc_by, "abc_by") if params.abc_by is not None else vendor
    category = _text(frame, params.category, "category") if params.category else None
    quantity = (
        columns.numeric(frame, params.quantity, "quantity", allow_constant=True)
        if params.quantity is not None
        else None
    )
    unit_price = (
        columns.numeric(frame, params.unit_price, "unit_price", allow_constant=True)
        if params.unit_price is not None
        else None
    )
    date = dates_as_days(frame, params.date, "date") if params.date is not None else None
    invoice = _text(frame, params.invoice, "invoice") if params.invoice is not None else None
    if params.b_threshold <= params.a_threshold:
        raise InvalidRequestError(
            f"b_threshold ({params.b_threshold:g}) must be above a_threshold "
            f"({params.a_threshold:g}).",
            param="params.b_threshold",
            code="invalid_thresholds",
        )
    units = quantity.where(quantity > 0) if quantity is not None else None
    if unit_price is not None:
        price, basis = unit_price.where(unit_price > 0), "unit_price"
    elif units is not None:
        price, basis = amount / units, "amount_per_quantity"
    else:
        price, basis = amount, "amount"
    table = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "vendor": vendor,
            "item": item,
            "amount": amount,
            "category": category if category is not None else "all",
            "price": price,
            "units": units if units is not None else amount / price,
            "date": date if date is not None else np.nan,
            "invoice": invoice if invoice is not None else None,
        }
    )
    kept = table["amount"].gt(0) & table["vendor"].notna() & table["item"].notna()
    if not bool(kept.all()):
        run.warn(
            f"{int((~kept).sum())} lines without a positive amount, a vendor or an "
            f"'{params.abc_by or params.vendor}' are left out."
        )
    table = table[kept].reset_index(drop=True)
    columns.require_rows(len(table), 2, "cost analysis of lines with a positive amount")
    return _Lines(
        table=table,
        price_basis=basis,
        has_category=category is not None,
        has_date=date is not None,
        has_invoice=invoice is not None,
    )


# ----------------------------------------------------------------------------- ABC


def abc_labels(values: list[float], a_threshold: float, b_threshold: float) -> list[str]:
    """The class of each of ``values`` (ranked highest first): "A" while the share of the
    total ranked above it is below ``a_threshold``, "B" while below ``b_threshold``, else
    "C"; a total of 0 puts everything in A."""
    total = sum(values)
    labels = []
    reached = 0.0
    for value in values:
        before = reached / total if total > 0 else 0.0
        labels.append("A" if before < a_threshold else "B" if before < b_threshold else "C")
        reached += value
    return labels


def _abc(
    table: pd.DataFrame, params: CostOptimizationParams
) -> tuple[list[AbcItem], list[AbcClass]]:
    """Items ranked by spend (ties by name), classed by :func:`abc_labels`."""
    spend = table.groupby("item", sort=True)["amount"].sum()
    ranked = sorted(
        ((str(name), float(value)) for name, value in spend.items()),
        key=lambda pair: (-pair[1], pair[0]),
    )
    total = sum(value for _, value in ranked)
    labels = abc_labels([value for _, value in ranked], params.a_threshold, params.b_threshold)
    items: list[AbcItem] = []
    cumulative = 0.0
    for (name, value), label in zip(ranked, labels, strict=True):
        cumulative += value
        items.append(
            AbcItem(
                item=name,
                spend=value,
                share=value / total,
                cumulative_share=min(cumulative / total, 1.0),
                abc_class=label,
            )
        )
    classes = []
    for label in "ABC":
        members = [item for item in items if item.abc_class == label]
        held = sum(item.spend for item in members)
        classes.append(AbcClass(name=label, items=len(members), spend=held, share=held / total))
    return items, classes


# ----------------------------------------------------------------------------- prices


def modified_z(prices: np.ndarray) -> np.ndarray:
    """Iglewicz and Hoaglin's modified z-scores of ``prices`` (zeros when they hardly vary)."""
    import numpy as np

    median = float(np.median(prices))
    deviation = np.abs(prices - median)
    mad = float(np.median(deviation))
    scale = mad / MAD_SCALE if mad > 0 else MEAN_AD_SCALE * float(np.mean(deviation))
    if scale <= 1e-9 * max(abs(median), 1e-300):
        return np.zeros_like(prices)
    return np.asarray((prices - median) / scale)


def _outliers(
    table: pd.DataFrame, lines: _Lines, params: CostOptimizationParams, run: Run
) -> tuple[list[PriceOutlier], pd.Series]:
    """The lines whose unit price is unusual in their category, and each priced line's score
    (NaN for lines not scored)."""
    import numpy as np
    import pandas as pd

    scores = pd.Series(np.nan, index=table.index)
    priced = table[table["price"].notna() & (table["price"] > 0)]
    if len(priced) < len(table):
        run.warn(f"{len(table) - len(priced)} lines without a positive unit price are not scored.")
    small = 0
    found: list[PriceOutlier] = []
    groups = list(priced.groupby("category", sort=True))
    for index, (name, group) in enumerate(groups):
        run.progress(0.3 + 0.3 * index / len(groups), "scoring unit prices")
        if len(group) < MIN_CATEGORY_LINES:
            small += 1
            continue
        prices = group["price"].to_numpy(dtype=float)
        z = modified_z(prices)
        scores[group.index] = z
        median = float(np.median(prices))
        for position in np.flatnonzero(np.abs(z) > params.outlier_threshold):
            line = group.iloc[int(position)]
            high = bool(z[position] > 0)
            found.append(
                PriceOutlier(
                    row=int(line["row"]),
                    vendor=str(line["vendor"]),
                    category=str(name) if lines.has_category else None,
                    unit_price=float(line["price"]),
                    category_median=median,
                    score=float(z[position]),
                    direction="high" if high else "low",
                    excess=float((line["price"] - median) * line["units"]) if high else 0.0,
                )
            )
    if small:
        run.warn(
            f"{small} categories have fewer than {MIN_CATEGORY_LINES} priced lines; their "
            "prices are not scored."
        )
    found.sort(key=lambda outlier: (-abs(outlier.score), outlier.row))
    return found, scores


# ----------------------------------------------------------------------------- duplicates


def _duplicates(
    table: pd.DataFrame, lines: _Lines, params: CostOptimizationParams, run: Run
) -> list[DuplicatePayment]:
    """Payments repeating an earlier one of the same vendor and amount (and invoice), at most
    ``window_days`` after it; a payment further away starts a new original."""
    if not (lines.has_date or lines.has_invoice):
        run.warn("Duplicate payments are looked for only with a date or an invoice column.")
        return []
    keys = ["vendor", "amount"] + (["invoice"] if lines.has_invoice else [])
    needed = [*keys, "date"] if lines.has_date else keys
    usable = table.dropna(subset=needed)
    if len(usable) < len(table):
        run.warn(
            f"{len(table) - len(usable)} lines without a {' or '.join(needed[2:])} are not "
            "checked for duplicates."
        )
    order = ["date", "row"] if lines.has_date else ["row"]
    found: list[DuplicatePayment] = []
    for _, group in usable.groupby(keys, sort=False):
        if len(group) < 2:
            continue
        original = None
        for _, line in group.sort_values(order).iterrows():
            gap = float(line["date"] - original["date"]) if original is not None else 0.0
            if original is None or (lines.has_date and gap > params.window_days):
                original = line
                continue
            found.append(
                DuplicatePayment(
                    row=int(line["row"]),
                    original_row=int(original["row"]),
                    vendor=str(line["vendor"]),
                    amount=float(line["amount"]),
                    invoice=str(line["invoice"]) if lines.has_invoice else None,
                    days_apart=gap if lines.has_date else None,
                )
            )
    found.sort(key=lambda duplicate: duplicate.row)
    return found


# ----------------------------------------------------------------------------- totals


def _vendors(
    table: pd.DataFrame, outliers: list[PriceOutlier], duplicates: list[DuplicatePayment]
) -> list[VendorSummary]:
    from collections import Counter, defaultdict

    total = float(table["amount"].sum())
    overpriced = Counter(o.vendor for o in outliers if o.direction == "high")
    repeated = Counter(d.vendor for d in duplicates)
    saved: defaultdict[str, float] = defaultdict(float)
    for outlier in outliers:
        saved[outlier.vendor] += outlier.excess
    for duplicate in duplicates:
        saved[duplicate.vendor] += duplicate.amount
    summaries = []
    for name, group in table.groupby("vendor", sort=True):
        vendor = str(name)
        spend = float(group["amount"].sum())
        summaries.append(
            VendorSummary(
                vendor=vendor,
                spend=spend,
                share=spend / total,
                lines=len(group),
                overpriced_lines=overpriced[vendor],
                duplicate_payments=repeated[vendor],
                savings=saved[vendor],
            )
        )
    summaries.sort(key=lambda summary: (-summary.savings, -summary.spend, summary.vendor))
    return summaries


def _savings(
    total: float, outliers: list[PriceOutlier], duplicates: list[DuplicatePayment]
) -> Savings:
    repeated = sum(duplicate.amount for duplicate in duplicates)
    overpricing = sum(outlier.excess for outlier in outliers)
    return Savings(
        duplicates=repeated,
        overpricing=overpricing,
        total=repeated + overpricing,
        share_of_spend=(repeated + overpricing) / total,
    )


def _listed(items: list[Any], what: str, run: Run) -> list[Any]:
    if len(items) > MAX_LISTED:
        run.warn(f"{len(items)} {what}; the first {MAX_LISTED} are listed (totals count all).")
    return items[:MAX_LISTED]


# ----------------------------------------------------------------------------- output


def _pareto_chart(result: CostOptimizationResult) -> dict[str, Any]:
    shown = result.abc[:CHART_ITEMS]
    return charts.bar(
        [
            {"item": item.item, "spend": item.spend, "class": item.abc_class, "share": item.share}
            for item in shown
        ],
        charts.field("item", "nominal", title=result.abc_by, sort=[item.item for item in shown]),
        charts.field("spend", "quantitative", title="spend"),
        color=charts.field(
            "class",
            "nominal",
            title="class",
            scale={"domain": ["A", "B", "C"], "range": ["#1f77b4", "#ff7f0e", "#9aa5b1"]},
        ),
        tooltip=[charts.field("share", "quantitative", format=".1%")],
        title=f"Spend by {result.abc_by}, classes A, B and C",
    )


def _prices_chart(
    table: pd.DataFrame, scores: pd.Series, outliers: list[PriceOutlier], seed: int
) -> dict[str, Any]:
    import numpy as np

    flagged = {outlier.row: outlier.direction for outlier in outliers}
    rows = table["row"].to_numpy()
    scored = scores.notna().to_numpy()
    unusual = scored & np.isin(rows, list(flagged))
    normal = np.flatnonzero(scored & ~unusual)
    if len(normal) > CHART_LINES:
        normal = np.sort(np.random.default_rng(seed).choice(normal, CHART_LINES, replace=False))
    data = [
        {
            "category": table["category"].iloc[i],
            "price": table["price"].iloc[i],
            "row": int(rows[i]),
            "vendor": table["vendor"].iloc[i],
            "line": flagged.get(int(rows[i]), "normal"),
        }
        for i in [*normal, *np.flatnonzero(unusual)]
    ]
    return charts.point(
        data,
        charts.field("category", "nominal", title="category"),
        charts.field("price", "quantitative", title="unit price"),
        color=charts.field(
            "line",
            "nominal",
            title=None,
            scale={"domain": ["normal", "high", "low"], "range": ["#9aa5b1", "#d62728", "#2ca02c"]},
        ),
        tooltip=[charts.field("row", "quantitative"), charts.field("vendor", "nominal")],
        title="Unit prices by category, outliers marked",
    )


def _summary(result: CostOptimizationResult) -> str:
    a = result.classes[0]
    savings = result.savings
    overpriced = sum(outlier.direction == "high" for outlier in result.outliers)
    return (
        f"{result.lines} lines spend {result.total_spend:,.2f} over {len(result.vendors)} "
        f"vendors; class A holds {a.items} of the {sum(c.items for c in result.classes)} "
        f"values of {result.abc_by} and {a.share:.1%} of spend. {len(result.duplicates)} "
        "duplicate payments "
        f"({savings.duplicates:,.2f}) and {overpriced} overpriced lines "
        f"({savings.overpricing:,.2f} above their category's median unit price) make savings "
        f"of {savings.total:,.2f}, {savings.share_of_spend:.1%} of spend."
    )


def compute(
    frame: pd.DataFrame, params: CostOptimizationParams, run: Run
) -> Outcome[CostOptimizationResult]:
    lines = _lines(frame.reset_index(drop=True), params, run)
    table = lines.table
    run.progress(0.1, "ranking spend")
    items, classes = _abc(table, params)
    outliers, scores = _outliers(table, lines, params, run)
    run.progress(0.65, "matching duplicate payments")
    duplicates = _duplicates(table, lines, params, run)
    run.progress(0.85, "adding up savings")
    total = float(table["amount"].sum())
    result = CostOptimizationResult(
        total_spend=total,
        lines=len(table),
        abc_by=params.abc_by or params.vendor,
        abc=_listed(items, "items are ranked", run),
        classes=classes,
        price_basis=lines.price_basis,
        outliers=_listed(outliers, "lines have unusual prices", run),
        duplicates=_listed(duplicates, "payments are duplicates", run),
        vendors=_listed(_vendors(table, outliers, duplicates), "vendors", run),
        savings=_savings(total, outliers, duplicates),
    )
    run.progress(0.95, "drawing charts")
    drawn = [_pareto_chart(result)]
    if bool(scores.notna().any()):
        drawn.append(_prices_chart(table, scores, outliers, run.seed))
    return Outcome(result=result, summary=_summary(result), charts=drawn)


def _example_data() -> Records:
    """Three months of purchase lines from eight vendors over three categories: two payments
    made twice, and two lines bought at far more than their category's usual unit price."""
    rng = random.Random(0)
    vendors = ["Acme", "Borealis", "Cobalt", "Dunmore", "Elm & Co", "Fathom", "Gale", "Harbor"]
    weights = [30, 18, 12, 8, 5, 3, 2, 1]
    prices = {"paper": 4.0, "toner": 55.0, "chairs": 180.0}
    start = dt.date(2024, 1, 1)
    data: Records = []
    for index in range(90):
        vendor = rng.choices(vendors, weights)[0]
        category = rng.choice(sorted(prices))
        quantity = rng.randint(5, 40)
        unit = round(prices[category] * rng.uniform(0.93, 1.07), 2)
        data.append(
            {
                "vendor": vendor,
                "category": category,
                "quantity": quantity,
                "amount": round(quantity * unit, 2),
                "date": (start + dt.timedelta(days=index)).isoformat(),
                "invoice": f"INV-{1000 + index}",
            }
        )
    for row, copy_of, days in ((47, 12, 2), (71, 60, 1)):
        source = data[copy_of]
        when = dt.date.fromisoformat(str(source["date"])) + dt.timedelta(days=days)
        data[row] = {**source, "date": when.isoformat()}
    for row in (25, 83):
        line = data[row]
        unit = prices[str(line["category"])] * 1.6
        data[row] = {**line, "amount": round(float(str(line["quantity"])) * unit, 2)}
    return data


METHOD: Method[CostOptimizationParams, CostOptimizationResult] = Method(
    name="cost_optimization",
    summary="Spend analysis: ABC classes by vendor, overpriced lines, duplicate payments and "
    "the savings they add up to",
    params=CostOptimizationParams,
    result=CostOptimizationResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=CostOptimizationParams(
            vendor="vendor",
            amount="amount",
            category="category",
            quantity="quantity",
            date="date",
            invoice="invoice",
        ),
    ),
    numeric_param="amount",
    min_rows=5,
)
