"""Unusual rows: an ensemble of isolation forest, local outlier factor and robust z-scores.

The numeric columns are put on a robust scale (median, and MAD * 1.4826) and then whitened
(PCA to uncorrelated unit-variance components), so that a row breaking the correlation between
columns stands out as much as a row far out in one column. Three detectors score every row:
scikit-learn's isolation forest and local outlier factor on the whitened data, and the largest
robust |z| over the columns and the whitened components. Each detector's scores are
normalised robustly (minus their median, over their MAD * 1.4826: "how many robust standard
deviations above a typical row") and the three are averaged: higher is more unusual.

A row is an anomaly when its score is above the threshold: the one given, the score that
leaves the expected share (``contamination``) above it, or with ``contamination="auto"`` the
upper fence of the skew-adjusted boxplot (Hubert and Vandervieren, 2008) with a 2 * IQR
whisker, which flags few rows in clean data. Each anomaly names the columns with the largest
robust |z|, the ones that make it unusual on their own.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "Anomaly", "AnomalyParams", "AnomalyResult"]

#: MAD * this estimates the standard deviation of normal data.
MAD_TO_SD = 1.4826
#: The whisker of the skew-adjusted boxplot fence used by contamination="auto", in IQRs.
FENCE_WHISKER = 2.0
#: At most this many anomalies are listed (the highest scores); every row keeps its score.
MAX_LISTED = 1_000
#: An anomaly names the columns whose |z| is at least this share of its largest |z| (up to 3).
NAMED_SHARE = 0.5
NAMED_MAX = 3
#: The scatter chart draws at most this many rows besides the anomalies.
CHART_ROWS = 5_000
HISTOGRAM_BINS = 40


class AnomalyParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric columns to look at. None: every numeric column (constant ones are skipped).
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    #: The expected share of anomalies (0 < c < 0.5): that share of rows, the highest scores,
    #: is flagged. "auto": rows above the skew-adjusted boxplot fence of the scores.
    contamination: Annotated[float, msgspec.Meta(gt=0.0, lt=0.5)] | Literal["auto"] = "auto"
    #: A score threshold: rows scoring above it are anomalies (overrides contamination).
    threshold: float | None = None
    #: Neighbours the local outlier factor compares each row with.
    n_neighbors: Annotated[int, msgspec.Meta(ge=2, le=500)] = 20


class Anomaly(msgspec.Struct, kw_only=True):
    #: The row's position in the data (0-based).
    row: int
    score: float
    #: The columns that make the row unusual: largest robust |z| first.
    columns: list[str]
    #: Their robust z-scores (signed), in the same order.
    z: list[float]


class AnomalyResult(msgspec.Struct, kw_only=True):
    #: The columns looked at.
    columns: list[str]
    #: One score per row, in row order; higher is more unusual (0: a typical row).
    scores: list[float]
    #: Rows scoring above it are anomalies.
    threshold: float
    #: How the threshold was set: "given", "contamination" or "adjusted_boxplot".
    threshold_rule: str
    #: How many rows are anomalies.
    count: int
    #: The anomalies, highest score first (at most 1000 listed).
    anomalies: list[Anomaly]


# ----------------------------------------------------------------------------- scaling


def _robust_scale(values: np.ndarray) -> np.ndarray:
    """The spread of each column of ``values``: MAD * 1.4826, or when more than half the values
    are alike, IQR / 1.349, the standard deviation, or 1."""
    import numpy as np

    median = np.median(values, axis=0)
    scale = np.median(np.abs(values - median), axis=0) * MAD_TO_SD
    q1, q3 = np.percentile(values, [25, 75], axis=0)
    for fallback in ((q3 - q1) / 1.349, np.std(values, axis=0), np.ones(values.shape[1])):
        scale = np.where(scale > 0, scale, fallback)
    return np.asarray(scale)


def _robust_z(values: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray((values - np.median(values, axis=0)) / _robust_scale(values))


def _whiten(z: np.ndarray) -> np.ndarray:
    """Uncorrelated, robustly rescaled components of ``z`` (components with no variance are
    dropped)."""
    import numpy as np
    from sklearn.decomposition import PCA

    if z.shape[1] == 1:
        return z
    pca = PCA().fit(z)
    keep = int(np.sum(pca.explained_variance_ > 1e-10 * max(pca.explained_variance_.sum(), 1e-300)))
    components = pca.transform(z)[:, : max(keep, 1)]
    return _robust_z(components)


def _standardise(scores: np.ndarray) -> np.ndarray:
    """Scores in robust standard deviations above their median."""
    return _robust_z(scores.reshape(-1, 1))[:, 0]


# ----------------------------------------------------------------------------- detectors


def _detect(z: np.ndarray, params: AnomalyParams, run: Run) -> np.ndarray:
    """The ensemble score of every row."""
    import warnings

    import numpy as np
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    whitened = _whiten(z)
    run.progress(0.3, "isolation forest")
    forest = IsolationForest(n_estimators=200, random_state=run.seed).fit(whitened)
    isolation = -forest.score_samples(whitened)
    run.progress(0.55, "local outlier factor")
    neighbours = min(params.n_neighbors, len(z) - 1)
    with warnings.catch_warnings():
        # Many identical rows make LOF warn about duplicate neighbours; its scores stay usable.
        warnings.simplefilter("ignore", UserWarning)
        lof = LocalOutlierFactor(n_neighbors=neighbours).fit(whitened)
    local = -lof.negative_outlier_factor_
    run.progress(0.75, "robust z-scores")
    extreme = np.maximum(np.abs(z).max(axis=1), np.abs(whitened).max(axis=1))
    return np.asarray(np.mean([_standardise(s) for s in (isolation, local, extreme)], axis=0))


def _fence(scores: np.ndarray) -> float:
    """The upper fence of the skew-adjusted boxplot (Hubert and Vandervieren)."""
    import numpy as np
    from statsmodels.stats.stattools import medcouple

    q1, q3 = np.percentile(scores, [25, 75])
    skew = float(medcouple(scores, use_fast=len(scores) > 2_000))
    if not math.isfinite(skew):
        skew = 0.0
    factor = math.exp(3.0 * skew) if skew >= 0 else math.exp(4.0 * skew)
    return float(q3 + FENCE_WHISKER * factor * (q3 - q1))


def _threshold(scores: np.ndarray, params: AnomalyParams) -> tuple[float, str]:
    import numpy as np

    if params.threshold is not None:
        return params.threshold, "given"
    if params.contamination == "auto":
        return _fence(scores), "adjusted_boxplot"
    flagged = max(1, round(params.contamination * len(scores)))
    ranked = np.sort(scores)[::-1]
    if flagged >= len(ranked):
        return float(ranked[-1]) - 1.0, "contamination"
    return float((ranked[flagged - 1] + ranked[flagged]) / 2.0), "contamination"


def _explain(row: int, score: float, z: np.ndarray, names: list[str]) -> Anomaly:
    import numpy as np

    size = np.abs(z[row])
    order = [int(i) for i in np.argsort(-size, kind="stable")]
    top = float(size[order[0]])
    named = [i for i in order[:NAMED_MAX] if size[i] >= NAMED_SHARE * top] or order[:1]
    return Anomaly(
        row=row,
        score=score,
        columns=[names[i] for i in named],
        z=[float(z[row, i]) for i in named],
    )


# ----------------------------------------------------------------------------- input


def _numeric(frame: pd.DataFrame, params: AnomalyParams, run: Run) -> pd.DataFrame:
    return columns.varying_numeric_columns(frame, params.columns, "columns", run.warn)


def _filled(numeric: pd.DataFrame, run: Run) -> np.ndarray:
    import numpy as np

    missing = numeric.isna().any(axis=1)
    if bool(missing.any()):
        run.warn(
            f"{int(missing.sum())} rows have missing values; each is filled with its column's "
            "median."
        )
    return np.asarray(numeric.fillna(numeric.median()).to_numpy(dtype=float))


# ----------------------------------------------------------------------------- output


def _chart_columns(anomalies: list[Anomaly], names: list[str]) -> list[str]:
    """The two columns anomalies are most often unusual in (first columns on a tie)."""
    counts = dict.fromkeys(names, 0)
    for item in anomalies:
        for name in item.columns:
            counts[name] += 1
    return sorted(names, key=lambda name: -counts[name])[:2]


def _scatter(
    numeric: pd.DataFrame, scores: np.ndarray, flagged: np.ndarray, chosen: list[str], seed: int
) -> dict[str, Any]:
    import numpy as np

    rows = np.flatnonzero(flagged)[:MAX_LISTED]
    normal = np.flatnonzero(~flagged)
    if len(normal) > CHART_ROWS:
        normal = np.sort(np.random.default_rng(seed).choice(normal, CHART_ROWS, replace=False))
    shown = np.concatenate([normal, rows])
    x_name = chosen[0] if len(chosen) == 2 else "row"
    y_name = chosen[1] if len(chosen) == 2 else chosen[0]
    data = [
        {
            "x": float(numeric[x_name].iloc[i]) if x_name != "row" else int(i),
            "y": numeric[y_name].iloc[i],
            "row": int(i),
            "score": float(scores[i]),
            "anomaly": "anomaly" if flagged[i] else "normal",
        }
        for i in shown
    ]
    return charts.point(
        data,
        charts.field("x", "quantitative", title=x_name),
        charts.field("y", "quantitative", title=y_name),
        color=charts.field(
            "anomaly",
            "nominal",
            title=None,
            scale={"domain": ["normal", "anomaly"], "range": ["#9aa5b1", "#d62728"]},
        ),
        tooltip=[charts.field("row", "quantitative"), charts.field("score", "quantitative")],
        title=f"{y_name} against {x_name}, anomalies marked",
    )


def _histogram(scores: np.ndarray, threshold: float) -> dict[str, Any]:
    import numpy as np

    counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS)
    bars = charts.chart(
        [
            {"start": edges[i], "end": edges[i + 1], "rows": int(counts[i])}
            for i in range(len(counts))
        ],
        "bar",
        {
            "x": charts.field("start", "quantitative", title="score", bin={"binned": True}),
            "x2": {"field": "end"},
            "y": charts.field("rows", "quantitative", title="rows"),
        },
        title="",
    )
    rule = charts.chart(
        [{"threshold": threshold}],
        {"type": "rule", "color": "#d62728"},
        {"x": charts.field("threshold", "quantitative")},
        title="",
    )
    return charts.layer(bars, rule, title="Anomaly scores and the threshold")


def _summary(result: AnomalyResult, rows: int) -> str:
    rule = {
        "given": "the given threshold",
        "contamination": "the expected share",
        "adjusted_boxplot": "the skew-adjusted boxplot fence",
    }[result.threshold_rule]
    text = (
        f"{result.count} of {rows} rows ({result.count / rows:.1%}) are anomalies: their score "
        f"is above {result.threshold:.3g} ({rule}) over {len(result.columns)} columns."
    )
    if result.anomalies:
        top = result.anomalies[0]
        text += (
            f" The most unusual is row {top.row} (score {top.score:.3g}), unusual in "
            f"{', '.join(top.columns)}."
        )
    return text


def compute(frame: pd.DataFrame, params: AnomalyParams, run: Run) -> Outcome[AnomalyResult]:
    import numpy as np

    numeric = _numeric(frame, params, run)
    names = [str(name) for name in numeric.columns]
    run.progress(0.1, "scaling columns")
    z = _robust_z(_filled(numeric, run))
    scores = _detect(z, params, run)
    threshold, rule = _threshold(scores, params)
    flagged = scores > threshold
    run.progress(0.85, "explaining anomalies")
    order = [int(i) for i in np.argsort(-scores, kind="stable") if flagged[i]]
    if len(order) > MAX_LISTED:
        run.warn(f"{len(order)} rows are anomalies; the {MAX_LISTED} highest scores are listed.")
    anomalies = [_explain(i, float(scores[i]), z, names) for i in order[:MAX_LISTED]]
    result = AnomalyResult(
        columns=names,
        scores=[float(value) for value in scores],
        threshold=threshold,
        threshold_rule=rule,
        count=int(flagged.sum()),
        anomalies=anomalies,
    )
    run.progress(0.95, "drawing charts")
    chosen = _chart_columns(anomalies, names)
    return Outcome(
        result=result,
        summary=_summary(result, len(frame)),
        charts=[
            _scatter(numeric, scores, flagged, chosen, run.seed),
            _histogram(scores, threshold),
        ],
    )


def _example_data() -> Records:
    """Sensor readings: temperature and pressure move together; three rows do not."""
    rng = random.Random(0)
    data: Records = []
    for i in range(120):
        temperature = rng.gauss(20.0, 3.0)
        pressure = 100.0 + 2.0 * (temperature - 20.0) + rng.gauss(0.0, 1.5)
        humidity = rng.gauss(50.0, 5.0)
        data.append(
            {
                "sensor": f"s{i:03d}",
                "temperature": round(temperature, 2),
                "pressure": round(pressure, 2),
                "humidity": round(humidity, 2),
            }
        )
    data[17]["humidity"] = 95.0  # far out in one column
    data[64]["temperature"], data[64]["pressure"] = 25.5, 89.0  # breaks the correlation
    data[101]["pressure"] = 130.0
    return data


METHOD: Method[AnomalyParams, AnomalyResult] = Method(
    name="anomaly",
    summary="Unusual rows: isolation forest, local outlier factor and robust z-scores, "
    "averaged, with the columns that make each row unusual.",
    params=AnomalyParams,
    result=AnomalyResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=AnomalyParams(columns=["temperature", "pressure", "humidity"]),
    ),
    numeric_param="columns",
    min_rows=10,
)
