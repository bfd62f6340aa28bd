"""universal_graph: the chart a request asks for, drawn from the request's table.

The request names a chart type (bar, line, area, point or scatter, histogram, boxplot,
heatmap, pie or arc), the columns on its axes and colour, and how values are aggregated (sum,
mean, median, count, min, max). The aggregation is done here, in pandas: the groups, bins or
box-plot statistics are computed and put inline in a Vega-Lite spec that draws them as they
are, so what the chart shows is what the result reports. A request a chart type cannot draw
(a text column in a histogram, a bar chart without an x, a sum of text) is a 400 naming the
param. At most :data:`MAX_SHOWN` rows go inline: unaggregated points beyond that are a seeded
sample, groups beyond it are cut (the result and a warning say how many).

Fields are renamed in the inline data (``x``, ``y``, ``color``, ``value``) and titled with
the column names, so column names holding dots or brackets (which Vega-Lite reads as paths)
draw as they are.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METHOD", "UniversalGraphParams", "UniversalGraphResult"]

#: The most rows a chart carries inline.
MAX_SHOWN = 5_000

ChartType = Literal[
    "bar", "line", "area", "point", "scatter", "histogram", "boxplot", "heatmap", "pie", "arc"
]
Aggregate = Literal["sum", "mean", "median", "count", "min", "max"]
SortOrder = Literal["x", "-x", "value", "-value"]

#: ISO 8601 dates and times (2024-03, 2024-03-01, 2024-03-01T12:00...): an x of such text
#: is drawn on a time axis by the charts with a continuous x.
_ISO_TIME = re.compile(r"^\d{4}-\d{2}(-\d{2})?([T ]\d{2}:\d{2}.*)?$")


class UniversalGraphParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The chart type: "bar", "line", "area", "point" (or "scatter"), "histogram",
    #: "boxplot", "heatmap", "pie" (or "arc").
    chart: ChartType
    #: Column on the x axis: the categories (bar, heatmap, pie's slices, boxplot's groups;
    #: optional for boxplot), the positions (line, area, point) or the values binned
    #: (histogram, numeric). Needed by every type but boxplot.
    x: str | None = None
    #: Column with the values drawn: aggregated per x (bar, pie, and line, area, point when
    #: ``aggregate`` is set), drawn as they are (line, area, point), or summarised (boxplot);
    #: the second category axis of a heatmap. Not used by histogram.
    y: str | None = None
    #: Column that splits the chart into coloured groups (stacked bars and areas, one line
    #: per group, grouped histograms; a numeric colour scale for an unaggregated scatter). For
    #: a heatmap, the numeric column whose aggregate colours each cell. Not used by boxplot
    #: and pie (their colour is x).
    color: str | None = None
    #: How the values of each group are combined: "sum", "mean", "median", "count" (rows, or
    #: present values of ``y``), "min", "max". Absent: "sum" of y for bar and pie (count
    #: without y), "mean" of color for heatmap (count without it), none (each row drawn) for
    #: line, area and point. Histogram counts; boxplot summarises and takes none.
    aggregate: Aggregate | None = None
    #: Order of the x values: "x" / "-x" by x ascending / descending, "value" / "-value" by
    #: the plotted value (summed over colour groups). Absent: ascending x.
    sort: SortOrder | None = None
    #: Keep only the first ``limit`` x values (categories or, unaggregated, rows) after
    #: sorting: ``sort="-value", limit=10`` is a top ten.
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHOWN)] | None = None
    #: Histogram bins (equal width over the range of x).
    bins: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
    #: The chart's title. Absent: made from the request ("sum of sales by region").
    title: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class UniversalGraphResult(msgspec.Struct, kw_only=True):
    #: The chart type drawn, as asked for.
    chart: str
    #: The Vega-Lite mark that draws it ("bar", "line", "area", "point", "rect", "arc";
    #: boxplot: "boxplot", drawn as rules, bars and ticks).
    mark: str
    #: The aggregation applied; None when each row is drawn as it is.
    aggregate: str | None
    #: Rows of the table.
    rows_in: int
    #: Rows left out for a missing value in a column the chart uses.
    rows_dropped: int
    #: Rows the chart draws after aggregation, sort and limit: groups (bars, cells, slices,
    #: points of a line), histogram bins times colour groups, boxes, or unaggregated rows.
    rows_out: int
    #: Rows of ``rows_out`` inline in the spec (at most 5000: a seeded sample of unaggregated
    #: rows, or the first groups, beyond).
    rows_shown: int
    #: The Vega-Lite spec, data inline (the same as the response's chart).
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Rules:
    """What one chart type draws with and takes."""

    mark: str
    #: Params that must be given.
    needs: tuple[str, ...]
    #: Params it does not take.
    unused: tuple[str, ...]
    #: Aggregations it accepts (None: the request left it out).
    aggregates: tuple[str | None, ...]


_ALL: tuple[str | None, ...] = ("sum", "mean", "median", "count", "min", "max", None)
_RULES: dict[str, _Rules] = {
    "bar": _Rules("bar", ("x",), ("bins",), _ALL),
    "line": _Rules("line", ("x",), ("bins",), _ALL),
    "area": _Rules("area", ("x",), ("bins",), _ALL),
    "point": _Rules("point", ("x",), ("bins",), _ALL),
    "histogram": _Rules("bar", ("x",), ("y", "sort", "limit"), ("count", None)),
    "boxplot": _Rules("boxplot", ("y",), ("color", "bins"), (None,)),
    "heatmap": _Rules("rect", ("x", "y"), ("bins",), _ALL),
    "arc": _Rules("arc", ("x",), ("color", "bins"), _ALL),
}
_ALIASES = {"scatter": "point", "pie": "arc"}


@dataclass(frozen=True, slots=True)
class _Plan:
    """A request checked against its chart type."""

    kind: str
    rules: _Rules
    #: The aggregation to apply (None: rows drawn as they are).
    aggregate: str | None
    #: The params field naming the column aggregated or drawn (None: rows counted).
    value: str | None


@dataclass(frozen=True, slots=True)
class _Drawn:
    """The rows a chart draws (before the cap on what goes inline)."""

    table: pd.DataFrame
    #: Rows left out for a missing value.
    dropped: int
    #: The box plot's outliers.
    extra: pd.DataFrame | None = None


def compute(
    frame: pd.DataFrame, params: UniversalGraphParams, run: Run
) -> Outcome[UniversalGraphResult]:
    plan = _plan(params)
    run.progress(0.05, "checking the columns")
    _check_columns(frame, params, plan)
    run.progress(0.3, "aggregating")
    drawn = _draw(frame, params, plan, run)
    run.progress(0.8, "building the chart")
    shown, total = _capped(drawn.table, plan, run)
    spec = _spec(shown, drawn.extra, params, plan)
    if drawn.dropped:
        run.warn(f"{drawn.dropped} rows with a missing value in a charted column are left out.")
    result = UniversalGraphResult(
        chart=params.chart,
        mark=plan.rules.mark,
        aggregate=plan.aggregate,
        rows_in=len(frame),
        rows_dropped=drawn.dropped,
        rows_out=total,
        rows_shown=len(shown),
        spec=spec,
    )
    run.progress(0.95, "done")
    return Outcome(result=result, summary=_summary(result, params), charts=[spec])


# ----------------------------------------------------------------------------- the request


def _plan(params: UniversalGraphParams) -> _Plan:
    """The chart type's rules applied to the params: what is missing, what is not used, which
    aggregation (400s naming the param)."""
    kind = _ALIASES.get(params.chart, params.chart)
    rules = _RULES[kind]
    for name in rules.needs:
        if getattr(params, name) is None:
            raise InvalidRequestError(
                f"A {params.chart} chart needs params.{name}.",
                param=f"params.{name}",
                code="missing_param",
            )
    defaults = msgspec.structs.fields(UniversalGraphParams)
    for name in rules.unused:
        default = next(field.default for field in defaults if field.name == name)
        if getattr(params, name) != default:
            raise InvalidRequestError(
                f"A {params.chart} chart does not use params.{name}; leave it out.",
                param=f"params.{name}",
                code="unused_param",
            )
    if params.aggregate not in rules.aggregates:
        raise InvalidRequestError(
            f"A {params.chart} chart cannot take aggregate '{params.aggregate}'"
            + (" (it counts rows per bin)." if kind == "histogram" else " (it summarises itself)."),
            param="params.aggregate",
            code="unsupported_aggregate",
        )
    value_field = "color" if kind == "heatmap" else "y"
    value = None if kind == "histogram" else value_field
    has_value = value is not None and getattr(params, value) is not None
    aggregate = _aggregate_for(kind, params.aggregate, has_value=has_value)
    if aggregate not in (None, "count") and not has_value:
        raise InvalidRequestError(
            f"Aggregate '{aggregate}' of a {params.chart} chart needs a numeric column in "
            f"params.{value_field}.",
            param=f"params.{value_field}",
            code="missing_param",
        )
    if aggregate is None and kind != "boxplot" and not has_value:
        raise InvalidRequestError(
            f"A {params.chart} chart without an aggregate draws params.{value_field}; give it, "
            "or aggregate 'count'.",
            param=f"params.{value_field}",
            code="missing_param",
        )
    return _Plan(kind, rules, aggregate, value if has_value else None)


def _aggregate_for(kind: str, asked: str | None, *, has_value: bool) -> str | None:
    """The aggregation a chart type applies when the request leaves it out."""
    if asked is not None or kind in ("line", "area", "point", "boxplot"):
        return asked
    if kind == "histogram":
        return "count"
    if kind == "heatmap":
        return "mean" if has_value else "count"
    return "sum" if has_value else "count"


def _numeric_value(plan: _Plan) -> bool:
    """Whether the value column must hold numbers: anything but a count of its values."""
    return plan.value is not None and plan.aggregate != "count"


def _check_columns(frame: pd.DataFrame, params: UniversalGraphParams, plan: _Plan) -> None:
    """Every column named exists; those that must hold numbers do (400s naming the param)."""
    for role in ("x", "y", "color"):
        name = getattr(params, role)
        if name is not None:
            columns.column(frame, name, role)
    if plan.kind == "histogram":
        columns.numeric(frame, str(params.x), "x", allow_constant=True)
    if _numeric_value(plan) and plan.value is not None:
        columns.numeric(frame, getattr(params, plan.value), plan.value, allow_constant=True)


# ----------------------------------------------------------------------------- the rows


def _draw(frame: pd.DataFrame, params: UniversalGraphParams, plan: _Plan, run: Run) -> _Drawn:
    """The rows the chart draws: renamed, missing values dropped, aggregated, sorted, cut."""
    table = _working(frame, params, plan)
    present = table.dropna()
    dropped = len(table) - len(present)
    if present.empty:
        raise InvalidRequestError(
            "No row has a value in every column the chart uses.",
            param="data",
            code="all_missing",
        )
    if plan.kind == "histogram":
        binned = _histogram(present, params.bins, run)
        return _Drawn(binned, dropped)
    if plan.kind == "boxplot":
        boxes, outliers = _boxes(present, params, run)
        return _Drawn(boxes, dropped, outliers)
    keys = [key for key in ("x", "y", "color") if key in present]
    if plan.aggregate is not None:
        present = _aggregated(present, keys, plan.aggregate)
    elif plan.kind in ("line", "area"):  # drawn along x
        present = present.sort_values("x", kind="stable")
    ordered = _ordered(present, params, grouped=plan.aggregate is not None)
    return _Drawn(ordered, dropped)


def _working(frame: pd.DataFrame, params: UniversalGraphParams, plan: _Plan) -> pd.DataFrame:
    """The charted columns under their inline names: x (as drawn), the category y of a
    heatmap, the colour groups, and ``value`` (numbers, or the column whose values are
    counted)."""
    import pandas as pd

    table = pd.DataFrame(index=frame.index)
    if params.x is not None:
        numeric_x = plan.kind == "histogram"
        table["x"] = _axis(frame[params.x], numeric=numeric_x, continuous=_continuous(plan))
    if plan.kind == "heatmap" and params.y is not None:
        table["y"] = _axis(frame[params.y], numeric=False, continuous=False)
    grouping = params.color is not None and plan.kind != "heatmap"
    if grouping and params.color is not None:
        colour = frame[params.color]
        scaled = plan.aggregate is None and plan.kind == "point" and _is_number(colour)
        table["color"] = colour.astype(float) if scaled else _labels(colour)
    if plan.value is not None:
        values = frame[getattr(params, plan.value)]
        table["value"] = pd.to_numeric(values) if _numeric_value(plan) else values
    return table


def _continuous(plan: _Plan) -> bool:
    """Whether x is a position (numbers or times keep their scale) rather than a category."""
    return plan.kind in ("line", "area", "point")


def _is_number(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _is_time(series: pd.Series) -> bool:
    present = series.dropna()
    return bool(not present.empty and present.map(lambda v: bool(_ISO_TIME.match(str(v)))).all())


def _labels(series: pd.Series) -> pd.Series:
    """Category labels: numbers stay numbers (so they sort as numbers), anything else text."""
    if _is_number(series):
        return series
    return series.where(series.isna(), series.astype(str))


def _axis(series: pd.Series, *, numeric: bool, continuous: bool) -> pd.Series:
    """An x or y column as drawn: numbers, times (on a continuous axis), or labels."""
    import pandas as pd

    if numeric:
        return pd.to_numeric(series)
    if continuous and pd.api.types.is_datetime64_any_dtype(series):
        return series
    if continuous and not _is_number(series) and _is_time(series):
        present = series.where(series.isna(), series.astype(str))
        return pd.to_datetime(present, format="ISO8601", utc=True).dt.tz_convert(None)
    return _labels(series)


def _aggregated(table: pd.DataFrame, keys: list[str], how: str) -> pd.DataFrame:
    """One row per group of ``keys``: the aggregate of ``value`` (or the row count)."""
    grouped = table.groupby(keys, sort=True, observed=True)
    if how == "count" or "value" not in table:
        combined = grouped.size()
    else:
        combined = grouped["value"].agg(how)
    return combined.rename("value").reset_index()


def _ordered(table: pd.DataFrame, params: UniversalGraphParams, *, grouped: bool) -> pd.DataFrame:
    """The rows in the order asked for, cut to the first ``limit`` x values. With colour
    groups (or a heatmap's rows), whole x values are ranked by their summed value."""
    if params.sort is None and params.limit is None:
        return table.reset_index(drop=True)
    descending = (params.sort or "x").startswith("-")
    by = (params.sort or "x").lstrip("-")
    several = grouped and ("color" in table or "y" in table)
    if not several:
        ordered = table.sort_values(by, ascending=not descending, kind="stable")
        return ordered.head(params.limit).reset_index(drop=True)
    totals = table.groupby("x", sort=True)["value"].sum()
    ranked = (
        totals.sort_index(ascending=not descending)
        if by == "x"
        else totals.sort_values(ascending=not descending, kind="stable")
    )
    kept = list(ranked.index[: params.limit])
    rank = {value: position for position, value in enumerate(kept)}
    chosen = table[table["x"].isin(kept)].copy()
    chosen["_rank"] = chosen["x"].map(rank)
    return chosen.sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


def _histogram(table: pd.DataFrame, bins: int, run: Run) -> pd.DataFrame:
    """Counts per equal-width bin of x (the same edges for every colour group)."""
    import numpy as np
    import pandas as pd

    edges = np.histogram_bin_edges(table["x"].to_numpy(dtype=float), bins=bins)
    groups = [(None, table)] if "color" not in table else list(table.groupby("color", sort=True))
    pieces: list[pd.DataFrame] = []
    for index, (group, rows) in enumerate(groups):
        counts, _ = np.histogram(rows["x"].to_numpy(dtype=float), bins=edges)
        piece = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "value": counts})
        if group is not None:
            piece.insert(2, "color", group)
        pieces.append(piece)
        run.progress(0.3 + 0.4 * (index + 1) / len(groups), "binning")
    return pd.concat(pieces, ignore_index=True)


def _boxes(
    table: pd.DataFrame, params: UniversalGraphParams, run: Run
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per group of x (or for all rows): quartiles, Tukey's whiskers (the furthest values
    within 1.5 IQR of the box) and the values beyond them."""
    import pandas as pd

    groups = list(table.groupby("x", sort=True)) if "x" in table else [(params.y, table)]
    boxes: list[dict[str, Any]] = []
    outliers: list[pd.DataFrame] = []
    for index, (group, rows) in enumerate(groups):
        values = rows["value"]
        q1, median, q3 = (float(values.quantile(q)) for q in (0.25, 0.5, 0.75))
        reach = 1.5 * (q3 - q1)
        inside = values[(values >= q1 - reach) & (values <= q3 + reach)]
        boxes.append(
            {
                "x": group,
                "lower": float(inside.min()),
                "q1": q1,
                "median": median,
                "q3": q3,
                "upper": float(inside.max()),
                "count": len(values),
                "value": median,
            }
        )
        beyond = values[(values < q1 - reach) | (values > q3 + reach)]
        outliers.append(pd.DataFrame({"x": group, "value": beyond.to_numpy()}))
        run.progress(0.3 + 0.4 * (index + 1) / len(groups), "summarising the groups")
    summary = _ordered(pd.DataFrame(boxes), params, grouped=False)
    kept = pd.concat(outliers, ignore_index=True)
    kept = kept[kept["x"].isin(summary["x"])].reset_index(drop=True)
    return summary.drop(columns="value"), kept


def _capped(table: pd.DataFrame, plan: _Plan, run: Run) -> tuple[pd.DataFrame, int]:
    """At most :data:`MAX_SHOWN` rows: a seeded sample of unaggregated rows (in their order),
    or the first groups."""
    total = len(table)
    if total <= MAX_SHOWN:
        return table, total
    if plan.aggregate is None and plan.kind != "boxplot":
        import numpy as np

        picked = np.sort(np.random.default_rng(run.seed).choice(total, MAX_SHOWN, replace=False))
        run.warn(f"The chart shows a random sample of {MAX_SHOWN} of its {total} rows.")
        return table.iloc[picked].reset_index(drop=True), total
    run.warn(
        f"The chart shows the first {MAX_SHOWN} of its {total} rows; narrow it with params.limit."
    )
    return table.head(MAX_SHOWN), total


# ----------------------------------------------------------------------------- the spec


def _spec(
    table: pd.DataFrame, extra: pd.DataFrame | None, params: UniversalGraphParams, plan: _Plan
) -> dict[str, Any]:
    title = params.title or _title(params, plan)
    records = table.to_dict("records")
    if plan.kind == "histogram":
        return _histogram_spec(records, params, title)
    if plan.kind == "boxplot":
        return _boxplot_spec(records, extra, params, title)
    x_type = _axis_type(table["x"], continuous=_continuous(plan))
    x = charts.field("x", x_type, title=params.x)
    value = charts.field("value", "quantitative", title=_value_title(params, plan))
    if params.sort is not None and x_type in ("nominal", "ordinal"):
        x["sort"] = None  # the rows' order
    if plan.kind == "heatmap":
        y = charts.field("y", _axis_type(table["y"], continuous=False), title=params.y)
        return charts.chart(records, "rect", {"x": x, "y": y, "color": value}, title=title)
    if plan.kind == "arc":
        slices = charts.field("x", x_type, title=params.x, sort=None)
        slices_encoding = {"theta": {**value, "stack": True}, "color": slices}
        return charts.chart(records, {"type": "arc"}, slices_encoding, title=title)
    encoding: dict[str, Any] = {"x": x, "y": value}
    if "color" in table:
        numbers = plan.aggregate is None and _is_number(table["color"])
        colour_type: charts.FieldType = "quantitative" if numbers else "nominal"
        encoding["color"] = charts.field("color", colour_type, title=params.color)
    return charts.chart(records, plan.rules.mark, encoding, title=title)


def _axis_type(series: pd.Series, *, continuous: bool) -> charts.FieldType:
    """Categories are nominal (ordinal when numbers); a continuous axis keeps its numbers
    or times."""
    import pandas as pd

    if not continuous:
        return "ordinal" if _is_number(series) else "nominal"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "temporal"
    return "quantitative" if _is_number(series) else "ordinal"


def _histogram_spec(
    records: list[dict[str, Any]], params: UniversalGraphParams, title: str
) -> dict[str, Any]:
    encoding: dict[str, Any] = {
        "x": charts.field("bin_start", "quantitative", title=params.x, bin={"binned": True}),
        "x2": {"field": "bin_end"},
        "y": charts.field("value", "quantitative", title="count of rows"),
    }
    if params.color is not None:
        encoding["color"] = charts.field("color", "nominal", title=params.color)
    return charts.chart(records, "bar", encoding, title=title)


def _boxplot_spec(
    records: list[dict[str, Any]],
    outliers: pd.DataFrame | None,
    params: UniversalGraphParams,
    title: str,
) -> dict[str, Any]:
    x = charts.field("x", "nominal", title=params.x or params.y, sort=None)
    y_title = str(params.y)
    views = [
        charts.chart(
            records,
            "rule",
            {
                "x": x,
                "y": charts.field("lower", "quantitative", title=y_title),
                "y2": {"field": "upper"},
            },
            title=title,
        ),
        charts.chart(
            records,
            {"type": "bar", "size": 20},
            {"x": x, "y": charts.field("q1", "quantitative", title=y_title), "y2": {"field": "q3"}},
            title=title,
        ),
        charts.chart(
            records,
            {"type": "tick", "color": "white", "size": 20},
            {"x": x, "y": charts.field("median", "quantitative", title=y_title)},
            title=title,
        ),
    ]
    if outliers is not None and not outliers.empty:
        views.append(
            charts.chart(
                outliers.head(MAX_SHOWN).to_dict("records"),
                "point",
                {"x": x, "y": charts.field("value", "quantitative", title=y_title)},
                title=title,
            )
        )
    return charts.layer(*views, title=title)


def _value_title(params: UniversalGraphParams, plan: _Plan) -> str:
    column = getattr(params, plan.value) if plan.value is not None else None
    if plan.aggregate is None:
        return str(column)
    if column is None:
        return "count of rows"
    return f"{plan.aggregate} of {column}"


def _title(params: UniversalGraphParams, plan: _Plan) -> str:
    if plan.kind == "histogram":
        return f"distribution of {params.x}"
    if plan.kind == "boxplot":
        return f"{params.y} by {params.x}" if params.x is not None else f"{params.y}"
    if plan.kind == "heatmap":
        return f"{_value_title(params, plan)} by {params.x} and {params.y}"
    return f"{_value_title(params, plan)} by {params.x}"


def _summary(result: UniversalGraphResult, params: UniversalGraphParams) -> str:
    if result.mark == "boxplot":
        how = "quartiles and whiskers per group"
    elif result.aggregate is not None:
        how = f"aggregated by {result.aggregate}"
    else:
        how = "each row drawn as it is"
    shown = (
        "all inline"
        if result.rows_shown == result.rows_out
        else f"{result.rows_shown} of them inline"
    )
    dropped = f", {result.rows_dropped} left out for a missing value" if result.rows_dropped else ""
    article = "An" if params.chart[0] in "aeiou" else "A"
    return (
        f"{article} {params.chart} chart of {result.spec['title']} ({result.mark} mark, {how}): "
        f"{result.rows_in} rows in{dropped}, {result.rows_out} rows out, {shown}."
    )


# ----------------------------------------------------------------------------- the example


def _example_data() -> Records:
    """Monthly sales of three products in four regions over five months (60 rows, seeded)."""
    rng = random.Random(0)
    bases = {"north": 120.0, "south": 80.0, "east": 100.0, "west": 60.0}
    rows: Records = []
    for month in range(1, 6):
        for region, base in bases.items():
            for offset, product in enumerate(("tea", "coffee", "cocoa")):
                sales = base + 10 * offset + 5 * math.sin(month) + rng.gauss(0, 5)
                rows.append(
                    {
                        "month": f"2024-{month:02d}-01",
                        "region": region,
                        "product": product,
                        "sales": round(sales, 2),
                    }
                )
    return rows


METHOD: Method[UniversalGraphParams, UniversalGraphResult] = Method(
    name="universal_graph",
    summary="A chart from the table as asked for (bar, line, area, point, histogram, boxplot, "
    "heatmap, pie), aggregated in pandas, as a Vega-Lite spec.",
    params=UniversalGraphParams,
    result=UniversalGraphResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=UniversalGraphParams(
            chart="bar", x="region", y="sales", color="product", aggregate="sum", sort="-value"
        ),
    ),
    numeric_param="y",
    min_rows=1,
)
