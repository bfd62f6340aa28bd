"""What churn, lead_scoring and flash share: feature tables read from the data, a binary
outcome, a calibrated scoring model chosen by cross-validation, held-out measures and local
attributions ("drivers").

The model: the rows are split once, three quarters to fit and a quarter held out (stratified).
On the fitting part two families are scored by stratified 5-fold cross-validated ROC AUC: a
logistic regression on standardised features, and histogram gradient boosting
(scikit-learn). Boosting is chosen only when its mean AUC beats the logistic model's by more
than :data:`BOOSTING_MARGIN`: the simpler model, whose effects add up, is kept when the two
rank the rows alike. The chosen family is calibrated (``CalibratedClassifierCV`` with Platt
scaling: a logistic map of the model's score, which keeps log-odds that add up over the
features adding up, where isotonic steps would make the drivers jump), measured on the
held-out rows (AUC, Brier score against the base rate's, a reliability table) and refit on
every row to score.

Drivers: a feature's effect on a row is how much the row's value of it moves the model's
log-odds away from those of typical rows. The row's value is replaced by each value of a
background sample of rows (seeded), and the log-odds drop averaged: the interventional
one-feature attribution. For a model whose log-odds add up over the features (the logistic
family, up to its calibration) it is the exact Shapley value, ``coef * (x - background
mean)``; for boosting it is the first-order part of it. A feature's importance is its mean
|effect| over the rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Run
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "BOOSTING_MARGIN",
    "MISSING",
    "ClassifierCandidate",
    "ClassifierContribution",
    "ClassifierDriver",
    "ClassifierMetrics",
    "ClassifierReliability",
    "Features",
    "Scored",
    "binary_target",
    "contributions",
    "display",
    "driver_sample",
    "drivers_chart",
    "feature_names",
    "global_drivers",
    "local_effects",
    "log_odds",
    "measure",
    "preprocessor",
    "quiet",
    "read_features",
    "read_rows",
    "reliability",
    "reliability_chart",
    "require_classes",
    "score",
]

#: Boosting replaces the logistic model only when its mean cross-validated AUC is higher by more.
BOOSTING_MARGIN = 0.005
#: Fewest rows of each outcome the model is fitted with.
MIN_CLASS_ROWS = 10
_FOLDS = 5
_HOLDOUT = 0.25
_RELIABILITY_BINS = 10
#: Rows the global drivers are averaged over (a seeded sample when there are more).
DRIVER_ROWS = 300
#: Background rows a local attribution averages over (fewer when many rows are explained).
_BACKGROUND = 30
#: Model evaluations one attribution batch may take.
_EVALUATIONS = 2_000_000
_CHUNK = 50_000
#: How a missing value of a non-numeric feature is read.
MISSING = "(missing)"
_CLIP = 1e-6


class ClassifierMetrics(msgspec.Struct, kw_only=True):
    """How the model scores rows it was not fitted on."""

    #: ROC AUC (0.5: no better than chance; None: the held-out rows hold one outcome only).
    auc: float | None
    #: Brier score: the mean squared difference between probability and outcome.
    brier: float
    #: The Brier score of the base rate given to every row (the baseline to beat).
    baseline_brier: float
    #: 1 - brier / baseline_brier: the share of the baseline's error removed (None: the
    #: held-out rows hold one outcome only).
    brier_skill: float | None
    #: Expected calibration error: the mean |observed rate - mean probability| over the
    #: reliability bins, weighted by their rows.
    calibration_error: float
    holdout_rows: int


class ClassifierReliability(msgspec.Struct, kw_only=True):
    """One bin of held-out rows of alike probability (the bins hold equal numbers of rows)."""

    #: The mean predicted probability in the bin.
    predicted: float
    #: The share of the bin's rows with the outcome.
    observed: float
    rows: int


class ClassifierCandidate(msgspec.Struct, kw_only=True):
    #: ``logistic`` or ``gradient_boosting``.
    family: str
    #: Mean ROC AUC over the cross-validation folds of the fitting rows.
    cv_auc: float
    #: Its standard deviation across the folds.
    cv_std: float


class ClassifierDriver(msgspec.Struct, kw_only=True):
    feature: str
    #: Mean |effect| over the rows: how far the feature moves a row's log-odds (log-hazard)
    #: from a typical row's, on average.
    importance: float
    #: The correlation, over the rows, of a numeric feature's value with its effect: +1 means
    #: larger values raise the probability, -1 lower it (None for non-numeric features).
    direction: float | None = None


class ClassifierContribution(msgspec.Struct, kw_only=True):
    feature: str
    #: The row's value of the feature (None: missing).
    value: Cell
    #: What that value adds to the row's log-odds (log-hazard) against typical rows; positive
    #: raises the probability.
    effect: float


@dataclass(slots=True)
class Features:
    """The feature columns as the model reads them."""

    names: list[str]
    numeric: list[str]
    categorical: list[str]


@dataclass(slots=True)
class Scored:
    """A calibrated model measured on held-out rows and refit on all rows."""

    family: str
    #: refit on every row: ``predict_proba`` on a table of the features
    model: Any
    candidates: list[ClassifierCandidate]
    metrics: ClassifierMetrics
    reliability: list[ClassifierReliability]
    #: the measured model's probabilities on its fitting rows, and on the held-out rows with
    #: their outcomes
    fitting_p: np.ndarray[Any, Any]
    holdout_p: np.ndarray[Any, Any]
    holdout_y: np.ndarray[Any, Any]


# ---------------------------------------------------------------- input


def feature_names(
    frame: pd.DataFrame, features: Sequence[str] | None, reserved: dict[str, str]
) -> list[str]:
    """The feature columns: ``features``, or every column but the ``reserved`` ones (column ->
    the params field that named it: the target, an id, a duration). A 400 when a reserved
    column is among the features or none is left."""
    names = (
        list(features)
        if features is not None
        else [str(name) for name in frame.columns if str(name) not in reserved]
    )
    columns.columns(frame, names, "features")
    for name in names:
        if name in reserved:
            raise InvalidRequestError(
                f"Column '{name}' is the {reserved[name]}; it cannot also be a feature.",
                param="params.features",
                code="target_in_features",
            )
    if not names:
        raise InvalidRequestError(
            "The data have no column besides the target to predict it from.",
            param="params.features",
            code="no_features",
        )
    return names


def binary_target(frame: pd.DataFrame, name: str, role: str, outcome: str) -> pd.Series:
    """The 0/1 column ``name`` as floats (missing stay NaN). 400 ``not_binary`` for another
    value; ``outcome`` names what 1 means in the message."""
    values = columns.numeric(frame, name, role)
    bad = values.notna() & ~values.isin([0.0, 1.0])
    if bool(bad.any()):
        row = int(bad.to_numpy().argmax())
        raise InvalidRequestError(
            f"Column '{name}' given as {role} must hold 1 ({outcome}) or 0; row {row} holds "
            f"{values.iloc[row]:g}.",
            param=f"params.{role}",
            code="not_binary",
        )
    return values


def require_classes(y: np.ndarray[Any, Any], name: str, role: str, labels: tuple[str, str]) -> None:
    """A 400 ``rare_class`` when either outcome has fewer than :data:`MIN_CLASS_ROWS` rows."""
    for value, label in enumerate(labels):
        count = int((y == value).sum())
        if count < MIN_CLASS_ROWS:
            raise InvalidRequestError(
                f"Column '{name}' given as {role} needs at least {MIN_CLASS_ROWS} rows of each "
                f"outcome; {label} ({value}) has {count}.",
                param=f"params.{role}",
                code="rare_class",
            )


def read_features(
    frame: pd.DataFrame, names: list[str], role: str = "features"
) -> tuple[pd.DataFrame, Features]:
    """The feature table (numbers as floats, other values as text with missing marked) and how
    each column is read: a column whose every present value is a number is numeric."""
    numeric = [name for name in names if columns.numeric_like(columns.column(frame, name, role))]
    features = Features(
        names=names, numeric=numeric, categorical=[name for name in names if name not in numeric]
    )
    return read_rows(frame, features, role), features


def read_rows(frame: pd.DataFrame, features: Features, role: str) -> pd.DataFrame:
    """``frame``'s feature columns read as the fitting rows were (``role``: the params field
    holding the table, named by errors)."""
    import pandas as pd

    table: dict[str, pd.Series] = {}
    for name in features.names:
        series = columns.column(frame, name, role)
        if name in features.categorical:
            table[name] = series.map(str, na_action="ignore").fillna(MISSING).astype(object)
        elif series.notna().any():
            table[name] = columns.numeric(frame, name, role, allow_constant=True)
        else:
            table[name] = pd.Series(float("nan"), index=frame.index)
    return pd.DataFrame(table, index=frame.index)


def display(value: Any) -> Cell:
    """A feature value as the result shows it (None for missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == MISSING:
        return None
    if isinstance(value, str):
        return value
    return float(value)


# ---------------------------------------------------------------- model


class ColumnKinds(Protocol):
    """Which feature columns are numbers and which are categories."""

    @property
    def numeric(self) -> list[str]: ...

    @property
    def categorical(self) -> list[str]: ...


def preprocessor(features: ColumnKinds) -> Any:
    """Missing numbers filled with the column's median, other columns one-hot encoded (the 30
    most frequent values; the rest, and values not seen in fitting, share one column)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    return ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median", keep_empty_features=True), features.numeric),
            (
                "cat",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", max_categories=30, sparse_output=False
                ),
                features.categorical,
            ),
        ],
        sparse_threshold=0,
    )


def _family(name: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def _calibrated(family: str, features: Features, seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("prep", preprocessor(features)),
            ("model", CalibratedClassifierCV(_family(family, seed), method="sigmoid", cv=3)),
        ]
    )


def _choose(
    x: pd.DataFrame, y: np.ndarray[Any, Any], features: Features, seed: int, run: Run
) -> tuple[str, list[ClassifierCandidate]]:
    """The family to use and every family's cross-validated AUC (best first)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    design = preprocessor(features).fit_transform(x)
    folds = StratifiedKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    scores: dict[str, Any] = {}
    for index, name in enumerate(("logistic", "gradient_boosting")):
        run.progress(0.1 + 0.25 * index, f"cross-validating the {name.replace('_', ' ')} model")
        scores[name] = np.asarray(
            cross_val_score(_family(name, seed), design, y, cv=folds, scoring="roc_auc")
        )
    chosen = (
        "gradient_boosting"
        if scores["gradient_boosting"].mean() > scores["logistic"].mean() + BOOSTING_MARGIN
        else "logistic"
    )
    candidates = [
        ClassifierCandidate(family=name, cv_auc=float(s.mean()), cv_std=float(s.std()))
        for name, s in scores.items()
    ]
    candidates.sort(key=lambda item: (item.family != chosen, -item.cv_auc))
    return chosen, candidates


def reliability(
    y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]
) -> tuple[list[ClassifierReliability], float]:
    """Held-out rows sorted by probability and cut into equal bins (10, or fewer so that each
    holds 10 rows or more): the mean probability against the observed rate in each, and the
    expected calibration error."""
    import numpy as np

    count = max(1, min(_RELIABILITY_BINS, len(y) // 10))
    order = np.argsort(p, kind="stable")
    bins = [
        ClassifierReliability(
            predicted=float(p[part].mean()), observed=float(y[part].mean()), rows=len(part)
        )
        for part in np.array_split(order, count)
        if len(part)
    ]
    error = sum(b.rows * abs(b.observed - b.predicted) for b in bins) / max(len(y), 1)
    return bins, float(error)


def measure(
    y: np.ndarray[Any, Any], p: np.ndarray[Any, Any], base_rate: float
) -> tuple[ClassifierMetrics, list[ClassifierReliability]]:
    """Held-out AUC, Brier score against the base rate's, and the reliability table."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    both = len(np.unique(y)) == 2
    brier = float(np.mean((p - y) ** 2))
    baseline = float(np.mean((base_rate - y) ** 2))
    bins, error = reliability(y, p)
    metrics = ClassifierMetrics(
        auc=float(roc_auc_score(y, p)) if both else None,
        brier=brier,
        baseline_brier=baseline,
        brier_skill=1.0 - brier / baseline if both and baseline > 0 else None,
        calibration_error=error,
        holdout_rows=len(y),
    )
    return metrics, bins


def score(x: pd.DataFrame, y: np.ndarray[Any, Any], features: Features, run: Run) -> Scored:
    """Choose, calibrate, measure on held-out rows, refit on all rows (see the module's
    docstring)."""
    from sklearn.model_selection import train_test_split

    fit, hold = train_test_split(
        range(len(y)), test_size=_HOLDOUT, random_state=run.seed, stratify=y
    )
    family, candidates = _choose(x.iloc[fit], y[fit], features, run.seed, run)
    run.progress(0.6, f"calibrating the {family.replace('_', ' ')} model on the fitting rows")
    measured = _calibrated(family, features, run.seed).fit(x.iloc[fit], y[fit])
    p_hold = measured.predict_proba(x.iloc[hold])[:, 1]
    metrics, bins = measure(y[hold], p_hold, float(y[fit].mean()))
    run.progress(0.7, "refitting the calibrated model on every row")
    model = _calibrated(family, features, run.seed).fit(x, y)
    return Scored(
        family=family,
        model=model,
        candidates=candidates,
        metrics=metrics,
        reliability=bins,
        fitting_p=measured.predict_proba(x.iloc[fit])[:, 1],
        holdout_p=p_hold,
        holdout_y=y[hold],
    )


@contextmanager
def quiet() -> Iterator[None]:
    """One BLAS/OpenMP thread per computation (many small fits run faster than threads
    contending with other workers), and the warnings small folds bring (a solver short of
    convergence, a category only some rows hold) kept out of the answer."""
    from importlib import import_module

    from sklearn.exceptions import ConvergenceWarning

    for name in ("scipy.optimize", "sklearn.ensemble", "sklearn.linear_model"):
        import_module(name)
    limits = import_module("threadpoolctl").threadpool_limits(limits=1)
    with warnings.catch_warnings(), limits:
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
        yield


# ---------------------------------------------------------------- drivers


def log_odds(model: Any) -> Callable[[pd.DataFrame], np.ndarray[Any, Any]]:
    """The model's log-odds of the outcome (probabilities clipped away from 0 and 1)."""
    import numpy as np

    def predict(rows: pd.DataFrame) -> np.ndarray[Any, Any]:
        p = np.clip(model.predict_proba(rows)[:, 1], _CLIP, 1 - _CLIP)
        return np.asarray(np.log(p / (1 - p)))

    return predict


def local_effects(
    predict: Callable[[pd.DataFrame], np.ndarray[Any, Any]],
    rows: pd.DataFrame,
    reference: pd.DataFrame,
    run: Run,
    progress: tuple[float, float],
) -> np.ndarray[Any, Any]:
    """Each row's effect of each feature (rows x features): ``predict(row)`` less its mean
    over the row with that feature's value replaced by each background row's (a seeded
    sample of ``reference``). ``progress``: the span of fractions to report over."""
    import numpy as np

    names = list(rows.columns)
    if rows.empty:
        return np.zeros((0, len(names)))
    size = max(1, min(_BACKGROUND, len(reference), _EVALUATIONS // (len(rows) * len(names))))
    picked = np.random.default_rng(run.seed).choice(len(reference), size=size, replace=False)
    background = reference.iloc[np.sort(picked)]
    base = predict(rows)
    effects = np.zeros((len(rows), len(names)))
    step = max(1, _CHUNK // size)
    for j, name in enumerate(names):
        start, span = progress
        run.progress(start + span * j / len(names), f"attributing the scores to {name}")
        for begin in range(0, len(rows), step):
            part = rows.iloc[begin : begin + step]
            tiled = part.iloc[np.repeat(np.arange(len(part)), size)].copy()
            tiled[name] = np.tile(background[name].to_numpy(), len(part))
            swapped = predict(tiled).reshape(len(part), size).mean(axis=1)
            effects[begin : begin + len(part), j] = base[begin : begin + len(part)] - swapped
    return effects


def driver_sample(rows: int, seed: int) -> np.ndarray[Any, Any]:
    """Positions (of ``rows`` fitting rows) the global drivers are averaged over: all, or a
    seeded sample of :data:`DRIVER_ROWS`."""
    import numpy as np

    if rows <= DRIVER_ROWS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=DRIVER_ROWS, replace=False))


def global_drivers(
    effects: np.ndarray[Any, Any], rows: pd.DataFrame, features: Features
) -> list[ClassifierDriver]:
    """Features by mean |effect|, largest first, with the direction of numeric ones."""
    import numpy as np

    drivers = []
    for j, name in enumerate(features.names):
        direction = None
        if name in features.numeric:
            values = rows[name].to_numpy(dtype=float)
            known = ~np.isnan(values)
            if known.sum() > 2 and np.ptp(values[known]) > 0 and np.ptp(effects[known, j]) > 0:
                direction = float(np.corrcoef(values[known], effects[known, j])[0, 1])
        drivers.append(
            ClassifierDriver(
                feature=name, importance=float(np.abs(effects[:, j]).mean()), direction=direction
            )
        )
    return sorted(drivers, key=lambda item: -item.importance)


def contributions(
    effects: np.ndarray[Any, Any], row: pd.Series, names: list[str], count: int
) -> list[ClassifierContribution]:
    """The ``count`` features with the largest |effect| on one row, largest first."""
    import numpy as np

    order = np.argsort(-np.abs(effects), kind="stable")[:count]
    return [
        ClassifierContribution(
            feature=names[j], value=display(row.iloc[j]), effect=float(effects[j])
        )
        for j in order
    ]


# ---------------------------------------------------------------- charts


def drivers_chart(drivers: list[ClassifierDriver], title: str, unit: str) -> dict[str, Any]:
    return charts.bar(
        [{"feature": d.feature, "importance": d.importance} for d in drivers],
        charts.field("importance", "quantitative", title=f"Mean |effect| ({unit})"),
        charts.field("feature", "nominal", title="Feature", sort="-x"),
        title=title,
    )


def reliability_chart(bins: list[ClassifierReliability], title: str) -> dict[str, Any]:
    """The held-out reliability bins against the diagonal of perfect calibration."""
    diagonal = charts.line(
        [{"predicted": 0.0, "observed": 0.0}, {"predicted": 1.0, "observed": 1.0}],
        charts.field("predicted", "quantitative"),
        charts.field("observed", "quantitative"),
        title="",
    )
    diagonal["mark"] = {"type": "line", "strokeDash": [4, 4], "color": "#9aa5b1"}
    points = charts.chart(
        [{"predicted": b.predicted, "observed": b.observed, "rows": b.rows} for b in bins],
        {"type": "line", "point": True},
        {
            "x": charts.field("predicted", "quantitative", title="Mean predicted probability"),
            "y": charts.field("observed", "quantitative", title="Observed rate"),
            "tooltip": [charts.field("rows", "quantitative")],
        },
        title="",
    )
    return charts.layer(diagonal, points, title=title)
