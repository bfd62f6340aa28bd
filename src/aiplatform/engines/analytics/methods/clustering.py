"""Groups of similar rows: k-means with k chosen by silhouette, or HDBSCAN.

The numeric columns are standardised (unless ``scale`` is false) and missing values filled
with their column's median. k-means (scikit-learn, k-means++ seeded from the run's seed) is
fitted for every k from ``k_min`` to ``k_max`` and the k with the highest mean silhouette is
kept. HDBSCAN (``sklearn.cluster.HDBSCAN``) finds clusters of any shape and number by density
and leaves rows in sparse regions out as noise (label -1). ``algorithm="auto"`` runs both and
keeps the one with the higher silhouette over all rows, a noise row counting 0 (so HDBSCAN
wins only when its clusters are clearly better separated, not by discarding hard rows).

Silhouettes are computed on every row up to 3000 rows and on a seeded sample of 3000 rows
beyond. Each cluster is profiled by its size and column means; a 2-D PCA projection places
every row for the chart.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "ClusterProfile",
    "ClusteringParams",
    "ClusteringResult",
    "KSilhouette",
    "Point",
]

#: Silhouettes are computed on at most this many rows (a seeded sample beyond).
SILHOUETTE_ROWS = 3_000
#: The projection chart draws at most this many rows (a seeded sample beyond).
CHART_ROWS = 5_000
#: Default HDBSCAN min_cluster_size: this share of the rows, at least 5.
DEFAULT_CLUSTER_SHARE = 0.02
#: Below this many rows k-means runs on one thread: threads only add overhead (and, on a busy
#: machine, OpenMP's waiting threads slow small fits down many times over).
THREADED_ROWS = 100_000
#: A profile lists the columns whose standardised mean is furthest from 0, up to this many.
DISTINCT_COLUMNS = 3


class ClusteringParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric columns to cluster on. None: every numeric column (constant ones are skipped).
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    #: "kmeans" (k chosen by silhouette), "hdbscan" (density; noise rows labelled -1) or
    #: "auto" (both; the one with the higher silhouette, noise counting 0).
    algorithm: Literal["kmeans", "hdbscan", "auto"] = "auto"
    #: Smallest k tried by k-means.
    k_min: Annotated[int, msgspec.Meta(ge=2, le=50)] = 2
    #: Largest k tried by k-means (at most the number of distinct rows less one).
    k_max: Annotated[int, msgspec.Meta(ge=2, le=50)] = 10
    #: HDBSCAN: the fewest rows a cluster may have. None: 2% of the rows, at least 5.
    min_cluster_size: Annotated[int, msgspec.Meta(ge=2)] | None = None
    #: Standardise each column (mean 0, SD 1) first, so that no column dominates by its unit.
    scale: bool = True


class KSilhouette(msgspec.Struct, kw_only=True):
    k: int
    silhouette: float | None


class ClusterProfile(msgspec.Struct, kw_only=True):
    #: The cluster's label (-1: HDBSCAN's noise rows).
    cluster: int
    size: int
    #: Share of all rows.
    share: float
    #: Column means in the data's units.
    means: dict[str, float | None]
    #: Column means in standard deviations from the overall mean.
    standardized_means: dict[str, float | None]
    #: The columns that set the cluster apart most (largest |standardised mean|).
    distinctive: list[str]


class Point(msgspec.Struct, kw_only=True, array_like=True):
    """A row's place on the first two principal components: ``[x, y]``."""

    x: float
    y: float


class ClusteringResult(msgspec.Struct, kw_only=True):
    #: "kmeans" or "hdbscan": the algorithm whose clusters these are.
    algorithm: str
    #: Why "auto" kept it; None when the algorithm was asked for by name.
    reason: str | None
    columns: list[str]
    #: One label per row, in row order; -1: noise (HDBSCAN).
    labels: list[int]
    #: Number of clusters (noise not counted).
    k: int
    #: Mean silhouette over all rows (noise rows counting 0); None with fewer than 2 clusters.
    silhouette: float | None
    #: k-means' silhouette for each k tried (empty when only HDBSCAN ran).
    silhouette_by_k: list[KSilhouette]
    #: Rows HDBSCAN left out as noise.
    noise: int
    profiles: list[ClusterProfile]
    #: The rows on the first two principal components of the (standardised) columns.
    projection: list[Point]
    #: Share of the variance each of the two components explains.
    explained_variance: list[float]


# ----------------------------------------------------------------------------- input


def _numeric(frame: pd.DataFrame, params: ClusteringParams, run: Run) -> pd.DataFrame:
    return columns.varying_numeric_columns(frame, params.columns, "columns", run.warn)


def _matrix(numeric: pd.DataFrame, params: ClusteringParams, run: Run) -> np.ndarray:
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    missing = numeric.isna().any(axis=1)
    if bool(missing.any()):
        run.warn(
            f"{int(missing.sum())} rows have missing values; each is filled with its column's "
            "median."
        )
    values = numeric.fillna(numeric.median()).to_numpy(dtype=float)
    return np.asarray(StandardScaler().fit_transform(values) if params.scale else values)


def _check_params(params: ClusteringParams, rows: int) -> None:
    if params.k_min > params.k_max:
        raise InvalidRequestError(
            f"k_min ({params.k_min}) is above k_max ({params.k_max}).",
            param="params.k_min",
            code="invalid_range",
        )
    if params.min_cluster_size is not None and params.min_cluster_size > rows:
        raise InvalidRequestError(
            f"min_cluster_size ({params.min_cluster_size}) is above the number of rows ({rows}).",
            param="params.min_cluster_size",
            code="too_few_rows",
        )


# ----------------------------------------------------------------------------- silhouette


class _Scorer:
    """Mean silhouette of labelings of the same rows, on one seeded sample of them."""

    def __init__(self, x: np.ndarray, seed: int) -> None:
        import numpy as np

        self.rows = (
            np.sort(np.random.default_rng(seed).choice(len(x), SILHOUETTE_ROWS, replace=False))
            if len(x) > SILHOUETTE_ROWS
            else np.arange(len(x))
        )
        self.x = x[self.rows]

    def __call__(self, labels: np.ndarray) -> float | None:
        """Mean silhouette over the sample, noise rows (-1) counting 0; None with fewer than
        two clusters among the sampled rows that are not noise."""
        import numpy as np
        from sklearn.metrics import silhouette_samples

        sampled = labels[self.rows]
        clustered = sampled >= 0
        found = len(np.unique(sampled[clustered]))
        if found < 2 or found >= int(clustered.sum()):
            return None
        values = np.zeros(len(sampled))
        values[clustered] = silhouette_samples(self.x[clustered], sampled[clustered])
        return float(values.mean())


# ----------------------------------------------------------------------------- algorithms


def _kmeans(
    x: np.ndarray, params: ClusteringParams, score: _Scorer, run: Run
) -> tuple[np.ndarray | None, list[KSilhouette]]:
    """The labels of the k with the best silhouette, and the silhouette of every k tried."""
    import numpy as np
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    distinct = len(np.unique(x, axis=0))
    k_max = min(params.k_max, distinct - 1)
    if k_max < params.k_max:
        run.warn(f"k_max is lowered to {k_max}: the data have {distinct} distinct rows.")
    if k_max < params.k_min:
        raise InvalidRequestError(
            f"The data have {distinct} distinct rows; k-means with k >= {params.k_min} needs "
            f"at least {params.k_min + 1}.",
            param="data",
            code="too_few_rows",
        )
    best: tuple[float, np.ndarray] | None = None
    by_k: list[KSilhouette] = []
    ks = range(params.k_min, k_max + 1)
    threads = None if len(x) >= THREADED_ROWS else 1
    for step, k in enumerate(ks):
        run.progress(0.1 + 0.5 * step / len(ks), f"k-means with k = {k}")
        with threadpool_limits(threads, user_api="openmp"):
            labels = KMeans(n_clusters=k, n_init=4, random_state=run.seed).fit_predict(x)
        silhouette = score(labels)
        by_k.append(KSilhouette(k=k, silhouette=silhouette))
        if silhouette is not None and (best is None or silhouette > best[0]):
            best = (silhouette, labels)
    return (best[1] if best is not None else None), by_k


def _hdbscan(x: np.ndarray, params: ClusteringParams, run: Run) -> np.ndarray:
    import numpy as np
    from sklearn.cluster import HDBSCAN

    run.progress(0.65, "HDBSCAN")
    size = params.min_cluster_size or max(5, round(DEFAULT_CLUSTER_SHARE * len(x)))
    size = max(2, min(size, len(x) - 1))
    return np.asarray(HDBSCAN(min_cluster_size=size, copy=True).fit_predict(x))


def _choose(
    x: np.ndarray, params: ClusteringParams, run: Run
) -> tuple[str, np.ndarray, list[KSilhouette], str | None, _Scorer]:
    score = _Scorer(x, run.seed)
    if params.algorithm == "hdbscan":
        return "hdbscan", _hdbscan(x, params, run), [], None, score
    kmeans, by_k = _kmeans(x, params, score, run)
    if params.algorithm == "kmeans":
        if kmeans is None:
            raise _no_clusters()
        return "kmeans", kmeans, by_k, None, score
    density = _hdbscan(x, params, run)
    kmeans_score = score(kmeans) if kmeans is not None else None
    density_score = score(density)
    if density_score is not None and (kmeans_score is None or density_score > kmeans_score):
        why = (
            f"HDBSCAN's silhouette ({density_score:.3f}, noise counting 0) is above the best "
            f"k-means silhouette ({_fmt(kmeans_score)})."
        )
        return "hdbscan", density, by_k, why, score
    if kmeans is None:
        raise _no_clusters()
    why = (
        f"The best k-means silhouette ({_fmt(kmeans_score)}) is at least HDBSCAN's "
        f"({_fmt(density_score)}, noise counting 0)."
    )
    return "kmeans", kmeans, by_k, why, score


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... from the largest cluster down (ties: the one seen first);
    noise stays -1."""
    import numpy as np

    found, first, counts = np.unique(labels[labels >= 0], return_index=True, return_counts=True)
    order = sorted(range(len(found)), key=lambda i: (-counts[i], first[i]))
    mapping = {int(found[i]): rank for rank, i in enumerate(order)}
    return np.array([mapping.get(int(value), -1) for value in labels], dtype=int)


def _no_clusters() -> UnprocessableEntityError:
    return UnprocessableEntityError(
        "k-means found no k with a defined silhouette in the data.", code="no_clusters"
    )


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------- output


def _profiles(numeric: pd.DataFrame, labels: np.ndarray, names: list[str]) -> list[ClusterProfile]:
    import numpy as np

    means = numeric.mean()
    spread = numeric.std(ddof=0).replace(0.0, np.nan)
    found = []
    for label in sorted({int(value) for value in labels}, key=lambda v: (v < 0, v)):
        rows = numeric[labels == label]
        cluster_means = rows.mean()
        standard = (cluster_means - means) / spread
        ranked = standard.abs().dropna().sort_values(ascending=False, kind="stable")
        found.append(
            ClusterProfile(
                cluster=label,
                size=len(rows),
                share=len(rows) / len(numeric),
                means={name: _finite(cluster_means[name]) for name in names},
                standardized_means={name: _finite(standard[name]) for name in names},
                distinctive=[str(name) for name in ranked.index[:DISTINCT_COLUMNS]],
            )
        )
    return found


def _finite(value: Any) -> float | None:
    import math

    number = float(value)
    return number if math.isfinite(number) else None


def _project(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    import numpy as np
    from sklearn.decomposition import PCA

    if x.shape[1] == 1:
        return np.column_stack([x[:, 0], np.zeros(len(x))]), [1.0, 0.0]
    pca = PCA(n_components=2).fit(x)
    return pca.transform(x), [float(v) for v in pca.explained_variance_ratio_]


def _projection_chart(
    points: np.ndarray, labels: np.ndarray, explained: list[float], seed: int
) -> dict[str, Any]:
    import numpy as np

    rows = np.arange(len(points))
    if len(rows) > CHART_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, CHART_ROWS, replace=False))
    data = [
        {
            "pc1": points[i, 0],
            "pc2": points[i, 1],
            "cluster": "noise" if labels[i] < 0 else f"cluster {int(labels[i])}",
            "row": int(i),
        }
        for i in rows
    ]
    return charts.point(
        data,
        charts.field("pc1", "quantitative", title=f"PC 1 ({explained[0]:.0%} of variance)"),
        charts.field("pc2", "quantitative", title=f"PC 2 ({explained[1]:.0%} of variance)"),
        color=charts.field("cluster", "nominal", title="cluster"),
        tooltip=[charts.field("row", "quantitative"), charts.field("cluster", "nominal")],
        title="Rows on the first two principal components, by cluster",
    )


def _silhouette_chart(by_k: list[KSilhouette], chosen: int | None) -> dict[str, Any]:
    return charts.line(
        [{"k": item.k, "silhouette": item.silhouette, "chosen": item.k == chosen} for item in by_k],
        charts.field("k", "quantitative", title="k", axis={"tickMinStep": 1}),
        charts.field("silhouette", "quantitative", title="mean silhouette"),
        title="k-means silhouette by k",
    )


def _summary(result: ClusteringResult, rows: int) -> str:
    name = "k-means" if result.algorithm == "kmeans" else "HDBSCAN"
    text = f"{name} found {result.k} clusters in {rows} rows over {len(result.columns)} columns"
    text += f" (mean silhouette {_fmt(result.silhouette)})."
    if result.noise:
        text += f" {result.noise} rows ({result.noise / rows:.1%}) are noise."
    sizes = ", ".join(
        f"cluster {item.cluster}: {item.size}" for item in result.profiles if item.cluster >= 0
    )
    if sizes:
        text += f" Sizes: {sizes}."
    if result.reason:
        text += f" {result.reason}"
    return text


def compute(frame: pd.DataFrame, params: ClusteringParams, run: Run) -> Outcome[ClusteringResult]:
    import numpy as np

    numeric = _numeric(frame, params, run)
    names = [str(name) for name in numeric.columns]
    _check_params(params, len(frame))
    run.progress(0.05, "scaling columns")
    x = _matrix(numeric, params, run)
    algorithm, found, by_k, reason, score = _choose(x, params, run)
    labels = _by_size(found)
    run.progress(0.8, "profiling clusters")
    k = len({int(value) for value in labels if value >= 0})
    if k < 2:
        run.warn(f"{'HDBSCAN' if algorithm == 'hdbscan' else 'k-means'} found {k} clusters.")
    points, explained = _project(x)
    result = ClusteringResult(
        algorithm=algorithm,
        reason=reason,
        columns=names,
        labels=[int(value) for value in labels],
        k=k,
        silhouette=score(labels),
        silhouette_by_k=by_k,
        noise=int(np.sum(labels < 0)),
        profiles=_profiles(numeric, labels, names),
        projection=[Point(x=float(a), y=float(b)) for a, b in points],
        explained_variance=explained,
    )
    run.progress(0.95, "drawing charts")
    made = [_projection_chart(points, labels, explained, run.seed)]
    if by_k:
        made.append(_silhouette_chart(by_k, k if algorithm == "kmeans" else None))
    return Outcome(result=result, summary=_summary(result, len(frame)), charts=made)


def _example_data() -> Records:
    """Customers in three segments by yearly spend and visits."""
    rng = random.Random(0)
    centres = [(200.0, 4.0), (800.0, 12.0), (450.0, 25.0)]
    data: Records = []
    for i in range(90):
        spend, visits = centres[i % 3]
        data.append(
            {
                "customer": f"c{i:03d}",
                "spend": round(rng.gauss(spend, 60.0), 1),
                "visits": round(rng.gauss(visits, 2.0), 1),
            }
        )
    return data


METHOD: Method[ClusteringParams, ClusteringResult] = Method(
    name="clustering",
    summary="Groups of similar rows: k-means with k chosen by silhouette, or HDBSCAN, with "
    "cluster profiles and a 2-D projection.",
    params=ClusteringParams,
    result=ClusteringResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=ClusteringParams(columns=["spend", "visits"], k_min=2, k_max=6),
    ),
    numeric_param="columns",
    min_rows=5,
)
