"""Synthetic rows that keep the columns' distributions and their correlations.

A Gaussian copula with empirical marginals. Each column is turned into normal scores: a number
through its rank (ties spread evenly over the tied ranks, seeded), a category through its
interval of the unit line (categories ordered by frequency, each taking its share; a value is
placed at random inside its interval, seeded) — so every column's scores are standard normal.
The scores' correlation matrix is the copula; synthetic scores drawn from it are mapped back
through each column's observed quantiles: numbers with many distinct values by interpolating
between observed values (rounded when all are whole), numbers with few distinct values and
categories by the interval the draw falls in. Missing numbers stay missing at their observed
rate; a missing category is a category of its own.

A synthetic row identical to a real row is drawn again (a few times) and dropped if it keeps
copying one, so no real row is handed back. (The ``copulas`` package's GaussianMultivariate fits
parametric marginals, which bend skewed columns and their correlations, and has no categories;
the copula is therefore built here with numpy and scipy.)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "MirrorColumn", "MirrorFidelity", "MirrorParams", "MirrorResult"]

#: The most synthetic rows one request makes.
MAX_ROWS = 100_000
#: A numeric column with at most this many distinct values is drawn as discrete levels.
DISCRETE_LEVELS = 20
#: How many times rows that copy a real row are drawn again before they are dropped.
REDRAWS = 20
#: The nearest-row distance compares at most this many synthetic rows ...
DISTANCE_SYNTHETIC = 2_000
#: ... with at most this many real rows (seeded samples above these).
DISTANCE_REAL = 20_000
#: A text column with more distinct values than this share of the rows (and over 20) is taken
#: for an identifier and left out unless named.
IDENTIFIER_SHARE = 0.9


class MirrorParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: How many synthetic rows to make. None: as many as the data have (at most 100000).
    rows: Annotated[int, msgspec.Meta(ge=1, le=MAX_ROWS)] | None = None
    #: The columns to synthesise. None: every column (text columns whose values are nearly
    #: all distinct, such as identifiers, are left out).
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=500)] | None = None


class MirrorColumn(msgspec.Struct, kw_only=True):
    column: str
    #: "numeric" or "categorical".
    kind: str
    #: Numbers: two-sample Kolmogorov-Smirnov distance between real and synthetic values.
    ks_statistic: float | None
    #: Categories: total variation distance between real and synthetic frequencies.
    tvd: float | None


class MirrorFidelity(msgspec.Struct, kw_only=True):
    columns: list[MirrorColumn]
    #: Largest absolute difference between the real and the synthetic Pearson correlation
    #: matrices of the numeric columns; None with fewer than two numeric columns.
    correlation_difference: float | None


class MirrorResult(msgspec.Struct, kw_only=True):
    #: The synthetic records.
    rows: list[dict[str, Cell]]
    fidelity: MirrorFidelity
    #: Synthetic rows identical to a real row (0: such rows are drawn again or dropped).
    copies: int
    #: Rows drawn again because the row drawn copied a real row (a row drawn again twice
    #: counts twice).
    redrawn: int
    #: Rows dropped because they kept copying a real row.
    dropped: int
    #: Smallest distance from a synthetic row to any real row (Gower: per column the numeric
    #: difference over the column's range, or 0/1 for categories and missing values, averaged;
    #: 0 would be a copy, 1 differs in every column).
    min_distance: float | None


@dataclass(slots=True)
class _Column:
    """One column's marginal: how values become uniforms and back."""

    name: str
    numeric: bool
    #: numbers: sorted present values; categories: the categories, most frequent first
    levels: Any
    #: upper ends of each level's interval of the unit line (discrete numbers and categories;
    #: empty for numbers with many distinct values)
    upper: np.ndarray
    #: the sorted present values (numbers with many distinct values)
    sorted_values: np.ndarray | None
    whole: bool
    missing_rate: float
    low: float
    span: float


def compute(frame: pd.DataFrame, params: MirrorParams, run: Run) -> Outcome[MirrorResult]:
    import numpy as np

    names = _chosen(frame, params, run)
    count = params.rows if params.rows is not None else min(len(frame), MAX_ROWS)
    rng = np.random.default_rng(run.seed)
    run.progress(0.05, "learning the marginals")
    table = frame[names]
    marginals, scores = _fit(table, rng)
    run.progress(0.15, "correlating the normal scores")
    factor = np.linalg.cholesky(_correlation(scores))
    run.progress(0.3, "drawing")
    real_keys = _row_keys(table, marginals)
    synthetic = _draw(marginals, factor, count, rng)
    copied = np.isin(_row_keys(synthetic, marginals), real_keys)
    redrawn = int(copied.sum())
    for round_ in range(REDRAWS):
        if not copied.any():
            break
        run.progress(0.3 + 0.3 * (round_ + 1) / REDRAWS, "drawing again rows that copy real ones")
        again = _draw(marginals, factor, int(copied.sum()), rng)
        synthetic = _replaced(synthetic, copied, again)
        fresh = np.isin(_row_keys(again, marginals), real_keys)
        redrawn += int(fresh.sum())
        still = np.zeros(len(copied), dtype=bool)
        still[np.flatnonzero(copied)[fresh]] = True
        copied = still
    dropped = int(copied.sum())
    synthetic = synthetic.loc[~copied].reset_index(drop=True)
    if synthetic.empty:
        raise UnprocessableEntityError(
            "Every synthetic row copies a real row: the columns have so few distinct "
            "combinations that the data hold them all. Choose fewer columns or ones with more "
            "distinct values.",
            code="no_private_rows",
        )
    if dropped:
        run.warn(
            f"{dropped} of {count} synthetic rows kept copying a real row and were dropped; "
            f"{len(synthetic)} rows are returned."
        )
    copies = int(np.isin(_row_keys(synthetic, marginals), real_keys).sum())
    run.progress(0.7, "measuring fidelity")
    fidelity, correlations = _fidelity(table, synthetic, marginals)
    run.progress(0.8, "measuring distances to real rows")
    distance = _min_distance(table, synthetic, marginals, rng, run)
    result = MirrorResult(
        rows=_records(synthetic, marginals),
        fidelity=fidelity,
        copies=copies,
        redrawn=redrawn,
        dropped=dropped,
        min_distance=distance,
    )
    run.progress(0.95, "drawing charts")
    return Outcome(
        result=result,
        summary=_summary(result, len(frame)),
        charts=_charts(table, synthetic, marginals, correlations),
    )


def _replaced(table: pd.DataFrame, rows: np.ndarray, new: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the rows where ``rows`` is true replaced by ``new``'s, column by column
    (each column keeps its type)."""
    import pandas as pd

    data = {}
    for name in table.columns:
        values = table[name].to_numpy(copy=True)
        values[rows] = new[name].to_numpy()
        data[name] = values
    return pd.DataFrame(data)


def _chosen(frame: pd.DataFrame, params: MirrorParams, run: Run) -> list[str]:
    """The columns to synthesise, checked (numbers finite and below ±1e150, as
    :func:`columns.check_finite` has them); identifier-like text columns left out unless
    named."""
    if params.columns is not None:
        names = columns.columns(frame, params.columns, "columns")
    else:
        names = [str(name) for name in frame.columns]
    kept = []
    for name in names:
        series = frame[name]
        if series.isna().all():
            raise InvalidRequestError(
                f"Column '{name}' given as columns has no values (all missing).",
                param="params.columns",
                code="all_missing",
            )
        if _is_numeric(series):
            columns.check_finite(series, name, "columns")
            kept.append(name)
            continue
        distinct = series.dropna().astype(str).nunique()
        if distinct > 20 and distinct > IDENTIFIER_SHARE * series.notna().sum():
            if params.columns is None:
                run.warn(
                    f"Column '{name}' looks like an identifier ({distinct} distinct values) and "
                    "is left out; name it in params.columns to synthesise it."
                )
                continue
            run.warn(
                f"Column '{name}' has {distinct} distinct values; synthetic rows reuse its real "
                "values."
            )
        kept.append(name)
    if not kept:
        raise InvalidRequestError(
            "No column is left to synthesise; name the columns in params.columns.",
            param="params.columns",
            code="no_columns",
        )
    return kept


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and series.dtype != bool)


def _fit(table: pd.DataFrame, rng: np.random.Generator) -> tuple[list[_Column], np.ndarray]:
    """Each column's marginal and normal scores (rows x columns).

    A category has no order of its own, and a Gaussian copula only carries monotone links: a
    categorical column's categories are put in the order of their mean score on the column
    (numeric first, then categorical ones already placed) that they explain best (the largest
    correlation ratio), so that, e.g., a segment made from spend keeps following spend.
    """
    import numpy as np

    found: dict[str, tuple[_Column, np.ndarray]] = {}
    numeric = [str(name) for name in table.columns if _is_numeric(table[name])]
    for name in numeric:
        column = _marginal(table[name])
        found[name] = (column, _scores(table[name], column, rng))
    for name in table.columns:
        if str(name) in found:
            continue
        anchor = _best_anchor(table[name], [scores for _, scores in found.values()])
        column = _marginal(table[name], anchor)
        found[str(name)] = (column, _scores(table[name], column, rng))
    marginals = [found[str(name)][0] for name in table.columns]
    return marginals, np.column_stack([found[str(name)][1] for name in table.columns])


def _best_anchor(series: pd.Series, candidates: list[np.ndarray]) -> np.ndarray | None:
    """The candidate scores the column's categories explain best (largest correlation ratio:
    between-category variance over total variance), or None without candidates."""
    import numpy as np
    import pandas as pd

    groups = _category_keys(series).to_numpy()
    best, best_ratio = None, -1.0
    for scores in candidates:
        total = float(np.var(scores))
        if total <= 0:
            continue
        means = pd.Series(scores).groupby(groups, dropna=False).transform("mean").to_numpy()
        ratio = float(np.var(means)) / total
        if ratio > best_ratio:
            best, best_ratio = scores, ratio
    return best


def _marginal(series: pd.Series, anchor: np.ndarray | None = None) -> _Column:
    import numpy as np
    import pandas as pd

    name = str(series.name)
    if _is_numeric(series):
        present = np.sort(series.dropna().to_numpy(dtype=float))
        levels = np.unique(present)
        discrete = len(levels) <= DISCRETE_LEVELS
        upper = np.empty(0)
        if discrete:
            upper = np.cumsum([np.sum(present == level) for level in levels]) / len(present)
        return _Column(
            name=name,
            numeric=True,
            levels=levels,
            upper=upper,
            sorted_values=None if discrete else present,
            whole=bool(np.all(present == np.round(present))),
            missing_rate=float(series.isna().mean()),
            low=float(present[0]),
            span=float(present[-1] - present[0]) or 1.0,
        )
    keys = _category_keys(series)
    counts = keys.value_counts(dropna=False)
    order = sorted(counts.index, key=lambda key: (-int(counts[key]), str(key)))
    if anchor is not None:
        # the categories in the order of their rows' mean anchor score, so that the copula's
        # correlations carry their association with the other columns
        means = pd.Series(anchor).groupby(keys.to_numpy(), dropna=False).mean()
        rank = {key: float(means.get(key, 0.0)) for key in order}
        order = sorted(order, key=lambda key: rank[key])
    shares = np.array([int(counts[key]) for key in order], dtype=float) / len(series)
    return _Column(
        name=name,
        numeric=False,
        levels=order,
        upper=np.cumsum(shares),
        sorted_values=None,
        whole=False,
        missing_rate=0.0,
        low=0.0,
        span=1.0,
    )


def _category_keys(series: pd.Series) -> pd.Series:
    """Categories as python values (text, booleans, numbers), missing as None."""
    return series.astype(object).where(series.notna(), None)


def _scores(series: pd.Series, column: _Column, rng: np.random.Generator) -> np.ndarray:
    """Standard normal scores of a column: mid-ranks, ties spread at random over their ranks."""
    import numpy as np
    from scipy import stats

    if column.numeric:
        values = series.to_numpy(dtype=float)
        present = np.isfinite(values)
        ordered = np.sort(values[present])
        count = len(ordered)
        below = np.searchsorted(ordered, values[present], side="left")
        tied = np.searchsorted(ordered, values[present], side="right") - below
        uniforms = np.empty(len(values))
        uniforms[present] = (
            below + 0.5 + rng.uniform(size=int(present.sum())) * (tied - 1)
        ) / count
        # a missing number has no rank: an independent score (it stays missing when drawn)
        uniforms[~present] = rng.uniform(size=int((~present).sum()))
    else:
        keys = _category_keys(series).tolist()
        position = {key: index for index, key in enumerate(column.levels)}
        counts = np.diff(np.concatenate([[0.0], column.upper])) * len(keys)
        lower = column.upper * len(keys) - counts
        index = np.array([position[key] for key in keys])
        uniforms = (lower[index] + 0.5 + rng.uniform(size=len(keys)) * (counts[index] - 1)) / len(
            keys
        )
    clipped = np.clip(uniforms, 1e-9, 1 - 1e-9)
    result: np.ndarray = stats.norm.ppf(clipped)
    return result


def _correlation(scores: np.ndarray) -> np.ndarray:
    """The scores' correlation matrix, made positive definite (eigenvalues clipped)."""
    import numpy as np

    if scores.shape[1] == 1:
        return np.ones((1, 1))
    matrix = np.corrcoef(scores, rowvar=False)
    matrix = np.nan_to_num(matrix, nan=0.0)
    np.fill_diagonal(matrix, 1.0)
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    fixed = eigenvectors @ np.diag(np.clip(eigenvalues, 1e-6, None)) @ eigenvectors.T
    scale = np.sqrt(np.diag(fixed))
    result: np.ndarray = fixed / np.outer(scale, scale)
    return result


def _draw(
    marginals: list[_Column], factor: np.ndarray, count: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``count`` synthetic rows: correlated normal scores mapped back through each marginal."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    uniforms = stats.norm.cdf(rng.standard_normal((count, len(marginals))) @ factor.T)
    data: dict[str, Any] = {}
    for index, column in enumerate(marginals):
        u = uniforms[:, index]
        if column.numeric:
            if column.sorted_values is not None:
                values = column.sorted_values
                positions = (np.arange(len(values)) + 0.5) / len(values)
                drawn = np.interp(u, positions, values)
                if column.whole:
                    drawn = np.round(drawn)
            else:
                drawn = column.levels[_interval(column.upper, u)]
            if column.missing_rate > 0:
                drawn = np.where(rng.uniform(size=count) < column.missing_rate, np.nan, drawn)
            data[column.name] = drawn.astype(float)
        else:
            chosen = _interval(column.upper, u)
            data[column.name] = pd.Series([column.levels[i] for i in chosen], dtype=object)
    return pd.DataFrame(data)


def _interval(upper: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """The index of the interval of the unit line each uniform falls in."""
    import numpy as np

    found: np.ndarray = np.minimum(np.searchsorted(upper, uniforms, side="right"), len(upper) - 1)
    return found


def _row_keys(table: pd.DataFrame, marginals: list[_Column]) -> np.ndarray:
    """A 64-bit hash of each row's values (numbers as floats, categories as text, missing as
    one marker), equal for equal rows; a collision only makes a row be drawn again."""
    import pandas as pd

    normal = pd.DataFrame(
        {
            column.name: (
                table[column.name].astype(float)
                if column.numeric
                else _category_keys(table[column.name]).map(
                    lambda value: (
                        "\x00missing" if value is None else f"{type(value).__name__}:{value}"
                    )
                )
            )
            for column in marginals
        }
    )
    keys: np.ndarray = pd.util.hash_pandas_object(normal, index=False).to_numpy()
    return keys


def _fidelity(
    real: pd.DataFrame, synthetic: pd.DataFrame, marginals: list[_Column]
) -> tuple[MirrorFidelity, list[dict[str, Any]]]:
    import numpy as np
    from scipy import stats

    found = []
    for column in marginals:
        if column.numeric:
            a = real[column.name].dropna().to_numpy(dtype=float)
            b = synthetic[column.name].dropna().to_numpy(dtype=float)
            ks = float(stats.ks_2samp(a, b).statistic) if len(b) else None
            found.append(
                MirrorColumn(column=column.name, kind="numeric", ks_statistic=ks, tvd=None)
            )
        else:
            a = _category_keys(real[column.name]).value_counts(normalize=True, dropna=False)
            b = _category_keys(synthetic[column.name]).value_counts(normalize=True, dropna=False)
            keys = set(a.index) | set(b.index)
            # fsum is exact whatever the order, and a set's order follows the hash seed
            tvd = 0.5 * math.fsum(
                abs(float(a.get(key, 0.0)) - float(b.get(key, 0.0))) for key in keys
            )
            found.append(
                MirrorColumn(column=column.name, kind="categorical", ks_statistic=None, tvd=tvd)
            )
    numeric = [column.name for column in marginals if column.numeric]
    pairs: list[dict[str, Any]] = []
    difference = None
    if len(numeric) >= 2:
        with np.errstate(all="ignore"):
            r_real = real[numeric].astype(float).corr().to_numpy()
            r_synthetic = synthetic[numeric].astype(float).corr().to_numpy()
        gaps = np.abs(r_real - r_synthetic)
        if np.isfinite(gaps).any():
            difference = float(np.nanmax(gaps))
        for i, a_name in enumerate(numeric):
            for j in range(i + 1, len(numeric)):
                pairs.append(
                    {
                        "pair": f"{a_name} / {numeric[j]}",
                        "real": _finite(r_real[i, j]),
                        "synthetic": _finite(r_synthetic[i, j]),
                    }
                )
    return MirrorFidelity(columns=found, correlation_difference=difference), pairs


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _min_distance(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    marginals: list[_Column],
    rng: np.random.Generator,
    run: Run,
) -> float | None:
    """The smallest Gower distance between a synthetic and a real row (seeded samples of both
    above :data:`DISTANCE_SYNTHETIC` / :data:`DISTANCE_REAL` rows)."""
    import numpy as np

    if len(real) > DISTANCE_REAL or len(synthetic) > DISTANCE_SYNTHETIC:
        run.warn(
            f"The nearest-row distance compares at most {DISTANCE_SYNTHETIC} synthetic with "
            f"{DISTANCE_REAL} real rows (seeded samples); the copy check covers every row."
        )
    real = _sample(real, DISTANCE_REAL, rng)
    synthetic = _sample(synthetic, DISTANCE_SYNTHETIC, rng)
    a_parts = [_distance_codes(real[column.name], column) for column in marginals]
    b_parts = [_distance_codes(synthetic[column.name], column) for column in marginals]
    best = math.inf
    chunk = max(1, 4_000_000 // max(1, len(real)))
    for start in range(0, len(synthetic), chunk):
        total = np.zeros((min(chunk, len(synthetic) - start), len(real)))
        for column, a, b in zip(marginals, a_parts, b_parts, strict=True):
            piece = b[start : start + chunk]
            total += _column_distance(column, piece, a)
        best = min(best, float(total.min()) / len(marginals))
    return best if math.isfinite(best) else None


def _sample(table: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    import numpy as np

    if len(table) <= limit:
        return table
    chosen = np.sort(rng.choice(len(table), size=limit, replace=False))
    return table.iloc[chosen]


def _distance_codes(series: pd.Series, column: _Column) -> np.ndarray:
    """Numbers scaled by the real range (missing: NaN); categories as level numbers."""
    import numpy as np

    if column.numeric:
        scaled: np.ndarray = (series.to_numpy(dtype=float) - column.low) / column.span
        return scaled
    position = {key: index for index, key in enumerate(column.levels)}
    return np.array([position.get(key, -1) for key in _category_keys(series).tolist()])


def _column_distance(column: _Column, synthetic: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-pair Gower distance of one column: |difference| (capped at 1) for numbers present
    in both, 1 when only one is missing, 0 when both are; 0/1 for categories."""
    import numpy as np

    if not column.numeric:
        result: np.ndarray = (synthetic[:, None] != real[None, :]).astype(float)
        return result
    with np.errstate(invalid="ignore"):
        gap = np.minimum(np.abs(synthetic[:, None] - real[None, :]), 1.0)
    missing_a = np.isnan(synthetic)[:, None]
    missing_b = np.isnan(real)[None, :]
    both = np.where(missing_a & missing_b, 0.0, 1.0)
    combined: np.ndarray = np.where(missing_a | missing_b, both, gap)
    return combined


def _records(synthetic: pd.DataFrame, marginals: list[_Column]) -> list[dict[str, Cell]]:
    """The synthetic rows as JSON-safe records (whole-number columns as integers)."""
    out: dict[str, list[Cell]] = {}
    for column in marginals:
        values = synthetic[column.name].tolist()
        if column.numeric:
            out[column.name] = [
                None
                if value is None or not math.isfinite(value)
                else (int(value) if column.whole else float(value))
                for value in values
            ]
        else:
            out[column.name] = [charts.json_safe(value) for value in values]
    return [
        {column.name: out[column.name][i] for column in marginals} for i in range(len(synthetic))
    ]


def _summary(result: MirrorResult, real_rows: int) -> str:
    numeric = [c for c in result.fidelity.columns if c.ks_statistic is not None]
    categorical = [c for c in result.fidelity.columns if c.tvd is not None]
    parts = [
        f"{len(result.rows)} synthetic rows from {real_rows} real ones over "
        f"{len(result.fidelity.columns)} columns (a Gaussian copula with the observed marginals)."
    ]
    if numeric:
        worst = max(numeric, key=lambda c: c.ks_statistic or 0.0)
        parts.append(
            f"Largest Kolmogorov-Smirnov distance of a numeric column: {worst.ks_statistic:.3f} "
            f"({worst.column})."
        )
    if categorical:
        worst = max(categorical, key=lambda c: c.tvd or 0.0)
        parts.append(
            f"Largest total variation distance of a categorical column: {worst.tvd:.3f} "
            f"({worst.column})."
        )
    if result.fidelity.correlation_difference is not None:
        parts.append(
            "Correlations differ from the real ones by at most "
            f"{result.fidelity.correlation_difference:.3f}."
        )
    parts.append(
        f"No synthetic row copies a real one ({result.redrawn} drawn again, {result.dropped} "
        "dropped)"
        + (
            f"; the nearest real row is at distance {result.min_distance:.3g}."
            if result.min_distance is not None
            else "."
        )
    )
    return " ".join(parts)


def _charts(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    marginals: list[_Column],
    correlations: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    import numpy as np

    made: list[dict[str, Any]] = []
    source = charts.field("source", "nominal", title="Rows")
    if correlations:
        made.append(
            charts.layer(
                charts.line(
                    [{"real": -1.0, "synthetic": -1.0}, {"real": 1.0, "synthetic": 1.0}],
                    charts.field("real", "quantitative"),
                    charts.field("synthetic", "quantitative"),
                    title="",
                ),
                charts.point(
                    correlations,
                    charts.field("real", "quantitative", title="Real correlation"),
                    charts.field("synthetic", "quantitative", title="Synthetic correlation"),
                    title="",
                    tooltip=[charts.field("pair", "nominal")],
                ),
                title="Correlations: real against synthetic (the diagonal is a perfect match)",
            )
        )
    numeric = next((column for column in marginals if column.numeric), None)
    if numeric is not None:
        a = real[numeric.name].dropna().to_numpy(dtype=float)
        b = synthetic[numeric.name].dropna().to_numpy(dtype=float)
        edges = np.histogram_bin_edges(a, bins=20)
        data = []
        for label, values in (("real", a), ("synthetic", b)):
            counts, _ = np.histogram(values, bins=edges)
            shares = counts / max(1, len(values))
            for i, share in enumerate(shares):
                centre = (edges[i] + edges[i + 1]) / 2
                data.append({"value": float(centre), "share": float(share), "source": label})
        made.append(
            charts.line(
                data,
                charts.field("value", "quantitative", title=numeric.name),
                charts.field("share", "quantitative", title="Share of rows"),
                title=f"Distribution of {numeric.name}: real and synthetic",
                color=source,
            )
        )
    category = next((column for column in marginals if not column.numeric), None)
    if category is not None:
        data = []
        for label, table in (("real", real), ("synthetic", synthetic)):
            shares = _category_keys(table[category.name]).value_counts(normalize=True, dropna=False)
            for key in category.levels[:30]:
                data.append(
                    {
                        "category": "(missing)" if key is None else str(key),
                        "share": float(shares.get(key, 0.0)),
                        "source": label,
                    }
                )
        made.append(
            charts.bar(
                data,
                charts.field("category", "nominal", title=category.name, sort=None),
                charts.field("share", "quantitative", title="Share of rows"),
                title=f"Frequencies of {category.name}: real and synthetic",
                color=source,
                xOffset=source,
            )
        )
    return made[:3]


def _example() -> list[dict[str, Cell]]:
    """Spend, visits and returns move together; the segment follows spend."""
    rng = random.Random(0)
    records: list[dict[str, Cell]] = []
    for _ in range(120):
        f, g = rng.gauss(0, 1), rng.gauss(0, 1)
        spend = math.exp(3.0 + 0.5 * f)
        visits = max(0, round(6 + 2 * (0.8 * f + 0.6 * g)))
        returns = round(10 - 3 * (-0.5 * f + 0.87 * rng.gauss(0, 1)), 2)
        segment = "high" if spend > 30 else ("mid" if spend > 15 else "low")
        records.append(
            {"spend": round(spend, 2), "visits": visits, "returns": returns, "segment": segment}
        )
    return records


METHOD: Method[MirrorParams, MirrorResult] = Method(
    name="mirror",
    summary="Synthetic rows that keep the columns' distributions and correlations (a Gaussian "
    "copula), with fidelity measures and no copy of a real row.",
    params=MirrorParams,
    result=MirrorResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=MirrorParams(rows=100, columns=["spend", "visits", "returns", "segment"]),
    ),
    numeric_param=None,
    min_rows=10,
)
