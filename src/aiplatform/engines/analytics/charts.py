"""Vega-Lite specifications with their data inline, as the analytic engines return them.

A chart is a plain dict any Vega-Lite renderer (vega-embed, Altair, vl-convert) draws as it is.
Values are made JSON-safe here (numpy scalars to numbers, times to ISO 8601, NaN to null), so
a computation hands over what it has. The tests validate every chart an engine returns against
the Vega-Lite JSON schema.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = ["SCHEMA", "bar", "chart", "field", "json_safe", "layer", "line", "point", "rows"]

#: The Vega-Lite version the specs are written for.
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"

FieldType = Literal["quantitative", "temporal", "nominal", "ordinal"]


def json_safe(value: Any) -> Any:  # noqa: PLR0911  # one return per kind of value
    """``value`` as JSON holds it: numpy scalars as numbers, times as ISO 8601 text, NaN and
    infinities as null."""
    # Exact Python types out: numpy's float64 and str_ subclass float and str.
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_safe(item())
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        return str(isoformat())
    return str(value)


def rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Inline data values, each made JSON-safe."""
    return [{str(key): json_safe(value) for key, value in record.items()} for record in records]


def field(name: str, kind: FieldType, *, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """One encoding channel: ``{"field", "type"}`` plus a title and any other property."""
    channel: dict[str, Any] = {"field": name, "type": kind, **extra}
    if title is not None:
        channel["title"] = title
    return channel


def chart(
    data: Iterable[Mapping[str, Any]],
    mark: str | dict[str, Any],
    encoding: dict[str, Any],
    *,
    title: str,
    **extra: Any,
) -> dict[str, Any]:
    """A single-view spec: ``mark`` over ``data`` with ``encoding``."""
    return {
        "$schema": SCHEMA,
        "title": title,
        "data": {"values": rows(data)},
        "mark": mark,
        "encoding": encoding,
        **extra,
    }


def line(
    data: Iterable[Mapping[str, Any]],
    x: dict[str, Any],
    y: dict[str, Any],
    *,
    title: str,
    **encoding: Any,
) -> dict[str, Any]:
    """A line chart (``color=field(...)`` for one line per group)."""
    return chart(data, "line", {"x": x, "y": y, **encoding}, title=title)


def bar(
    data: Iterable[Mapping[str, Any]],
    x: dict[str, Any],
    y: dict[str, Any],
    *,
    title: str,
    **encoding: Any,
) -> dict[str, Any]:
    """A bar chart."""
    return chart(data, "bar", {"x": x, "y": y, **encoding}, title=title)


def point(
    data: Iterable[Mapping[str, Any]],
    x: dict[str, Any],
    y: dict[str, Any],
    *,
    title: str,
    **encoding: Any,
) -> dict[str, Any]:
    """A scatter plot."""
    return chart(data, "point", {"x": x, "y": y, **encoding}, title=title)


def layer(*views: dict[str, Any], title: str) -> dict[str, Any]:
    """Views drawn over each other (a forecast's band under its line), each with its own data."""
    layers = [
        {key: value for key, value in view.items() if key not in ("$schema", "title")}
        for view in views
    ]
    return {"$schema": SCHEMA, "title": title, "layer": layers}
