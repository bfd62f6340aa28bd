"""The Grafana dashboard (deploy/grafana/aiplatform.json) queries only metrics the server exports,
and shows every metric of the platform's own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from aiplatform.server.app import create_app
from aiplatform.settings import Settings
from tests.unit.observability.scrape import family_names

pytestmark = pytest.mark.anyio

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "aiplatform.json"

#: PromQL's functions and aggregations the dashboard may call, and its keywords.
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev",
    "rate", "irate", "increase", "delta", "histogram_quantile", "clamp_min", "clamp_max",
    "abs", "vector", "scalar", "time", "label_replace", "avg_over_time", "max_over_time",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads: what is left of its identifiers once strings,
    label matchers, ranges, label lists and PromQL's own words are taken out."""
    for pattern in (_STRING, _MATCHERS, _RANGE, _LABEL_LIST):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(expr) if name not in PROMQL_WORDS}


def test_metric_names_are_found_in_expressions() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (engine, le) (rate(x_bucket{job=~"$job", a="b{c}"}'
        "[$__rate_interval]))) / on (engine) group_left sum(y_total) or vector(0)"
    )
    assert metric_names(expr) == {"x_bucket", "y_total"}


def queries(node: Any) -> Iterator[str]:
    """Every PromQL expression of the dashboard: its panels' targets, and the metrics its
    variables read label values from."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "definition" and isinstance(value, str):
                yield from _LABEL_VALUES.findall(value)
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def exported(families: dict[str, str]) -> set[str]:
    """The sample names a scrape's families can have (a family declared with no sample yet
    still names them)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    return {
        name + suffix for name, kind in families.items() for suffix in suffixes.get(kind, ("",))
    }


async def scraped_families() -> dict[str, str]:
    app = create_app(Settings(), engines={})
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return family_names(response.text)


async def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = list(queries(dashboard))
    assert len(expressions) > 20
    available = exported(await scraped_families())
    for expr in expressions:
        used = metric_names(expr)
        assert used, f"no metric in {expr!r}"
        unknown = used - available
        assert not unknown, f"{expr!r} queries metrics /metrics does not export: {unknown}"


async def test_every_platform_metric_has_a_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = set().union(*(metric_names(expr) for expr in queries(dashboard)))
    families = await scraped_families()
    missing = {
        name
        for name in families
        if name.startswith("aiplatform_")
        and not name.endswith("_created")  # the text format's own family of start times
        and not exported({name: families[name]}) & used
    }
    assert not missing, f"deploy/grafana/aiplatform.json shows nothing of {sorted(missing)}"


def test_every_panel_reads_the_chosen_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
