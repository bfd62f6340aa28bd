"""Analytics benchmark: each analytic engine through a real server against the same computation
called directly, and jobs throughput against synchronous calls.

(a) For every registered analytic engine (``--engines`` to pick) and each table size
    (``--rows``), a table built by a seeded generator that fits the engine's example params
    (column roles set, the example's knobs), run three ways, interleaved (the order rotates
    each round), at least ``--repeats`` rounds; the median of each way is reported:

    - direct: :func:`~aiplatform.engines.analytics.worker.run_method` in this process with the
      inline request's :class:`~aiplatform.engines.analytics.worker.MethodCall` (records to a
      DataFrame, the engine's compute calling its library, the result encoded): the baseline;
    - inline: ``POST /v1/analytics/<engine>`` to ``aiplatform serve --engines
      analytics,datasets,embeddings,rag,llm`` (defaults: two worker processes) with the table
      inline (``data``), the body encoded before the clock starts and the answer read whole
      before it stops;
    - dataset: the same request naming the table uploaded once (``POST /v1/datasets``,
      Parquet) by ``dataset``.

    An engine that calls other engines (``faiss_retrieval``, ``rag_evaluation``) is served
    with the server's fake embeddings, RAG and LLM engines; its direct call computes from what
    its prepare step made against the same fakes here, run once before any clock, so its
    server time also holds the calls to those engines (the embedding, the searches).

    Ratios are server / direct. A case whose direct call is short (under :data:`CHEAP_S`) gets
    an untimed round first and more rounds. Engines that cannot take a large table in
    reasonable time on a small machine, or take at most so many rows a run, are capped (rows
    or knobs; the notes say which and why); a capped case identical to one already measured
    is not measured again. A second table says where the difference comes from: the JSON
    sizes, the encoding the server adds, the DataFrame built from records or from Parquet,
    the upload.
(b) Jobs: ``--jobs`` quick runs submitted at once (``POST /v1/jobs``) and polled until every one
    succeeded, against the same runs as synchronous calls back to back (``max_running_jobs`` at
    its default).

Every answer is checked (a 200 holding the engine's result, the same result as the direct call
for the same seed; every job succeeded with the synchronous call's result) before a figure is
printed; a failed check exits 1. Run: ``python -m bench.analytics [--rows 10000,100000]
[--engines anomaly,trend] [--repeats 2] [--jobs 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
from tests.support import ServerProcess

from aiplatform.engines.analytics.method import Cell, Method, Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.faiss_retrieval import MAX_TEXTS as FAISS_TEXTS
from aiplatform.engines.analytics.methods.rag_evaluation import MAX_QUERIES as RAG_QUERIES
from aiplatform.engines.analytics.methods.rag_evaluation import EvalDocument
from aiplatform.engines.analytics.methods.roi_prediction import MAX_PERIODS as ROI_PERIODS
from aiplatform.engines.analytics.worker import MethodCall, TableData, run_method, to_frame
from aiplatform.testing import fake_settings, settings_env
from bench.checks import fail, require, require_count, require_status, run_bench

#: Columns of a generated table, by name.
Columns = dict[str, list[Cell]]

SEED = 0
#: An HTTP call may compute this long (the server's own limit is run_timeout_s, 300 s).
HTTP_TIMEOUT_S = 600.0


@dataclass(slots=True)
class Table:
    """What a generator makes: the table, the params (column roles set, knobs from the engine's
    example), the params' own tables (by params field) and notes on what was capped (empty
    ones are left out)."""

    columns: Columns
    params: msgspec.Struct
    tables: dict[str, Columns] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


#: A generator: (rows, rng) -> the table.
Generator = Callable[[int, np.random.Generator], Table]


# -- tables, one generator per engine ---------------------------------------------------------


def _example(engine: str, **changes: Any) -> msgspec.Struct:
    """The engine's example params (its knobs) with ``changes`` (the column roles, caps)."""
    params: msgspec.Struct = METHODS[engine].example.params
    return msgspec.structs.replace(params, **changes)


def _hours(rows: int) -> list[Cell]:
    """``rows`` unique, increasing hourly ISO 8601 times from 2000-01-01 (100k rows: 11 years)."""
    start = np.datetime64("2000-01-01T00", "h")
    times = start + np.arange(rows).astype("timedelta64[h]")
    return list(np.datetime_as_string(times, unit="s").tolist())


def _round(values: np.ndarray, digits: int = 3) -> list[Cell]:
    return list(np.round(values, digits).tolist())


def _capped(engine: str, rows: int, cap: int, why: str) -> tuple[int, str]:
    """``rows`` cut to ``cap``, and the note saying so (empty when nothing was cut)."""
    if rows <= cap:
        return rows, ""
    return cap, f"{engine}: capped at {cap:,} rows ({why})"


def _anomaly(rows: int, rng: np.random.Generator) -> Table:
    """Sensor readings: temperature and pressure move together; 0.1% of the rows do not."""
    temperature = rng.normal(20.0, 3.0, rows)
    pressure = 100.0 + 2.0 * (temperature - 20.0) + rng.normal(0.0, 1.5, rows)
    odd = rng.choice(rows, size=max(3, rows // 1000), replace=False)
    pressure[odd] += rng.choice([-25.0, 25.0], size=len(odd))
    columns: Columns = {
        "sensor": [f"s{i:06d}" for i in range(rows)],
        "temperature": _round(temperature, 2),
        "pressure": _round(pressure, 2),
        "humidity": _round(rng.normal(50.0, 5.0, rows), 2),
    }
    return Table(columns, _example("anomaly", columns=["temperature", "pressure", "humidity"]))


def _chaos(rows: int, rng: np.random.Generator) -> Table:
    """y is x squared (no linear correlation), z rises with x."""
    x = rng.uniform(-1.0, 1.0, rows)
    columns: Columns = {
        "x": _round(x, 4),
        "y": _round(x * x + rng.normal(0.0, 0.03, rows), 4),
        "z": _round(2.0 + 0.5 * x + rng.normal(0.0, 0.2, rows), 4),
    }
    return Table(columns, _example("chaos", columns=["x", "y", "z"], expression="z * exp(x) - y"))


#: chronos fits ETS, ARIMA and Theta (season 24 on hourly data) on three backtest folds and
#: again on the whole series: 13 s for 500 values, 21 s for 1,000, 72 s for 2,000.
CHRONOS_ROWS = 500


def _chronos(rows: int, rng: np.random.Generator) -> Table:
    """An hourly series: slow rise, a daily cycle (season 24, inferred), noise."""
    used, note = _capped("chronos", rows, CHRONOS_ROWS, "ETS, ARIMA, Theta with season 24")
    step = np.arange(used)
    sales = 100.0 + 0.01 * step + 8.0 * np.sin(2 * np.pi * step / 24) + rng.normal(0, 1.5, used)
    columns: Columns = {"hour": _hours(used), "sales": _round(sales, 2)}
    return Table(columns, _example("chronos", time="hour", target="sales"), notes=[note])


#: clustering's "auto" runs HDBSCAN besides k-means: 7 s for 20,000 rows, 134 s for 100,000.
CLUSTERING_ROWS = 20_000


def _clustering(rows: int, rng: np.random.Generator) -> Table:
    """Customers in three segments by spend and visits."""
    used, note = _capped("clustering", rows, CLUSTERING_ROWS, "HDBSCAN in algorithm auto")
    centres = np.array([(200.0, 4.0), (800.0, 12.0), (450.0, 25.0)])
    which = np.arange(used) % 3
    columns: Columns = {
        "customer": [f"c{i:06d}" for i in range(used)],
        "spend": _round(centres[which, 0] + rng.normal(0.0, 60.0, used), 1),
        "visits": _round(centres[which, 1] + rng.normal(0.0, 2.0, used), 1),
    }
    return Table(columns, _example("clustering", columns=["spend", "visits"]), notes=[note])


def _galileo(rows: int, rng: np.random.Generator) -> Table:
    """Seven columns driven by two hidden factors: a correlation graph of seven nodes (the
    rows make the correlations; a graph of rows, k-NN, is limited to 10,000 nodes)."""
    f, g = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    mix = {
        "sales": (1.0, 0.0, 0.4),
        "visits": (0.8, 0.0, 0.4),
        "orders": (-1.0, 0.0, 0.4),
        "rain": (0.0, 1.0, 0.4),
        "humidity": (0.0, 0.9, 0.4),
        "clouds": (0.0, 1.0, 0.5),
        "umbrellas": (0.7, 0.7, 0.3),
    }
    columns: Columns = {
        name: _round(a * f + b * g + rng.normal(0, sd, rows)) for name, (a, b, sd) in mix.items()
    }
    return Table(columns, _example("galileo", graph="correlation", columns=list(mix)))


#: Synthetic rows mirror is asked for (each is in the answer).
MIRROR_SYNTHETIC = 10_000


def _mirror(rows: int, rng: np.random.Generator) -> Table:
    """Spend, visits and returns move together; the segment follows spend. The synthetic rows
    asked for are capped: they all come back in the answer."""
    f, g = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    spend = np.exp(3.0 + 0.5 * f)
    segment = np.where(spend > 30, "high", np.where(spend > 15, "mid", "low"))
    columns: Columns = {
        "spend": _round(spend, 2),
        "visits": list(np.maximum(0, np.round(6 + 2 * (0.8 * f + 0.6 * g))).astype(int).tolist()),
        "returns": _round(10 - 3 * (-0.5 * f + 0.87 * rng.normal(0, 1, rows)), 2),
        "segment": list(segment.tolist()),
    }
    params = _example("mirror", rows=min(rows, MIRROR_SYNTHETIC), columns=list(columns))
    note = f"mirror: {MIRROR_SYNTHETIC:,} synthetic rows asked for (all in the answer)"
    return Table(columns, params, notes=[note])


def _newton(rows: int, rng: np.random.Generator) -> Table:
    """The ideal gas law: pressure from moles, temperature and volume, without noise (as the
    example): the search stops early once a program fits exactly."""
    moles = np.round(rng.uniform(1, 5, rows), 2)
    kelvin = np.round(rng.uniform(250, 400, rows), 1)
    litres = np.round(rng.uniform(10, 50, rows), 1)
    columns: Columns = {
        "moles": _round(moles, 2),
        "kelvin": _round(kelvin, 1),
        "litres": _round(litres, 1),
        "pressure": _round(moles * kelvin / litres, 6),
    }
    params = _example("newton", target="pressure", features=["moles", "kelvin", "litres"])
    return Table(columns, params)


#: oracle runs ADF tests (lags chosen by AIC, up to 12 (n/100)^(1/4)) on every series and VAR
#: order selection on every pair: 11 s for 10,000 rows, 34 s for 30,000.
ORACLE_ROWS = 10_000


def _oracle(rows: int, rng: np.random.Generator) -> Table:
    """Hourly series: demand follows ads three steps later; weather is unrelated."""
    from scipy.signal import lfilter

    used, note = _capped("oracle", rows, ORACLE_ROWS, "ADF lag search on each series")
    ads = lfilter([1.0], [1.0, -0.6], rng.normal(0, 1, used))
    demand = rng.normal(0, 1, used)
    demand[3:] += 0.8 * ads[:-3]
    columns: Columns = {
        "hour": _hours(used),
        "ads": _round(ads, 4),
        "demand": _round(demand, 4),
        "weather": _round(lfilter([1.0], [1.0, -0.5], rng.normal(0, 1, used)), 4),
    }
    params = _example("oracle", columns=["ads", "demand", "weather"], time="hour")
    return Table(columns, params, notes=[note])


def _scout_month(rows: int, rng: np.random.Generator, extra: float, mobile: float) -> Columns:
    minutes = rng.normal(12 + extra, 4, rows)
    items = rng.integers(1, 9, rows)
    return {
        "minutes": _round(minutes, 1),
        "items": list(items.tolist()),
        "device": list(np.where(rng.random(rows) < mobile, "mobile", "desktop").tolist()),
        "age": list(rng.integers(18, 71, rows).tolist()),
        "spend": _round(3 * minutes + 9 * items + rng.normal(0, 6, rows), 2),
    }


#: scout's nearest-neighbour mutual information and forest permutation importance: 8 s for
#: 20,000 rows, 48 s for 100,000.
SCOUT_ROWS = 20_000


def _scout(rows: int, rng: np.random.Generator) -> Table:
    """Spend grows with minutes and items; this month's visitors stay longer and more come
    from mobile than in the reference month (a table of the same size)."""
    used, note = _capped("scout", rows, SCOUT_ROWS, "k-NN mutual information, forest importance")
    current = _scout_month(used, rng, 5.0, 0.75)
    reference = _scout_month(used, rng, 0.0, 0.4)
    params = _example("scout", target="spend", features=None, reference=None)
    return Table(current, params, tables={"reference": reference}, notes=[note])


def _statistical(rows: int, rng: np.random.Generator) -> Table:
    """Three teams; team C scores higher; hours and score go together."""
    team = np.array(list("ABC"))[np.arange(rows) % 3]
    hours = np.round(rng.uniform(2.0, 10.0, rows), 2)
    score = 50.0 + 3.0 * hours + 12.0 * (team == "C") + rng.normal(0.0, 4.0, rows)
    columns: Columns = {
        "team": list(team.tolist()),
        "hours": _round(hours, 2),
        "score": _round(score, 2),
        "age": list((20 + np.arange(rows) % 17).tolist()),
    }
    params = _example("statistical", columns=["score", "hours", "age"], value="score", group="team")
    return Table(columns, params)


#: titan's nested cross-validation of every model family: 12 s for 30,000 rows, 38 s for
#: 100,000.
TITAN_ROWS = 30_000


def _titan(rows: int, rng: np.random.Generator) -> Table:
    """Floor area and age drive a price; the district adds a premium; one column is noise. The
    search must end on ``max_candidates`` (1, as the example), not on the clock, for the server
    and the direct call to do the same work: the budget is raised (and ``budget_spent`` is
    checked false)."""
    rows, note = _capped("titan", rows, TITAN_ROWS, "nested cross-validation of every family")
    area = np.round(rng.uniform(40, 160, rows), 1)
    age = rng.integers(0, 61, rows)
    district = rng.choice(np.array(["north", "south", "centre"]), rows)
    premium = np.select([district == "south", district == "centre"], [-20.0, 40.0], 0.0)
    columns: Columns = {
        "area": _round(area, 1),
        "age": list(age.tolist()),
        "district": list(district.tolist()),
        "noise": _round(rng.uniform(0, 1, rows)),
        "price": _round(2.0 * area - 1.2 * age + premium + rng.normal(0, 12, rows), 1),
    }
    params = _example("titan", target="price", time_budget_s=600.0)
    knob = "titan: time_budget_s 600, so that max_candidates (1, as the example) ends the search"
    return Table(columns, params, notes=[note, knob])


#: trend's binary segmentation with a linear cost grows about as the square of the rows: 6 s
#: for 10,000, 25 s for 20,000, over 4 minutes for 100,000.
TREND_ROWS = 10_000


def _trend(rows: int, rng: np.random.Generator) -> Table:
    """An hourly series: slow rise, a daily cycle, noise, a level shift of +6 at 55%."""
    used, note = _capped("trend", rows, TREND_ROWS, "binary segmentation, linear cost")
    step = np.arange(used)
    level = 50.0 + 0.001 * step + 4.0 * np.sin(2 * np.pi * step / 24) + rng.normal(0, 1, used)
    level += 6.0 * (step >= int(0.55 * used))
    columns: Columns = {"hour": _hours(used), "level": _round(level, 3)}
    return Table(columns, _example("trend", time="hour", target="level"), notes=[note])


# -- finance, operations and retrieval engines -------------------------------------------------


def _month_starts(start: str, months: np.ndarray) -> np.ndarray:
    """The first day of the month ``months`` (integers) after ``start`` ("2024-01")."""
    first = np.datetime64(start, "M") + months.astype("timedelta64[M]")
    return first.astype("datetime64[D]")


def _iso_days(days: np.ndarray) -> list[Cell]:
    """ISO 8601 dates (datetime64[D])."""
    return list(np.datetime_as_string(days, unit="D").tolist())


def _labels(prefix: str, numbers: np.ndarray, width: int) -> list[Cell]:
    """Labels such as ``P00042``, from integers."""
    return list(np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).tolist())


def _pick(labels: Sequence[Cell], which: np.ndarray) -> list[Cell]:
    return list(np.asarray(labels)[which].tolist())


def _fields(table: tuple[tuple[Any, ...], ...], *positions: int) -> list[np.ndarray]:
    """Columns of a table of constants, as arrays (one per position)."""
    return [np.array([entry[position] for entry in table]) for position in positions]


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _period_labels(index: np.ndarray, year: int, per_year: int, form: str) -> list[Cell]:
    """Accounting period labels ("Mar 2024", "Q2 2024") of periods ``index`` from ``year``,
    ``per_year`` a year. Labels, not ISO 8601 dates: an uploaded dataset stores a column of
    ISO dates as datetimes, which these engines echo as times, so an inline and a dataset
    request would name the periods differently."""
    labels = [
        form.format(year=year + k // per_year, period=k % per_year + 1, month=_MONTH_NAMES[k % 12])
        for k in range(int(index.max()) + 1)
    ]
    return _pick(labels, index)


#: revenue_forecast's daily series: 27 years. It backtests seven exponential smoothing models
#: on three folds and refits the best, each fit on the whole series: 6.5 s for 10,000 days,
#: 8 s for 20,000; 100,000 days (274 years) would end past the dates pandas holds (2262).
REVENUE_DAYS = 10_000


def _revenue_forecast(rows: int, rng: np.random.Generator) -> Table:
    """A store chain's daily revenue from 1998-01-01: 8% growth a year, a weekly cycle (busy
    weekends; season 7, inferred), a December peak and 5% lognormal noise."""
    used, note = _capped("revenue_forecast", rows, REVENUE_DAYS, "27 years of daily revenue")
    day = np.arange(used)
    days = np.datetime64("1998-01-01", "D") + day.astype("timedelta64[D]")
    weekly = np.array([0.85, 0.9, 0.92, 0.95, 1.08, 1.3, 1.0])[day % 7]
    december = 1.0 + 0.3 * (days.astype("datetime64[M]").astype(int) % 12 == 11)
    growth = 1.08 ** (day / 365.2425)
    revenue = 20_000.0 * growth * weekly * december * rng.lognormal(0.0, 0.05, used)
    columns: Columns = {"day": _iso_days(days), "revenue": _round(revenue, 2)}
    params = _example("revenue_forecast", time="day", revenue="revenue")
    return Table(columns, params, notes=[note])


#: cash_flow's ledger spans the example's eighteen months whatever its size (more rows: finer
#: entries).
CASH_FLOW_MONTHS = 18
#: (memo, sign, monthly total in the first month, growth a month, share of the entries).
_LEDGER = (
    ("sales", 1.0, 27_000.0, 0.04, 0.55),
    ("supplier", -1.0, 12_000.0, 0.0, 0.30),
    ("payroll", -1.0, 42_000.0, 0.0, 0.12),
    ("rent", -1.0, 6_500.0, 0.0, 0.03),
)


def _cash_flow(rows: int, rng: np.random.Generator) -> Table:
    """The example's young company at a finer grain: each month's sales receipts (growing 4% a
    month), supplier bills, payroll and rent split over that month's entries, a grant in the
    seventh month, so the monthly flows (still burning cash) do not depend on the size."""
    month = np.arange(rows) * CASH_FLOW_MONTHS // rows
    sign, total, growth, share = _fields(_LEDGER, 1, 2, 3, 4)
    kind = rng.choice(len(_LEDGER), rows, p=share)
    cell = month * len(_LEDGER) + kind
    entries = np.bincount(cell, minlength=CASH_FLOW_MONTHS * len(_LEDGER))[cell]
    monthly = total[kind] * (1.0 + growth[kind]) ** month
    amount = sign[kind] * monthly / entries * rng.lognormal(0.0, 0.25, rows)
    day = _month_starts("2023-01", month) + rng.integers(0, 28, rows).astype("timedelta64[D]")
    memo = np.array([memo for memo, *_ in _LEDGER], dtype=object)[kind]
    grant = np.searchsorted(month, 6)
    amount[grant], memo[grant] = 60_000.0, "grant"
    columns: Columns = {
        "date": _iso_days(day),
        "amount": _round(amount, 2),
        "memo": list(memo.tolist()),
    }
    return Table(columns, _example("cash_flow", date="date", amount="amount"))


#: (budget line, type, monthly budget, how its actuals run against it).
_BUDGET_LINES = (
    ("Product sales", "revenue", 120_000.0, 1.0),
    ("Services", "revenue", 35_000.0, 1.0),
    ("Subscriptions", "revenue", 48_000.0, 1.08),
    ("Licences", "revenue", 22_000.0, 0.85),
    ("Payroll", "cost", 80_000.0, 1.0),
    ("Marketing", "cost", 15_000.0, 1.0),
    ("Cloud hosting", "cost", 9_000.0, 1.25),
    ("Travel", "cost", 4_000.0, 0.6),
    ("Rent", "cost", 12_000.0, 1.0),
    ("Software", "cost", 6_000.0, 1.12),
    ("Training", "cost", 2_500.0, 0.7),
    ("Legal", "cost", 3_000.0, 1.4),
    ("Recruiting", "cost", 5_000.0, 0.9),
    ("Utilities", "cost", 1_800.0, 1.05),
    ("Insurance", "cost", 2_200.0, 1.0),
    ("Equipment", "cost", 7_500.0, 0.8),
)
#: budget_variance's budget spans this many months; more rows are more cost centres.
BUDGET_MONTHS = 24


def _budget_variance(rows: int, rng: np.random.Generator) -> Table:
    """Two years of a monthly budget of sixteen lines (four revenue, twelve cost), each row a
    cost centre's part of a line in a month: actuals scattered around the plan, some lines
    running over (hosting, legal) or under (travel, licences)."""
    position = np.arange(rows)
    line, month = position % len(_BUDGET_LINES), (position // len(_BUDGET_LINES)) % BUDGET_MONTHS
    centre = position // (len(_BUDGET_LINES) * BUDGET_MONTHS)
    plan, drift = _fields(_BUDGET_LINES, 2, 3)
    budget = np.round(plan[line] / (centre.max() + 1) * rng.uniform(0.5, 1.5, rows), 2)
    columns: Columns = {
        "month": _period_labels(month, 2023, 12, "{month} {year}"),
        "centre": _labels("CC", centre, 4),
        "line": _pick([name for name, *_ in _BUDGET_LINES], line),
        "type": _pick([kind for _, kind, *_ in _BUDGET_LINES], line),
        "budget": _round(budget, 2),
        "actual": _round(budget * drift[line] * rng.uniform(0.93, 1.07, rows), 2),
    }
    params = _example(
        "budget_variance",
        category="line",
        actual="actual",
        budget="budget",
        period="month",
        line_type="type",
    )
    return Table(columns, params)


#: (product line, share of revenue in the first quarter, its change a quarter, cost of goods
#: and operating expenses as shares of revenue).
_PRODUCT_LINES = (
    ("Licences", 0.30, -0.020, 0.10, 0.45),
    ("Services", 0.20, 0.000, 0.45, 0.25),
    ("Hardware", 0.12, 0.025, 0.70, 0.12),
    ("Support", 0.14, 0.000, 0.30, 0.20),
    ("Training", 0.06, -0.002, 0.40, 0.30),
    ("Cloud", 0.18, 0.010, 0.35, 0.22),
)
PROFIT_QUARTERS = 8


def _profit_margin(rows: int, rng: np.random.Generator) -> Table:
    """Two years of invoices over six product lines: high-margin licences lose share to
    low-margin hardware (a mix effect) while each line's own margins drift little."""
    quarter = np.arange(rows) * PROFIT_QUARTERS // rows
    share, change, cost, opex = _fields(_PRODUCT_LINES, 1, 2, 3, 4)
    shares = share + change * np.arange(PROFIT_QUARTERS)[:, None]
    cumulative = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    product = (rng.random(rows)[:, None] > cumulative[quarter]).sum(axis=1)
    product = np.minimum(product, len(_PRODUCT_LINES) - 1)
    revenue = rng.lognormal(np.log(4_000.0), 0.6, rows)
    drift = 0.003 * quarter * np.where(product == 1, 1.0, -1.0)
    columns: Columns = {
        "quarter": _period_labels(quarter, 2023, 4, "Q{period} {year}"),
        "product": _pick([name for name, *_ in _PRODUCT_LINES], product),
        "revenue": _round(revenue, 2),
        "cogs": _round(revenue * (cost[product] + drift) * rng.uniform(0.95, 1.05, rows), 2),
        "opex": _round(revenue * opex[product] * rng.uniform(0.9, 1.1, rows), 2),
        "interest": _round(revenue * 0.01, 2),
        "tax": _round(revenue * 0.05, 2),
    }
    params = _example(
        "profit_margin",
        segment="product",
        revenue="revenue",
        cogs="cogs",
        operating_expenses="opex",
        other_expenses=["interest", "tax"],
        period="quarter",
    )
    return Table(columns, params)


#: (category, usual unit price).
_PURCHASES = (
    ("paper", 4.0),
    ("toner", 55.0),
    ("chairs", 180.0),
    ("desks", 420.0),
    ("laptops", 1_150.0),
    ("monitors", 240.0),
    ("cables", 9.0),
    ("cleaning", 18.0),
    ("coffee", 14.0),
    ("licences", 95.0),
)
#: Vendors in cost_optimization's purchase lines (their shares fall as 1 / rank).
PURCHASE_VENDORS = 60


def _cost_optimization(rows: int, rng: np.random.Generator) -> Table:
    """Two years of purchase lines from sixty vendors (a few take most of the spend) over ten
    categories, unit prices within 7% of the category's usual one; 0.2% of the lines are a
    payment made again a day or two later (same invoice), 0.2% paid 1.6 times the usual price."""
    weights = 1.0 / np.arange(1, PURCHASE_VENDORS + 1)
    vendor = rng.choice(PURCHASE_VENDORS, rows, p=weights / weights.sum())
    category = rng.integers(0, len(_PURCHASES), rows)
    (price,) = _fields(_PURCHASES, 1)
    quantity = rng.integers(5, 41, rows)
    unit = np.round(price[category] * rng.uniform(0.93, 1.07, rows), 2)
    day = np.arange(rows) * 730 // rows
    invoice = np.arange(rows) + 100_000
    planted = max(1, rows // 500)
    chosen = rng.choice(rows, 3 * planted, replace=False)
    copied, copies, dear = np.split(chosen, 3)
    for values in (vendor, category, quantity, unit, invoice):
        values[copies] = values[copied]
    day[copies] = day[copied] + rng.integers(1, 3, planted)
    unit[dear] = price[category[dear]] * 1.6
    columns: Columns = {
        "vendor": _labels("V", vendor, 3),
        "category": _pick([name for name, _ in _PURCHASES], category),
        "quantity": list(quantity.tolist()),
        "amount": _round(quantity * unit, 2),
        "date": _iso_days(np.datetime64("2023-01-01", "D") + day.astype("timedelta64[D]")),
        "invoice": _labels("INV-", invoice, 6),
    }
    params = _example(
        "cost_optimization",
        vendor="vendor",
        amount="amount",
        category="category",
        quantity="quantity",
        date="date",
        invoice="invoice",
    )
    return Table(columns, params)


def _pricing_strategy(rows: int, rng: np.random.Generator) -> Table:
    """Weekly sales of one product across stores at seven price points, a quarter of the
    store-weeks on promotion: a constant elasticity of -1.6, promotions lifting sales 35%."""
    prices = np.array([6.99, 7.99, 8.99, 9.99, 10.99, 11.99, 12.99])
    price = prices[rng.integers(0, len(prices), rows)]
    promo = (rng.random(rows) < 0.25).astype(int)
    units = np.exp(8.0 - 1.6 * np.log(price) + 0.3 * promo + rng.normal(0.0, 0.1, rows))
    columns: Columns = {
        "store": _labels("S", np.arange(rows) // 52, 4),
        "week": list((np.arange(rows) % 52 + 1).tolist()),
        "price": list(price.tolist()),
        "promo": list(promo.tolist()),
        "units": list(np.round(units).astype(int).tolist()),
    }
    params = _example("pricing_strategy", price="price", quantity="units", controls=["promo"])
    return Table(columns, params)


def _roi_prediction(rows: int, rng: np.random.Generator) -> Table:
    """A small hydro plant's monthly net cash flows from 2025-01: eighteen months of
    construction, then seasonal power sales (the spring melt) that fade 0.5% a year as the
    plant ages, less running costs, and a turbine overhaul every ten years. The engine takes
    at most ``ROI_PERIODS`` periods (rows): the table is capped there. The rates are monthly
    (8% a year, moved by 2 and uncertain by 1 point a year) rather than the example's yearly
    ones."""
    used, note = _capped("roi_prediction", rows, ROI_PERIODS, "the engine's most periods")
    month = np.arange(used)
    season = 1.0 + 0.25 * np.cos(2 * np.pi * (month % 12 - 4) / 12)
    sales = 95_000.0 * season * 0.995 ** (month / 12) * rng.lognormal(0.0, 0.15, used)
    flow = np.where(month < 18, -300_000.0, sales - 25_000.0)
    flow[(month >= 18) & (month % 120 == 0)] -= 600_000.0
    columns: Columns = {
        "month": _iso_days(_month_starts("2025-01", month)),
        "cash_flow": _round(flow, 2),
    }
    monthly = 1.08 ** (1 / 12) - 1
    params = _example(
        "roi_prediction",
        cash_flow="cash_flow",
        period="month",
        discount_rate=round(monthly, 6),
        rate_spread=round(0.02 / 12, 6),
        rate_uncertainty=round(0.01 / 12, 6),
    )
    knob = "roi_prediction: monthly rates (8% a year, spread 2 and uncertainty 1 point a year)"
    return Table(columns, params, notes=[note, knob])


#: inventory_optimization's demand history: this many months per part (more rows: more parts).
INVENTORY_MONTHS = 24
_LEAD_TIMES = np.array([0.5, 0.75, 1.0, 1.5, 2.0, 3.0])


def _inventory_optimization(rows: int, rng: np.random.Generator) -> Table:
    """Two years of monthly demand for a catalogue of parts of very different value (cheap
    parts sell in hundreds, dear ones in few), each with its supplier's lead time in months."""
    parts = -(-rows // INVENTORY_MONTHS)
    part, month = np.arange(rows) % parts, np.arange(rows) // parts
    cost = np.round(rng.lognormal(np.log(40.0), 1.4, parts), 2)
    mean = np.maximum(2.0, 3_000.0 / cost**0.8 * rng.lognormal(0.0, 0.3, parts))
    lead = _LEAD_TIMES[rng.integers(0, len(_LEAD_TIMES), parts)]
    demand = np.maximum(0, np.round(rng.normal(mean[part], 0.25 * mean[part])))
    columns: Columns = {
        "month": _iso_days(_month_starts("2023-01", month)),
        "part": _labels("P", part, 5),
        "demand": list(demand.astype(int).tolist()),
        "lead_time_months": list(lead[part].tolist()),
        "unit_cost": list(cost[part].tolist()),
    }
    params = _example(
        "inventory_optimization",
        item="part",
        demand="demand",
        period="month",
        lead_time_column="lead_time_months",
        unit_cost="unit_cost",
    )
    return Table(columns, params)


_REGIONS = ("north", "south", "east", "west", "centre", "coast")
_PRODUCTS = ("tea", "coffee", "cocoa", "juice", "water")


def _universal_graph(rows: int, rng: np.random.Generator) -> Table:
    """Two years of sales lines by region and product: regions of different size, a product
    mix, a yearly cycle and noise (the example's chart: summed sales by region, by product)."""
    region = rng.integers(0, len(_REGIONS), rows)
    product = rng.integers(0, len(_PRODUCTS), rows)
    month = rng.integers(0, 24, rows)
    base = np.array([120.0, 80.0, 100.0, 60.0, 140.0, 90.0])[region] + 10.0 * product
    sales = base + 5.0 * np.sin(2 * np.pi * month / 12) + rng.normal(0.0, 5.0, rows)
    columns: Columns = {
        "month": _iso_days(_month_starts("2023-01", month)),
        "region": _pick(_REGIONS, region),
        "product": _pick(_PRODUCTS, product),
        "sales": _round(sales, 2),
    }
    params = _example("universal_graph", x="region", y="sales", color="product")
    return Table(columns, params)


#: Support messages by topic: (openings, subjects, complaints). Row texts combine one of each.
_TICKETS = {
    "billing": (
        ("I was charged twice for", "The invoice shows a charge for", "Please refund"),
        ("my order", "the monthly subscription", "the duplicate payment", "my credit card"),
        ("and I want a refund.", "that I do not recognise.", "but the order was cancelled."),
    ),
    "delivery": (
        ("The parcel with", "The courier lost", "Tracking says delivered for"),
        ("my package", "the second box", "the express delivery", "my order"),
        ("but it never arrived.", "and the box was damaged.", "at the wrong address."),
    ),
    "account": (
        ("I cannot log in to", "Please delete", "The password reset fails for"),
        ("my account", "my profile", "the two-factor login", "my email address"),
        ("after too many attempts.", "because the link expired.", "and my personal data."),
    ),
    "product": (
        ("The blender in", "The jacket from", "The lamp I bought with"),
        ("my order", "the last delivery", "the sale", "my gift box"),
        ("makes a loud noise.", "is smaller than the size chart.", "flickers when on."),
    ),
}


#: The row whose neighbours faiss_retrieval's example asks for.
FAISS_ROW = 6
_WHEN = (" It happened yesterday.", " This is the second time.", " Since last week.", "")


def _faiss_retrieval(rows: int, rng: np.random.Generator) -> Table:
    """Support messages in four topics, each put together from the topic's phrases, when it
    happened and an order number (0.5% without a text). Each text is embedded on every run
    (the fake embeddings here and in the server): capped at the engine's most texts a run."""
    used, note = _capped("faiss_retrieval", rows, FAISS_TEXTS, "the engine's most texts a run")
    topic = rng.integers(0, len(_TICKETS), used)
    text = np.empty(used, dtype=object)
    for index, (openings, subjects, complaints) in enumerate(_TICKETS.values()):
        inside = np.flatnonzero(topic == index)
        parts = [np.asarray(words, dtype=object) for words in (openings, subjects, complaints)]
        picked = [words[rng.integers(0, len(words), len(inside))] for words in parts]
        text[inside] = picked[0] + " " + picked[1] + " " + picked[2]
    when = np.asarray(_WHEN, dtype=object)[rng.integers(0, len(_WHEN), used)]
    order = rng.integers(10_000, 100_000, used).astype(str).astype(object)
    text = text + when + " Order " + order + "."
    if used > FAISS_ROW + 1:  # the example's row keeps its text
        text[rng.choice(np.arange(FAISS_ROW + 1, used), used // 200, replace=False)] = None
    columns: Columns = {
        "ticket": list((np.arange(used) + 100).tolist()),
        "topic": _pick(list(_TICKETS), topic),
        "message": list(text.tolist()),
    }
    params = _example("faiss_retrieval", text_column="message", row=FAISS_ROW)
    return Table(columns, params, notes=[note])


#: rag_evaluation's policies: (subject, the policy with {team} in it, a question about it).
_POLICIES = (
    (
        "releases",
        "{team} releases ship every Tuesday at noon after the checklist is signed.",
        "When do {team} releases ship?",
    ),
    (
        "leave",
        "{team} staff ask their lead for annual leave at least a week ahead.",
        "How does {team} staff ask for annual leave?",
    ),
    (
        "expenses",
        "{team} travel expenses are refunded within ten days with receipts.",
        "When are {team} travel expenses refunded?",
    ),
    (
        "security",
        "{team} laptops use disk encryption and lock the screen after five minutes.",
        "What must {team} laptops use for security?",
    ),
    (
        "onboarding",
        "New {team} staff get a laptop, a badge and a buddy on their first day.",
        "What do new {team} staff get on their first day?",
    ),
    (
        "oncall",
        "The {team} on-call engineer answers pages within fifteen minutes.",
        "How fast does the {team} on-call engineer answer pages?",
    ),
    (
        "office",
        "The {team} office opens at eight and closes at seven.",
        "When does the {team} office open?",
    ),
    (
        "payroll",
        "{team} salaries are paid on the last working day of each month.",
        "When are {team} salaries paid?",
    ),
    (
        "reviews",
        "{team} performance reviews happen every March and September.",
        "When are {team} performance reviews?",
    ),
    (
        "hardware",
        "{team} staff order monitors and keyboards through the hardware portal.",
        "How does {team} staff order a monitor?",
    ),
)
_AREAS = ("Payments", "Search", "Mobile", "Billing", "Data", "Platform", "Growth", "Support")
_SITES = ("Lisbon", "Austin", "Osaka", "Nairobi", "Oslo", "Lima", "Pune", "Leeds", "Accra")
#: Queries whose second relevant policy is the same team's ``_RELATED`` one.
_RELATED = {"security": "onboarding", "onboarding": "security", "expenses": "payroll"}


def _rag_evaluation(rows: int, rng: np.random.Generator) -> Table:
    """Questions about a handbook of team policies (each subject written for every team), each
    labelled with its policy and, for some subjects, the same team's related one. Each run
    indexes the handbook and searches every question through the RAG engine (fakes here and
    in the server): capped at the engine's most queries a run."""
    used, note = _capped("rag_evaluation", rows, RAG_QUERIES, "the engine's most queries a run")
    teams = [f"{area} {site}" for site in _SITES for area in _AREAS]
    documents = [
        EvalDocument(id=f"{subject}-{t:03d}", text=policy.format(team=team))
        for t, team in enumerate(teams)
        for subject, policy, _ in _POLICIES
    ]
    team = rng.integers(0, len(teams), used)
    subject = rng.integers(0, len(_POLICIES), used)
    queries: list[Cell] = []
    relevant: list[Cell] = []
    for t, s in zip(team.tolist(), subject.tolist(), strict=True):
        name, _, question = _POLICIES[s]
        queries.append(question.format(team=teams[t]))
        related = _RELATED.get(name)
        labels = [f"{name}-{t:03d}"] + ([f"{related}-{t:03d}"] if related else [])
        relevant.append(";".join(labels))
    columns: Columns = {"query": queries, "relevant": relevant}
    params = _example(
        "rag_evaluation", query_column="query", relevant_column="relevant", documents=documents
    )
    return Table(columns, params, notes=[note])


# -- customers, baskets, payments and classifiers ---------------------------------------------


def _bgnbd_purchases(customers: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The example's BG/NBD process for ``customers`` customers over a year: each joins in the
    first three months, buys at a gamma-distributed rate (a Poisson process) and leaves after
    a repeat purchase with a beta-distributed chance. (customer, day) of every purchase, in
    customer and time order."""
    joined = rng.integers(0, 90, customers)
    window = 365 - joined
    arrivals = rng.poisson(rng.gamma(2.0, 1 / 60.0, customers) * window)
    # Repeat purchases until leaving: geometric in the chance of leaving after each.
    repeats = np.minimum(arrivals, rng.geometric(rng.beta(1.0, 4.0, customers)))
    owner = np.repeat(np.arange(customers), arrivals)
    when = rng.random(len(owner)) * window[owner]
    order = np.lexsort((when, owner))
    owner, when = owner[order], when[order]
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    kept = rank < repeats[owner]
    customer = np.concatenate([np.arange(customers), owner[kept]])
    day = np.concatenate([joined, joined[owner[kept]] + when[kept].astype(int)])
    order = np.lexsort((day, customer))
    return customer[order], day[order]


def _customer_ltv(rows: int, rng: np.random.Generator) -> Table:
    """A year of purchases by customers of an online shop, as the example's: a BG/NBD process
    (their own purchase rate, a chance of leaving after each repeat purchase), amounts around
    each customer's own mean (Gamma-Gamma)."""
    customer, day = _bgnbd_purchases(rows // 2 + 16, rng)
    while len(customer) < rows:  # about six purchases a customer: one round is enough
        more, more_day = _bgnbd_purchases(rows // 2 + 16, rng)
        customer = np.concatenate([customer, more + customer[-1] + 1])
        day = np.concatenate([day, more_day])
    customer, day = customer[:rows], day[:rows]
    mean = rng.gamma(6.0, 5.0, customer[-1] + 1)
    columns: Columns = {
        "customer": _labels("C", customer, 6),
        "date": _iso_days(np.datetime64("2024-01-01", "D") + day.astype("timedelta64[D]")),
        "amount": _round(rng.gamma(3.0, mean[customer] / 3.0), 2),
    }
    params = _example("customer_ltv", customer="customer", date="date", amount="amount")
    return Table(columns, params)


#: Staples of a grocery basket and the chance each is in one.
_STAPLES = {
    "bread": 0.4,
    "milk": 0.35,
    "eggs": 0.3,
    "apples": 0.25,
    "coffee": 0.2,
    "bananas": 0.18,
    "cheese": 0.15,
    "yoghurt": 0.14,
    "tomatoes": 0.12,
    "butter": 0.11,
}
#: (item, chance in a basket, item it brings along, chance it does).
_PAIRS = (
    ("diapers", 0.3, "beer", 0.8),
    ("chips", 0.25, "salsa", 0.7),
    ("pasta", 0.2, "tomato sauce", 0.6),
    ("cereal", 0.15, "oat milk", 0.4),
)
#: Other items of the catalogue, each in few baskets (chances falling as 1 / rank).
BASKET_TAIL = 200


def _market_basket(rows: int, rng: np.random.Generator) -> Table:
    """Grocery baskets: staples picked independently, four planted pairs (diapers with beer,
    chips with salsa, pasta with tomato sauce, cereal with oat milk) and a long tail of items
    each in few baskets; one row per (basket, item)."""
    tail = 0.08 / np.arange(1, BASKET_TAIL + 1) ** 0.7
    chances = np.concatenate([list(_STAPLES.values()), tail])
    names = [*_STAPLES, *(f"item {k:03d}" for k in range(BASKET_TAIL))]
    size = chances.sum() + sum(a * (1 + b) for _, a, _, b in _PAIRS)
    baskets = int(rows / size * 1.3) + 20
    bought = rng.random((baskets, len(chances))) < chances
    for name, chance, along, given in _PAIRS:
        first = rng.random(baskets) < chance
        second = np.where(first, rng.random(baskets) < given, rng.random(baskets) < 0.05)
        bought = np.column_stack([bought, first, second])
        names += [name, along]
    basket, item = np.nonzero(bought)
    columns: Columns = {
        "basket": _labels("B", basket[:rows], 6),
        "item": _pick(names, item[:rows]),
    }
    return Table(columns, _example("market_basket", transaction="basket", item="item"))


#: spend_pattern's payments span three years from 2022-01-01 (a Saturday): two cycles for
#: the month-of-year test.
SPEND_DAYS = 1_096
#: Recurring payees: (label, months between payments (0: weekly), share of the rows, typical
#: amount).
_RECURRING = (
    ("Subscription", 1, 0.30, 60.0),
    ("Cleaning", 0, 0.15, 40.0),
    ("Insurer", 3, 0.04, 400.0),
    ("Licence", 12, 0.01, 900.0),
)
#: Shops paid now and then (their shares fall as 1 / rank).
SPEND_SHOPS = 400


def _recurring(
    rows: int, rng: np.random.Generator, months: int, share: float, typical: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(payee, day, amount) of one kind of recurring payee's payments: every ``months``
    months on a day of the payee's own (monthly with a day or two of jitter), or weekly; half
    the payees pay the same amount each time, the others one that varies a little."""
    count = 36 // months if months else SPEND_DAYS // 7
    payees = max(2, round(rows * share / count))
    payee = np.repeat(np.arange(payees), count)
    k = np.tile(np.arange(count), payees)
    if months:  # each payee starts in a month of its own within its period
        month = months * k + rng.integers(0, months, payees)[payee]
        start = _month_starts("2022-01", month) - np.datetime64("2022-01-01", "D")
        day = start.astype(int) + rng.integers(0, 28, payees)[payee]
        if months == 1:
            day += rng.integers(-2, 3, len(payee))
    else:
        day = 7 * k + rng.integers(0, 7, payees)[payee]
    varies = rng.random(payees) < 0.5
    noise = np.where(varies[payee], rng.lognormal(0.0, 0.08, len(payee)), 1.0)
    amount = rng.lognormal(np.log(typical), 0.8, payees)[payee] * noise
    return payee, np.clip(day, 0, SPEND_DAYS - 1), amount


def _spend_pattern(rows: int, rng: np.random.Generator) -> Table:
    """Three years of a small firm's payments: half to recurring payees (subscriptions
    monthly, a cleaning service weekly, insurers quarterly, licences yearly), half at four
    hundred shops (a few paid often), more on Saturdays; 0.1% of the recurring charges are
    ten times their usual amount."""
    names: list[Cell] = []
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for label, months, share, typical in _RECURRING:
        payee, day, amount = _recurring(rows, rng, months, share, typical)
        parts.append((payee + len(names), day, amount))
        names += _labels(f"{label} ", np.arange(payee.max() + 1), 3)
    payee, day, amount = (np.concatenate(values) for values in zip(*parts, strict=True))
    amount[rng.choice(len(amount), max(1, len(amount) // 1000), replace=False)] *= 10.0
    shops = max(0, rows - len(payee))
    weights = 1.0 / np.arange(1, SPEND_SHOPS + 1)
    shop = rng.choice(SPEND_SHOPS, shops, p=weights / weights.sum()) + len(names)
    names += _labels("Shop ", np.arange(SPEND_SHOPS), 3)
    shop_day = rng.integers(0, SPEND_DAYS, shops)
    to_saturday = np.minimum(shop_day + (7 - shop_day % 7) % 7, SPEND_DAYS - 1)
    shop_day = np.where(rng.random(shops) < 0.3, to_saturday, shop_day)
    payee = np.concatenate([payee, shop])[:rows]
    day = np.concatenate([day, shop_day])[:rows]
    amount = np.concatenate([amount, rng.lognormal(3.0, 0.6, shops)])[:rows]
    order = np.argsort(day, kind="stable")
    columns: Columns = {
        "date": _iso_days(np.datetime64("2022-01-01", "D") + day[order].astype("timedelta64[D]")),
        "payee": _pick(names, payee[order]),
        "amount": _round(amount[order], 2),
    }
    return Table(columns, _example("spend_pattern", date="date", payee="payee", amount="amount"))


def _churn(rows: int, rng: np.random.Generator) -> Table:
    """Subscribers, churned or not, as the example's (the classifier, no duration): short
    tenure, high charges, support calls and a monthly contract raise the log-odds of churning;
    the region does not."""
    tenure = rng.integers(1, 73, rows)
    charges = np.round(rng.uniform(20, 110, rows), 2)
    calls = np.minimum(9, rng.exponential(1 / 0.7, rows).astype(int))
    contract = rng.choice(np.array(["monthly", "monthly", "yearly", "two_year"]), rows)
    effect = np.select([contract == "monthly", contract == "yearly"], [0.9, -0.4], -1.2)
    score = -0.8 - 0.05 * (tenure - 36) + 0.025 * (charges - 65) + 0.45 * (calls - 1) + effect
    columns: Columns = {
        "customer": _labels("c", np.arange(rows), 6),
        "tenure": list(tenure.tolist()),
        "monthly_charges": list(charges.tolist()),
        "support_calls": list(calls.tolist()),
        "contract": list(contract.tolist()),
        "region": _pick(("north", "south", "east", "west"), rng.integers(0, 4, rows)),
        "churned": list((rng.random(rows) < 1 / (1 + np.exp(-score))).astype(int).tolist()),
    }
    return Table(columns, _example("churn", target="churned", id_column="customer"))


_SOURCES = ("referral", "event", "organic", "ads")


def _leads(rows: int, rng: np.random.Generator, first: int) -> Columns:
    """Leads as the example's: referrals and events convert best, as do leads who view pages,
    open emails and ask for a demo; the weekday they came in on does not matter."""
    source = rng.integers(0, len(_SOURCES), rows)
    pages = rng.integers(1, 31, rows)
    emails = rng.integers(0, 13, rows)
    demo = (rng.random(rows) < 0.3).astype(int)
    effect = np.array([1.0, 0.5, 0.0, -0.6])[source]
    score = -1.2 + 1.5 * effect + 0.15 * (pages - 15) + 0.3 * (emails - 6) + 1.8 * demo
    return {
        "lead": _labels("L", np.arange(first, first + rows), 6),
        "source": _pick(_SOURCES, source),
        "pages_viewed": list(pages.tolist()),
        "emails_opened": list(emails.tolist()),
        "demo_requested": list(demo.tolist()),
        "weekday": _pick(("mon", "tue", "wed", "thu", "fri"), rng.integers(0, 5, rows)),
        "converted": list((rng.random(rows) < 1 / (1 + np.exp(-score))).astype(int).tolist()),
    }


#: New leads lead_scoring scores besides the data's (this week's).
NEW_LEADS = 1_000


def _lead_scoring(rows: int, rng: np.random.Generator) -> Table:
    """Past leads, converted or not, as the example's, and a table of new leads to score."""
    new = _leads(min(NEW_LEADS, max(1, rows // 10)), rng, rows)
    del new["converted"]
    params = _example("lead_scoring", target="converted", id_column="lead", predict=None)
    return Table(_leads(rows, rng, 0), params, tables={"predict": new})


def _flash(rows: int, rng: np.random.Generator) -> Table:
    """Loan applications as the example's: approval follows income, debt ratio and credit
    history; row 0 is the example's refused applicant whose counterfactual is searched."""
    income = np.round(rng.uniform(20, 150, rows), 1)
    debt = np.round(rng.uniform(0.05, 0.8, rows), 2)
    years = rng.integers(0, 26, rows)
    score = 0.04 * (income - 70) - 6.0 * (debt - 0.4) + 0.12 * (years - 8)
    approved = np.where(score + rng.normal(0.0, 0.5, rows) > 0, "yes", "no")
    income[0], debt[0], years[0], approved[0] = 45.0, 0.55, 4, "no"
    columns: Columns = {
        "income": list(income.tolist()),
        "debt_ratio": list(debt.tolist()),
        "credit_years": list(years.tolist()),
        "purpose": _pick(("car", "home", "education", "travel"), rng.integers(0, 4, rows)),
        "approved": list(approved.tolist()),
    }
    return Table(columns, _example("flash", target="approved", row=0))


GENERATORS: dict[str, Generator] = {
    "anomaly": _anomaly,
    "chaos": _chaos,
    "chronos": _chronos,
    "clustering": _clustering,
    "galileo": _galileo,
    "mirror": _mirror,
    "newton": _newton,
    "oracle": _oracle,
    "scout": _scout,
    "statistical": _statistical,
    "titan": _titan,
    "trend": _trend,
    "revenue_forecast": _revenue_forecast,
    "cash_flow": _cash_flow,
    "budget_variance": _budget_variance,
    "profit_margin": _profit_margin,
    "cost_optimization": _cost_optimization,
    "pricing_strategy": _pricing_strategy,
    "roi_prediction": _roi_prediction,
    "inventory_optimization": _inventory_optimization,
    "universal_graph": _universal_graph,
    "faiss_retrieval": _faiss_retrieval,
    "rag_evaluation": _rag_evaluation,
    "customer_ltv": _customer_ltv,
    "market_basket": _market_basket,
    "spend_pattern": _spend_pattern,
    "churn": _churn,
    "lead_scoring": _lead_scoring,
    "flash": _flash,
}


def _columns(records: Records) -> Columns:
    names = list(dict.fromkeys(key for row in records for key in row))
    return {name: [row.get(name) for row in records] for name in names}


def _example_table(engine: str) -> Table:
    """An engine the bench has no generator for: its own example, at its own size."""
    method = METHODS[engine]
    data = method.example.data
    note = f"{engine}: no generator here; its example ({len(data)} rows) at every size"
    return Table(_columns(data), method.example.params, notes=[note])


# -- one case: a table, its params, the bodies ----------------------------------------------


def _records(columns: Columns) -> Records:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _parquet(columns: Columns) -> bytes:
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buffer, index=False)
    return buffer.getvalue()


@dataclass(slots=True)
class Case:
    engine: str
    #: Rows asked for.
    asked: int
    table: Table
    records: Records = field(init=False)
    #: The params' own tables as records, by params field.
    tables: dict[str, Records] = field(init=False)
    #: What the engine's prepare step made, msgpack-encoded (engines that call others).
    prepared: bytes = b""
    prepare_warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A params table given inline (the example's rows to predict ...) travels as a table.
        for name in METHODS[self.engine].tables:
            value = getattr(self.table.params, name)
            if isinstance(value, list):
                self.table.tables[name] = _columns(value)
                self.table.params = msgspec.structs.replace(self.table.params, **{name: None})
        self.records = _records(self.table.columns)
        self.tables = {name: _records(columns) for name, columns in self.table.tables.items()}

    @property
    def rows(self) -> int:
        return len(self.records)

    @property
    def params(self) -> msgspec.Struct:
        return self.table.params

    def call(self) -> MethodCall:
        """The worker's call for the inline request, as the server builds it: the params'
        tables travel beside the params, not in them; an engine that calls other engines gets
        what its prepare step made (:func:`prepare_case`, run once, before any clock)."""
        return MethodCall(
            method=self.engine,
            params=msgspec.msgpack.encode(self.params),
            seed=SEED,
            table=TableData(records=self.records),
            tables={name: TableData(records=records) for name, records in self.tables.items()},
            prepared=self.prepared,
            warnings=self.prepare_warnings,
        )

    def inline_body(self) -> bytes:
        params = msgspec.structs.replace(self.params, **self.tables)
        return msgspec.json.encode({"data": self.records, "params": params, "seed": SEED})

    def dataset_body(self, ids: dict[str, str]) -> bytes:
        """The request naming the uploaded tables: ``data`` under the key "data", the params'
        tables under their field names."""
        tables = {name: ids[name] for name in self.tables}
        params = msgspec.structs.replace(self.params, **tables)
        return msgspec.json.encode({"dataset": ids["data"], "params": params, "seed": SEED})

    def parquet(self) -> dict[str, bytes]:
        """Every table of the request as Parquet, by where it goes ("data" or a params field)."""
        found = {"data": _parquet(self.table.columns)}
        found.update({name: _parquet(columns) for name, columns in self.table.tables.items()})
        return found


def make_case(engine: str, rows: int) -> Case:
    generator = GENERATORS.get(engine)
    table = _example_table(engine) if generator is None else generator(rows, rng(rows))
    case = Case(engine=engine, asked=rows, table=table)
    if METHODS[engine].prepare is not None:
        case.prepared, case.prepare_warnings = asyncio.run(prepare_case(case))
    return case


#: The engines some analytic engines call, on their fake backends, in the server as here.
CALLED = ("embeddings", "rag", "llm")


def called_env(folder: Path) -> dict[str, str]:
    """The server's settings for :data:`CALLED`: their fake backends."""
    env = settings_env(fake_settings(folder))
    return {key: env[key] for key in (f"AIPLATFORM_ENGINES__{kind.upper()}" for kind in CALLED)}


async def prepare_case(case: Case) -> tuple[bytes, list[str]]:
    """The prepare step of ``case``'s engine run here, against the same fake engines the
    server has: what its direct call computes from (the server's answer must equal it)."""
    from contextlib import AsyncExitStack

    from aiplatform.engines.analytics.preparation import MethodPreparation
    from aiplatform.server.wiring import build_configured

    method = METHODS[case.engine]
    assert method.prepare is not None
    with tempfile.TemporaryDirectory() as folder:
        settings = fake_settings(folder)
        async with AsyncExitStack() as stack:
            engines: dict[str, Any] = {}
            for kind in CALLED:
                built = build_configured(settings, kind, served=engines)
                engines[kind] = await stack.enter_async_context(built)
            table = TableData(records=case.records)
            preparation = MethodPreparation(method, engines, table, seed=SEED)
            value = await method.prepare(case.params, preparation)
            return msgspec.msgpack.encode(value), preparation.warnings


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- the three ways, each checked -------------------------------------------------------------


def direct(case: Case) -> tuple[float, Any]:
    """Seconds for the computation in this process, and its result as plain values."""
    call = case.call()
    started = time.perf_counter()
    output = run_method(call, lambda fraction, stage: None)
    elapsed = time.perf_counter() - started
    method: Method[Any, Any] = METHODS[case.engine]
    result = msgspec.to_builtins(msgspec.msgpack.decode(output.result, type=method.result))
    return elapsed, result


def served(client: httpx.Client, case: Case, body: bytes, how: str) -> tuple[float, Any, bytes]:
    """Seconds for one request to the server (body already encoded, answer read whole), its
    result and the answer."""
    started = time.perf_counter()
    response = _post(client, f"/v1/analytics/{case.engine}", body)
    elapsed = time.perf_counter() - started
    what = f"{case.engine}, {case.rows} rows, {how}"
    require_status(what, response.status_code, response.content)
    answer = msgspec.json.decode(response.content)
    require(answer.get("engine") == case.engine, f"{what}: answer for {answer.get('engine')}")
    require(answer.get("result") is not None, f"{what}: no result in the answer")
    return elapsed, answer["result"], response.content


def codec_s(case: Case, body: bytes, answer: bytes) -> float:
    """Seconds this process takes for the encoding a served inline call adds to a direct one:
    the JSON body decoded to the engine's request type, the worker's call through msgpack and
    back, the answer decoded and encoded as JSON. The server does this on its event loop and in
    the worker; the rest of its overhead is the HTTP exchange, copies and scheduling."""
    from aiplatform.api.analytics import request_type, response_type

    method = METHODS[case.engine]
    started = time.perf_counter()
    msgspec.json.decode(body, type=request_type(method))
    msgspec.msgpack.decode(msgspec.msgpack.encode(case.call()), type=MethodCall)
    response = msgspec.json.decode(answer, type=response_type(method))
    msgspec.json.encode(response)
    return time.perf_counter() - started


def same(a: Any, b: Any, where: str = "result") -> None:
    """Two results are the same, numbers to a relative 1e-6 (BLAS may sum in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        require(a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}")
        for key in a:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        require_count(f"{where}: items", len(b), len(a))
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{index}]")
    elif isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        require(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {a} != {b}")
    else:
        require(a == b, f"{where}: {a!r} != {b!r}")


def upload(client: httpx.Client, case: Case) -> tuple[dict[str, str], float]:
    """Every table of the request uploaded as Parquet: the dataset ids (by where each table
    goes) and the uploads' seconds."""
    ids: dict[str, str] = {}
    elapsed = 0.0
    for name, data in case.parquet().items():
        started = time.perf_counter()
        response = client.post(
            "/v1/datasets",
            files={"file": (f"{case.engine}-{name}.parquet", data, "application/octet-stream")},
        )
        elapsed += time.perf_counter() - started
        what = f"upload of the {case.engine} table '{name}'"
        require_status(what, response.status_code, response.content)
        dataset = response.json()
        rows = case.rows if name == "data" else len(case.tables[name])
        require_count(f"rows of the {what}", dataset["rows"], rows)
        ids[name] = str(dataset["id"])
    return ids, elapsed


@dataclass(slots=True)
class Figures:
    case: Case
    upload_s: float
    body_mb: float
    answer_mb: float = 0.0
    codec_s: float = 0.0
    #: DataFrame from the inline records, and from the stored Parquet (what the worker does
    #: first for an inline request and for a dataset request).
    frame_records_s: float = 0.0
    frame_parquet_s: float = 0.0
    direct: list[float] = field(default_factory=list)
    inline: list[float] = field(default_factory=list)
    dataset: list[float] = field(default_factory=list)


#: A case whose first direct run is shorter than this gets an untimed round first (a first
#: call on new data is slower, on either side) and more rounds: its figures are the noisiest.
CHEAP_S = 5.0
#: A cheap case runs rounds until each way has taken about this long in all ...
CHEAP_TOTAL_S = 4.0
#: ... and at most this many.
MAX_ROUNDS = 9


def measure(client: httpx.Client, case: Case, repeats: int) -> Figures:
    """The three ways, interleaved (the order rotates each round), ``repeats`` rounds or more
    (see :data:`CHEAP_S`); every answer the same result as the first direct call."""
    ids, upload_s = upload(client, case)
    inline_body, dataset_body = case.inline_body(), case.dataset_body(ids)
    figures = Figures(case, upload_s, len(inline_body) / 1e6)
    results: list[tuple[Any, str]] = []
    answers: list[bytes] = []

    def run_direct() -> None:
        elapsed, result = direct(case)
        figures.direct.append(elapsed)
        results.append((result, "direct"))

    def run_inline() -> None:
        elapsed, result, answer = served(client, case, inline_body, "inline")
        figures.inline.append(elapsed)
        results.append((result, "inline"))
        answers.append(answer)

    def run_dataset() -> None:
        elapsed, result, _ = served(client, case, dataset_body, "dataset")
        figures.dataset.append(elapsed)
        results.append((result, "dataset"))

    ways = [run_direct, run_inline, run_dataset]
    rounds, round_ = repeats, 0
    while round_ < rounds:
        for way in ways[round_ % 3 :] + ways[: round_ % 3]:
            way()
        if round_ == 0 and figures.direct[0] < CHEAP_S:
            first = figures.direct[0]
            for times in (figures.direct, figures.inline, figures.dataset):
                times.clear()
            rounds = 1 + min(MAX_ROUNDS, max(repeats, math.ceil(CHEAP_TOTAL_S / first)))
        round_ += 1
    expected = next(result for result, how in results if how == "direct")
    for result, how in results:
        same(expected, result, f"{case.engine} {how} result")
    if case.engine == "titan":
        require(not expected["budget_spent"], "titan: the time budget ended the search")
    figures.answer_mb = len(answers[-1]) / 1e6
    figures.codec_s = codec_s(case, inline_body, answers[-1])
    figures.frame_records_s, figures.frame_parquet_s = frame_s(client, case, ids["data"])
    for dataset_id in ids.values():
        client.delete(f"/v1/datasets/{dataset_id}")
    return figures


def frame_s(client: httpx.Client, case: Case, dataset_id: str) -> tuple[float, float]:
    """Seconds (best of 3) for the worker's first step in this process: the DataFrame from the
    inline records, and from the dataset's stored Parquet (as ``GET
    /v1/datasets/{id}/table`` hands it to the analytics engine)."""
    from aiplatform.api.datasets import DatasetTable

    response = client.get(f"/v1/datasets/{dataset_id}/table")
    require_status(f"{case.engine} stored table", response.status_code, response.content)
    stored = msgspec.json.decode(response.content, type=DatasetTable)
    require_count(f"rows of the stored {case.engine} table", stored.rows, case.rows)
    best = []
    for table in (TableData(records=case.records), TableData(parquet=stored.parquet)):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            frame = to_frame(table, "data", 10**9, 10**6)
            times.append(time.perf_counter() - started)
            require_count(f"rows of the {case.engine} frame", len(frame), case.rows)
        best.append(min(times))
    return best[0], best[1]


def _post(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def warm_up(client: httpx.Client, engines: list[str]) -> None:
    """Each engine's example once in this process and twice at once on the server, so both of
    its worker processes have imported the engine's libraries before anything is timed."""
    from concurrent.futures import ThreadPoolExecutor

    for engine in engines:
        case = Case(engine=engine, asked=0, table=_example_table(engine))
        if METHODS[engine].prepare is not None:
            case.prepared, case.prepare_warnings = asyncio.run(prepare_case(case))
        direct(case)
        path, body = f"/v1/analytics/{engine}", case.inline_body()
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(partial(_post, client, path), [body, body]))
        for answer in answers:
            require_status(f"{engine} example", answer.status_code, answer.content)


# -- (b) jobs ---------------------------------------------------------------------------------


def jobs_throughput(client: httpx.Client, engine: str, count: int, rows: int) -> dict[str, Any]:
    """``count`` jobs submitted at once and polled until all succeeded, against the same runs as
    synchronous calls back to back; each job's result must be its synchronous call's."""
    generator = GENERATORS.get(engine)
    if generator is None:
        fail(f"no table generator for the jobs engine {engine}")
    bodies = []
    for index in range(count):
        case = Case(engine=engine, asked=rows, table=generator(rows, rng(index)))
        params = msgspec.structs.replace(case.params, **case.tables)
        bodies.append({"engine": engine, "data": case.records, "params": params, "seed": SEED})
    sync_bodies = [
        msgspec.json.encode({k: v for k, v in body.items() if k != "engine"}) for body in bodies
    ]
    job_bodies = [msgspec.json.encode(body) for body in bodies]

    started = time.perf_counter()
    sync_results = []
    for body in sync_bodies:
        response = _post(client, f"/v1/analytics/{engine}", body)
        require_status(f"synchronous {engine} call", response.status_code, response.content)
        sync_results.append(msgspec.json.decode(response.content)["result"])
    sync_s = time.perf_counter() - started

    started = time.perf_counter()
    ids = []
    for body in job_bodies:
        response = _post(client, "/v1/jobs", body)
        require(response.status_code == 202, f"job submission: HTTP {response.status_code}")
        ids.append(response.json()["id"])
    submitted_s = time.perf_counter() - started
    polls = 0
    results: list[Any] = []
    for job_id in ids:  # the runner starts them in order: wait for each in turn
        while True:
            polls += 1
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.01)
        require(job["status"] == "succeeded", f"job {job_id} {job['status']}: {job.get('error')}")
        results.append(job["result"]["result"])
    jobs_s = time.perf_counter() - started
    require_count("jobs that succeeded", len(results), count)
    for index, (job_result, sync_result) in enumerate(zip(results, sync_results, strict=True)):
        same(sync_result, job_result, f"job {index} result")
    for job_id in ids:
        client.delete(f"/v1/jobs/{job_id}")
    return {"sync_s": sync_s, "jobs_s": jobs_s, "submitted_s": submitted_s, "polls": polls}


# -- report -----------------------------------------------------------------------------------


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def report(all_figures: list[Figures], notes: list[str]) -> None:
    print("\n(a) server against direct: seconds, median of the runs\n")
    print(
        "| engine | rows | runs | direct s | inline s | inline / direct | inline added s "
        "| dataset s | dataset / direct |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for figures in all_figures:
        base = statistics.median(figures.direct)
        inline = statistics.median(figures.inline)
        dataset = statistics.median(figures.dataset)
        print(
            f"| {figures.case.engine} | {_rows(figures.case)} | {len(figures.direct)} "
            f"| {base:.3f} | {inline:.3f} | {inline / base:.2f} | {inline - base:+.3f} "
            f"| {dataset:.3f} | {dataset / base:.2f} |"
        )
    print("\nWhere the difference comes from (seconds in this process; MB of JSON)\n")
    print(
        "| engine | rows | body MB | answer MB | codec s | DataFrame from records s "
        "| DataFrame from Parquet s | upload s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for figures in all_figures:
        print(
            f"| {figures.case.engine} | {_rows(figures.case)} | {figures.body_mb:.1f} "
            f"| {figures.answer_mb:.2f} | {figures.codec_s:.3f} | {figures.frame_records_s:.3f} "
            f"| {figures.frame_parquet_s:.3f} | {figures.upload_s:.2f} |"
        )
    notes = [
        *dict.fromkeys(note for f in all_figures for note in f.case.table.notes if note),
        *notes,
    ]
    print(
        "\nbody: the inline request; answer: the response; codec: decoding the body as the "
        "server does, the worker call through msgpack and back, the answer decoded and encoded; "
        "DataFrame from records / Parquet: the worker's first step for an inline / a dataset "
        "request (direct takes the inline request's call: records); upload: every table of "
        "the request as Parquet to POST /v1/datasets, once."
    )
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")


def _rows(case: Case) -> str:
    if case.rows == case.asked:
        return f"{case.rows:,}"
    return f"{case.rows:,} (of {case.asked:,})"


def report_jobs(engine: str, count: int, rows: int, figures: dict[str, Any]) -> None:
    sync_rate, jobs_rate = count / figures["sync_s"], count / figures["jobs_s"]
    print(f"\n(b) jobs: {count} {engine} runs on {rows} rows each\n")
    print("| | total s | runs/s | ratio |")
    print("|---|---|---|---|")
    print(f"| synchronous calls, back to back | {figures['sync_s']:.2f} | {sync_rate:.1f} | 1.00 |")
    print(
        f"| jobs, submitted at once, polled | {figures['jobs_s']:.2f} | {jobs_rate:.1f} "
        f"| {jobs_rate / sync_rate:.2f} |"
    )
    print(
        f"\nSubmitting all {count} took {figures['submitted_s']:.2f} s; "
        f"{figures['polls']} polls (GET /v1/jobs/{{id}}, 10 ms apart)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000", help="table sizes, comma-separated")
    parser.add_argument("--engines", default=",".join(METHODS), help="comma-separated")
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds of the three ways (cheap cases get more)"
    )
    parser.add_argument("--jobs", type=int, default=50, help="jobs in (b); 0 skips it")
    parser.add_argument("--jobs-engine", default="statistical")
    parser.add_argument("--jobs-rows", type=int, default=200)
    args = parser.parse_args()
    engines = [name for name in args.engines.split(",") if name]
    unknown = [name for name in engines if name not in METHODS]
    require(not unknown, f"unknown engines {unknown}; registered: {', '.join(METHODS)}")
    require(args.repeats >= 1, "--repeats must be at least 1")
    sizes = [int(size) for size in args.rows.split(",") if size]
    began = time.perf_counter()
    print(f"Machine: {_machine()}")
    print(f"Engines: {', '.join(engines)}; rows: {', '.join(f'{n:,}' for n in sizes)}")
    called = tempfile.TemporaryDirectory()
    server = ServerProcess(
        ["--engines", ",".join(("analytics", "datasets", *CALLED))],
        called_env(Path(called.name)),
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S) as client:
            warm_up(client, engines)
            all_figures: list[Figures] = []
            skipped: list[str] = []
            measured: dict[tuple[str, int], int] = {}
            for size in sizes:
                for engine in engines:
                    case = make_case(engine, size)
                    if (engine, case.rows) in measured:
                        first = measured[engine, case.rows]
                        skipped.append(
                            f"{engine} at {size:,} rows: the same capped table as at "
                            f"{first:,}, not measured again"
                        )
                        continue
                    measured[engine, case.rows] = size
                    figures = measure(client, case, args.repeats)
                    all_figures.append(figures)
                    print(
                        f"  {engine} {case.rows:,} rows: direct "
                        f"{statistics.median(figures.direct):.3f} s, inline "
                        f"{statistics.median(figures.inline):.3f} s, dataset "
                        f"{statistics.median(figures.dataset):.3f} s ({len(figures.direct)} runs)",
                        flush=True,
                    )
            report(all_figures, skipped)
            if args.jobs:
                warm_up(client, [args.jobs_engine])
                jobs = jobs_throughput(client, args.jobs_engine, args.jobs, args.jobs_rows)
                report_jobs(args.jobs_engine, args.jobs, args.jobs_rows, jobs)
    finally:
        server.stop()
        called.cleanup()
    print(f"\nRun time: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    run_bench(main)
