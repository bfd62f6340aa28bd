"""titan: AutoML on a table — model families compared by nested cross-validation in a time budget.

The rows are split once: three quarters for the search, a quarter held out. On the search part,
each family (a linear model, a random forest, gradient boosting; scikit-learn) is scored by
3-fold outer cross-validation; inside each outer fold a small random hyper-parameter search
(3-fold inner cross-validation) picks the setting the outer fold scores. Rounds add one setting
per family until the time budget is spent or every family has tried ``max_candidates`` settings;
no new setting starts once the budget (less a reserve for the final fits) is spent.

The family with the best outer score is refit with its best setting and measured on the held-out
rows beside a dummy baseline; permutation importance on those rows ranks the features.
Regression intervals are split conformal (crepes): residuals on calibration rows the model did
not see give the interval width. Classification probabilities are calibrated
(``CalibratedClassifierCV``). Rows to ``predict`` are answered by the chosen model refit on all
rows. A search the budget cut short depends on the machine's speed; ``budget_spent`` says so.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import (
    Cell,
    Method,
    MethodExample,
    Outcome,
    Run,
    TableInput,
)
from aiplatform.engines.analytics.methods._classifier import preprocessor
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "TitanCandidate",
    "TitanImportance",
    "TitanMetrics",
    "TitanParams",
    "TitanPrediction",
    "TitanResult",
]

_MIN_ROWS = 30
_MIN_CLASS_ROWS = 8
_FOLDS = 3
_MAX_LABELS = 10
_MISSING = "(missing)"


class TitanParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The column to predict.
    target: str
    #: ``regression``, ``classification``, or ``auto``: a non-numeric target, or a numeric one
    #: holding at most 10 distinct whole numbers, is classification; any other is regression.
    task: Literal["auto", "classification", "regression"] = "auto"
    #: The columns to predict from (default: every other column). Non-numeric ones are one-hot
    #: encoded; missing numbers are filled with the column's median.
    features: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    #: Seconds the search may take. No new candidate starts once they are spent (less a reserve
    #: for the final fits); a larger budget tries more hyper-parameter settings.
    time_budget_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 10.0
    #: Most hyper-parameter settings tried per model family (the first is the library's
    #: default). A search that ends here rather than on the budget is reproducible for a seed.
    max_candidates: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
    #: Confidence of the regression prediction intervals.
    confidence: Annotated[float, msgspec.Meta(ge=0.5, le=0.99)] = 0.9
    #: Rows to predict (records or a dataset id) holding the feature columns; the target
    #: column, if present, is ignored. Answered in their order in ``predictions``.
    predict: TableInput | None = None


class TitanMetrics(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Held-out scores: r2, rmse, mae for regression; accuracy, f1 (macro) and, for two
    classes, roc_auc for classification."""

    r2: float | None = None
    rmse: float | None = None
    mae: float | None = None
    accuracy: float | None = None
    f1: float | None = None
    roc_auc: float | None = None


class TitanCandidate(msgspec.Struct, kw_only=True):
    #: ``linear`` (ridge) or ``logistic``, ``random_forest``, ``gradient_boosting``.
    family: str
    #: Mean outer cross-validation score (r2 or accuracy, see ``cv_metric``).
    cv_score: float
    #: Its standard deviation across the outer folds.
    cv_std: float
    #: Hyper-parameter settings tried in every outer fold.
    settings_tried: int


class TitanImportance(msgspec.Struct, kw_only=True):
    feature: str
    #: Mean drop of the held-out score when the feature's values are shuffled.
    importance: float
    #: Standard deviation of that drop across the shuffles.
    std: float


class TitanPrediction(msgspec.Struct, kw_only=True, omit_defaults=True):
    #: Regression: the predicted value and its conformal interval (None: too few rows to
    #: calibrate an interval at this confidence).
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    #: Classification: the most probable label and every label's calibrated probability.
    label: str | None = None
    probabilities: dict[str, float] | None = None


class TitanResult(msgspec.Struct, kw_only=True):
    #: ``regression`` or ``classification``.
    task: str
    #: The chosen model family.
    model: str
    #: The hyper-parameters the search chose (empty: the library's defaults).
    model_params: dict[str, Cell]
    #: The cross-validation score the families are compared by (``r2`` or ``accuracy``).
    cv_metric: str
    #: Every family the search completed, best first.
    candidates: list[TitanCandidate]
    #: The chosen model on the held-out rows.
    metrics: TitanMetrics
    #: A dummy model (the mean, or the class priors) on the same rows.
    baseline_metrics: TitanMetrics
    holdout_rows: int
    #: Permutation importance on the held-out rows, largest first.
    feature_importance: list[TitanImportance]
    #: Features whose shuffling clearly raises the held-out rows' loss (squared error, or log
    #: loss for classes): a one-sided paired t-test across the rows, p < 0.01 after Bonferroni
    #: correction for the number of features.
    selected_features: list[str]
    #: Regression: share of held-out rows inside their conformal interval.
    interval_coverage: float | None = None
    #: True when the time budget ended the search before every setting was tried.
    budget_spent: bool = False
    predictions: list[TitanPrediction] = msgspec.field(default_factory=list)


@dataclass(slots=True)
class _Data:
    task: str
    x: pd.DataFrame
    y: np.ndarray[Any, Any]
    numeric: list[str]
    categorical: list[str]


@dataclass(slots=True)
class _Family:
    name: str
    build: Callable[[dict[str, Any]], Any]
    #: settings to try, in order; the first is ``{}`` (the library's defaults)
    settings: list[dict[str, Any]]


@dataclass(slots=True)
class _Cell:
    """One family in one outer fold: inner scores per setting and the outer score of the best."""

    inner: list[float] = field(default_factory=list)
    best: int = -1
    outer: float = math.nan


# ---------------------------------------------------------------- input


def _target(frame: pd.DataFrame, params: TitanParams) -> tuple[str, pd.Series]:
    """The task and the target (floats for regression, text labels for classification)."""
    return columns.supervised_target(frame, params.target, params.task, _MAX_LABELS)


def _features(frame: pd.DataFrame, params: TitanParams) -> list[str]:
    names = params.features or [str(name) for name in frame.columns if name != params.target]
    columns.columns(frame, names, "features")
    if params.target in names:
        raise InvalidRequestError(
            f"Column '{params.target}' is the target; it cannot also be a feature.",
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


def _encode(
    frame: pd.DataFrame, names: list[str], numeric: list[str] | None, role: str
) -> tuple[pd.DataFrame, list[str]]:
    """The feature table (numbers as floats, the rest as text with missing marked) and its
    numeric columns. ``numeric`` given: the columns to read as numbers (rows to predict, read
    as the training rows were; there a column may be all missing)."""
    import pandas as pd

    table: dict[str, pd.Series] = {}
    if numeric is None:
        numeric = [
            name for name in names if columns.numeric_like(columns.column(frame, name, role))
        ]
    for name in names:
        series = columns.column(frame, name, role)
        if name not in numeric:
            table[name] = series.map(str, na_action="ignore").fillna(_MISSING).astype(object)
        elif series.notna().any():
            table[name] = columns.numeric(frame, name, role, allow_constant=True)
        else:
            table[name] = pd.Series(float("nan"), index=frame.index)
    return pd.DataFrame(table, index=frame.index), numeric


def _prepare(frame: pd.DataFrame, params: TitanParams, run: Run) -> _Data:
    columns.column(frame, params.target, "target")
    names = _features(frame, params)
    task, target = _target(frame, params)
    x, numeric = _encode(frame, names, None, "features")
    keep = target.notna().to_numpy()
    if not keep.all():
        run.warn(f"{int((~keep).sum())} rows without a target value were left out.")
    columns.require_rows(int(keep.sum()), _MIN_ROWS, "titan")
    y = target[keep].to_numpy(dtype=float if task == "regression" else object)
    if task == "classification":
        labels, counts = _class_counts(y)
        columns.refuse_rare_classes(labels, counts, params.target, _MIN_CLASS_ROWS)
    return _Data(
        task=task,
        x=x.loc[keep].reset_index(drop=True),
        y=y,
        numeric=numeric,
        categorical=[name for name in names if name not in numeric],
    )


def _class_counts(y: np.ndarray[Any, Any]) -> tuple[list[str], list[int]]:
    import numpy as np

    labels, counts = np.unique(y.astype(str), return_counts=True)
    return [str(label) for label in labels], [int(count) for count in counts]


# ---------------------------------------------------------------- models


def _prep(data: _Data) -> Any:
    """The families' shared input (see :func:`_classifier.preprocessor`)."""
    return preprocessor(data)


def _on_table(model: Any, data: _Data) -> Any:
    """``model`` taking the feature table as it is (importance then permutes whole columns)."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", _prep(data)), ("model", model)])


def _families(data: _Data, seed: int, max_candidates: int) -> list[_Family]:
    """The model families, cheapest first; each builds a model on the encoded features."""
    from scipy.stats import loguniform
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import ParameterSampler
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = data.task == "regression"

    def linear(setting: dict[str, Any]) -> Any:
        model = Ridge(**setting) if regression else LogisticRegression(max_iter=2000, **setting)
        return make_pipeline(StandardScaler(), model)

    def forest(setting: dict[str, Any]) -> Any:
        kind = RandomForestRegressor if regression else RandomForestClassifier
        return kind(random_state=seed, n_jobs=1, **setting)

    def boosting(setting: dict[str, Any]) -> Any:
        kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        return kind(random_state=seed, **setting)

    spaces: list[tuple[str, Callable[[dict[str, Any]], Any], dict[str, Any]]] = [
        (
            "linear" if regression else "logistic",
            linear,
            {"alpha": loguniform(1e-3, 1e3)} if regression else {"C": loguniform(1e-3, 1e3)},
        ),
        (
            "gradient_boosting",
            boosting,
            {
                "learning_rate": loguniform(0.01, 0.3),
                "max_iter": [50, 100, 200, 400],
                "max_leaf_nodes": [7, 15, 31, 63],
                "min_samples_leaf": [5, 10, 20, 40],
                "l2_regularization": [0.0, 0.1, 1.0, 10.0],
            },
        ),
        (
            "random_forest",
            forest,
            {
                "n_estimators": [100, 200, 300],
                "max_depth": [None, 3, 6, 12],
                "min_samples_leaf": [1, 2, 4, 8],
                "max_features": [1.0, 0.5, "sqrt"],
            },
        ),
    ]
    families = []
    for index, (name, build, space) in enumerate(spaces):
        settings: list[dict[str, Any]] = [{}]
        if max_candidates > 1:
            drawn = ParameterSampler(space, n_iter=max_candidates - 1, random_state=seed + index)
            settings += [{k: _plain(v) for k, v in s.items()} for s in drawn]
        families.append(_Family(name=name, build=build, settings=settings))
    return families


def _plain(value: Any) -> Cell:
    item = getattr(value, "item", None)
    plain = item() if callable(item) else value
    if isinstance(plain, float):
        return round(plain, 6)
    return plain if isinstance(plain, str | int | None) else str(plain)


# ---------------------------------------------------------------- search


@dataclass(slots=True)
class _Search:
    data: _Data
    families: list[_Family]
    metric: str
    budget_s: float
    started: float
    run: Run
    seed: int
    #: the features encoded once for every fit of the search (no target information in it)
    design: Any = None
    cells: dict[tuple[int, int], _Cell] = field(default_factory=dict)
    #: seconds per fit, by family
    fit_seconds: dict[str, list[float]] = field(default_factory=dict)
    spent: bool = False
    fraction: float = 0.05

    def deadline(self, rows: int) -> float:
        """When the search stops starting candidates: the budget less a reserve for the final
        fits, estimated from the leading family's typical fit scaled to all rows."""
        import numpy as np

        ranked = self.results()
        leader = self.families[ranked[0][0] if ranked else 0].name
        typical = float(np.median(self.fit_seconds.get(leader, [0.0])))
        reserve = 8.0 * typical * len(self.data.y) / max(rows, 1)
        return (
            self.started
            + self.budget_s
            - min(max(0.1 * self.budget_s, reserve), 0.5 * self.budget_s)
        )

    def score(self, setting: dict[str, Any], family: _Family, fit: Any, test: Any) -> float:
        from sklearn.metrics import get_scorer

        x, y = self.design, self.data.y
        begun = time.monotonic()
        model = family.build(setting).fit(x[fit], y[fit])
        self.fit_seconds.setdefault(family.name, []).append(time.monotonic() - begun)
        return float(get_scorer(self.metric)(model, x[test], y[test]))

    def evaluate(self, f: int, k: int, r: int, split: tuple[Any, Any], protected: bool) -> bool:
        """Score setting ``r`` of family ``f`` in outer fold ``k``: its inner cross-validation
        score, and when that is the fold's best so far, its outer score. False when the budget
        ran out between inner fits (unless ``protected``); the setting then counts as untried."""
        family, (train, test) = self.families[f], split
        setting = family.settings[r]
        stage = f"comparing models: {family.name}, setting {r + 1}, outer fold {k + 1}"
        mean = math.nan
        if len(family.settings) > 1:
            scores = []
            for a, b in _splitter(self.data.task, self.seed + 1 + k).split(
                self.design[train], self.data.y[train]
            ):
                if not protected and time.monotonic() >= self.deadline(len(train)):
                    return False
                scores.append(self.score(setting, family, train[a], train[b]))
                self.report(stage)
            mean = float(sum(scores) / len(scores))
        cell = self.cells.setdefault((f, k), _Cell())
        cell.inner.append(mean)
        if cell.best < 0 or mean > cell.inner[cell.best]:
            cell.best = r
            cell.outer = self.score(setting, family, train, test)
        self.report(stage)
        return True

    def report(self, stage: str) -> None:
        """Progress rises with the share of the budget spent."""
        share = (time.monotonic() - self.started) / self.budget_s
        self.fraction = max(self.fraction, 0.05 + 0.8 * min(share, 1.0))
        self.run.progress(self.fraction, stage)

    def go(self) -> None:
        self.design = _prep(self.data).fit_transform(self.data.x)
        outer = list(_splitter(self.data.task, self.seed).split(self.design, self.data.y))
        for r in range(max(len(family.settings) for family in self.families)):
            for f, family in enumerate(self.families):
                for k, split in enumerate(outer if r < len(family.settings) else []):
                    # the first family's defaults are always scored: a model to answer with
                    protected = r == 0 and f == 0
                    over = not protected and time.monotonic() >= self.deadline(len(split[0]))
                    if over or not self.evaluate(f, k, r, split, protected):
                        self.spent = True
                        return

    def results(self) -> list[tuple[int, float, float, int]]:
        """(family index, mean outer score, its deviation, settings tried in every fold) for
        every family scored in every outer fold, best first."""
        import numpy as np

        rows = []
        for f in range(len(self.families)):
            cells = [self.cells.get((f, k)) for k in range(_FOLDS)]
            if any(cell is None or cell.best < 0 for cell in cells):
                continue
            outer = np.array([cell.outer for cell in cells if cell is not None])
            tried = min(len(cell.inner) for cell in cells if cell is not None)
            rows.append((f, float(outer.mean()), float(outer.std()), tried))
        return sorted(rows, key=lambda row: (-row[1], row[0]))

    def best_setting(self, f: int, tried: int) -> dict[str, Any]:
        """The setting with the best mean inner score among those every fold tried."""
        import numpy as np

        if tried == 1:
            return self.families[f].settings[0]
        inner = np.array([self.cells[(f, k)].inner[:tried] for k in range(_FOLDS)])
        return self.families[f].settings[int(np.argmax(inner.mean(axis=0)))]


def _splitter(task: str, seed: int) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    kind = StratifiedKFold if task == "classification" else KFold
    return kind(n_splits=_FOLDS, shuffle=True, random_state=seed)


# ---------------------------------------------------------------- final model


def _metrics(task: str, model: Any, x: pd.DataFrame, y: np.ndarray[Any, Any]) -> TitanMetrics:
    import numpy as np
    from sklearn import metrics

    predicted = model.predict(x)
    if task == "regression":
        return TitanMetrics(
            r2=float(metrics.r2_score(y, predicted)),
            rmse=float(np.sqrt(metrics.mean_squared_error(y, predicted))),
            mae=float(metrics.mean_absolute_error(y, predicted)),
        )
    auc = None
    if len(model.classes_) == 2:
        positive = model.predict_proba(x)[:, 1]
        auc = float(metrics.roc_auc_score(y == model.classes_[1], positive))
    return TitanMetrics(
        accuracy=float(metrics.accuracy_score(y, predicted)),
        f1=float(metrics.f1_score(y, predicted, average="macro", zero_division=0)),
        roc_auc=auc,
    )


def _calibrated(model: Any, rows: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(model, method="isotonic" if rows > 2000 else "sigmoid", cv=3)


def _importance(
    model: Any, x: pd.DataFrame, y: np.ndarray[Any, Any], metric: str, seed: int
) -> list[TitanImportance]:
    from sklearn.inspection import permutation_importance

    found = permutation_importance(
        model,
        x,
        y,
        scoring=metric,
        n_repeats=5,
        random_state=seed,
        max_samples=min(len(y), 2000),
    )
    ranked = [
        TitanImportance(feature=str(name), importance=float(mean), std=float(std))
        for name, mean, std in zip(
            x.columns, found.importances_mean, found.importances_std, strict=True
        )
    ]
    return sorted(ranked, key=lambda item: -item.importance)


def _row_loss(task: str, model: Any, x: pd.DataFrame, y: np.ndarray[Any, Any]) -> Any:
    import numpy as np

    if task == "regression":
        return (y - model.predict(x)) ** 2
    chance = model.predict_proba(x)[np.arange(len(y)), np.searchsorted(model.classes_, y)]
    return -np.log(np.clip(chance, 1e-12, None))


def _selected(final: _Final, ranked: list[TitanImportance], seed: int) -> list[str]:
    """The features whose shuffling raises the held-out loss significantly. The test runs
    across rows, so it sees how much the held-out sample itself varies, which the spread of
    repeated shuffles does not (a noise column can look important on one sample)."""
    import numpy as np
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(seed)
    x, y, task = final.x_hold, final.y_hold, final.data.task
    base = _row_loss(task, final.model, x, y)
    chosen = []
    for item in ranked:
        if item.importance <= 0:
            continue
        losses = []
        for _ in range(3):
            shuffled = x.copy()
            shuffled[item.feature] = rng.permutation(shuffled[item.feature].to_numpy())
            losses.append(_row_loss(task, final.model, shuffled, y))
        rise = np.mean(losses, axis=0) - base
        if np.ptp(rise) == 0:
            continue
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
            p_value = ttest_1samp(rise, 0.0, alternative="greater").pvalue
        if p_value < 0.01 / len(ranked):
            chosen.append(item.feature)
    return chosen


def _cal_rows(train: int, confidence: float) -> int:
    """Calibration rows for split conformal: a fifth of the training rows, at least enough
    for a finite interval at ``confidence``, at most half."""
    needed = math.ceil(confidence / (1 - confidence))
    return min(max(round(0.2 * train), needed), train // 2)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compute(frame: pd.DataFrame, params: TitanParams, run: Run) -> Outcome[TitanResult]:
    started = time.monotonic()
    data = _prepare(frame, params, run)
    predict = run.table("predict")
    rows = None
    if predict is not None:
        rows, _ = _encode(predict, list(data.x.columns), data.numeric, "predict")
    with warnings.catch_warnings(), _one_thread():
        _quiet()
        return _fit(data, params, run, started, rows)


def _one_thread() -> Any:
    """Many small fits run faster on one BLAS/OpenMP thread each than on threads contending
    with other workers for the cores. The limit reaches only thread pools already loaded, so
    the libraries that bring them are loaded first."""
    from importlib import import_module

    for name in ("scipy.optimize", "sklearn.ensemble", "sklearn.linear_model"):
        import_module(name)
    return import_module("threadpoolctl").threadpool_limits(limits=1)


def _quiet() -> None:
    """Warnings expected from small folds: a solver short of convergence, a class a fold
    never predicts, a category only the rows to predict hold."""
    from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)


def _fit(
    data: _Data, params: TitanParams, run: Run, started: float, rows: pd.DataFrame | None
) -> Outcome[TitanResult]:
    from sklearn.model_selection import train_test_split

    regression = data.task == "regression"
    metric = "r2" if regression else "accuracy"
    stratify = None if regression else data.y
    train, hold = train_test_split(
        range(len(data.y)), test_size=0.25, random_state=run.seed, stratify=stratify
    )
    search_data = _Data(
        data.task,
        data.x.iloc[train].reset_index(drop=True),
        data.y[train],
        data.numeric,
        data.categorical,
    )
    families = _families(data, run.seed, params.max_candidates)
    search = _Search(search_data, families, metric, params.time_budget_s, started, run, run.seed)
    run.progress(0.05, "comparing model families by nested cross-validation")
    search.go()
    ranked = search.results()
    if search.spent:
        run.warn(
            "The time budget ended the search before every hyper-parameter setting was "
            "tried; a larger time_budget_s may find a better model, and the answer can vary "
            "with the machine's speed."
        )
    skipped = len(families) - len(ranked)
    if skipped:
        run.warn(
            f"The time budget ran out before {skipped} model "
            f"{'family' if skipped == 1 else 'families'} could be scored."
        )
    best, _, _, tried = ranked[0]
    family = families[best]
    setting = search.best_setting(best, tried)
    final = _Final(data, family, setting, metric, run, params.confidence, train, hold)
    run.progress(0.87, f"fitting {family.name} and measuring it on the held-out rows")
    outcome = final.holdout()
    run.progress(0.93, "permutation importance on the held-out rows")
    importance = _importance(final.model, final.x_hold, final.y_hold, metric, run.seed)
    predictions: list[TitanPrediction] = []
    if rows is not None:
        run.progress(0.96, "refitting on all rows to predict")
        predictions = final.predict(rows)
    result = TitanResult(
        task=data.task,
        model=family.name,
        model_params={key: _plain(value) for key, value in setting.items()},
        cv_metric=metric,
        candidates=[
            TitanCandidate(family=families[f].name, cv_score=score, cv_std=std, settings_tried=n)
            for f, score, std, n in ranked
        ],
        metrics=outcome[0],
        baseline_metrics=outcome[1],
        holdout_rows=len(hold),
        feature_importance=importance,
        selected_features=_selected(final, importance, run.seed),
        interval_coverage=outcome[2],
        budget_spent=search.spent,
        predictions=predictions,
    )
    run.progress(1.0, "done")
    return Outcome(
        result=result, summary=_summary(result, params), charts=_charts(result, final.chart_rows)
    )


@dataclass(slots=True)
class _Final:
    """The chosen family with its setting: held-out measures, then predictions."""

    data: _Data
    family: _Family
    setting: dict[str, Any]
    metric: str
    run: Run
    confidence: float
    train: list[int]
    hold: list[int]
    model: Any = None
    residuals: Any = None
    chart_rows: list[dict[str, Any]] = field(default_factory=list)

    def _model(self, calibrate_on: int = 0) -> Any:
        """The chosen setting on the feature table; classifiers calibrated (``calibrate_on``:
        the rows it will be fitted on)."""
        model = self.family.build(self.setting)
        if self.data.task == "classification":
            model = _calibrated(model, calibrate_on)
        return _on_table(model, self.data)

    @property
    def x_hold(self) -> pd.DataFrame:
        return self.data.x.iloc[self.hold]

    @property
    def y_hold(self) -> np.ndarray[Any, Any]:
        return self.data.y[self.hold]

    def holdout(self) -> tuple[TitanMetrics, TitanMetrics, float | None]:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        x, y, task = self.data.x, self.data.y, self.data.task
        dummy = DummyRegressor() if task == "regression" else DummyClassifier(strategy="prior")
        dummy.fit(x.iloc[self.train], y[self.train])
        baseline = _metrics(task, dummy, self.x_hold, self.y_hold)
        if task == "regression":
            metrics, coverage = self._regression()
        else:
            self.model = self._model(len(self.train))
            self.model.fit(x.iloc[self.train], y[self.train])
            metrics, coverage = _metrics(task, self.model, self.x_hold, self.y_hold), None
            self.chart_rows = _confusion(self.y_hold, self.model.predict(self.x_hold))
        return metrics, baseline, coverage

    def _regression(self) -> tuple[TitanMetrics, float | None]:
        import numpy as np
        from crepes import ConformalRegressor
        from sklearn.model_selection import train_test_split

        x, y = self.data.x, self.data.y
        fit, cal = train_test_split(
            self.train,
            test_size=_cal_rows(len(self.train), self.confidence),
            random_state=self.run.seed,
        )
        self.model = self._model().fit(x.iloc[fit], y[fit])
        cal_residuals = y[cal] - self.model.predict(x.iloc[cal])
        predicted = self.model.predict(self.x_hold)
        lower, upper = self._interval(ConformalRegressor().fit(cal_residuals), predicted)
        inside = (self.y_hold >= lower) & (self.y_hold <= upper)
        self.residuals = np.concatenate([cal_residuals, self.y_hold - predicted])
        self.chart_rows = [
            {"actual": a, "predicted": p, "lower": lo, "upper": up}
            for a, p, lo, up in zip(self.y_hold, predicted, lower, upper, strict=True)
        ]
        coverage = float(inside.mean()) if np.isfinite(upper).all() else None
        return _metrics("regression", self.model, self.x_hold, self.y_hold), coverage

    def _interval(self, conformal: Any, predicted: Any) -> tuple[Any, Any]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="the no. of calibration examples")
            bounds = conformal.predict_int(predicted, confidence=self.confidence)
        return bounds[:, 0], bounds[:, 1]

    def predict(self, rows: pd.DataFrame) -> list[TitanPrediction]:
        """Answers from the setting refit on every row. Regression intervals take their width
        from the residuals on the calibration and held-out rows, which the measured model did
        not see; the refit model, trained on more rows, usually errs no more than it."""
        from crepes import ConformalRegressor

        x, y = self.data.x, self.data.y
        if self.data.task == "regression":
            model = self._model().fit(x, y)
            predicted = model.predict(rows)
            lower, upper = self._interval(ConformalRegressor().fit(self.residuals), predicted)
            return [
                TitanPrediction(value=float(p), lower=_finite(lo), upper=_finite(up))
                for p, lo, up in zip(predicted, lower, upper, strict=True)
            ]
        model = self._model(len(y)).fit(x, y)
        labels = [str(label) for label in model.classes_]
        return [
            TitanPrediction(
                label=labels[int(probs.argmax())],
                probabilities={label: float(p) for label, p in zip(labels, probs, strict=True)},
            )
            for probs in model.predict_proba(rows)
        ]


def _confusion(actual: Any, predicted: Any) -> list[dict[str, Any]]:
    from collections import Counter

    counts = Counter(zip(map(str, actual), map(str, predicted), strict=True))
    return [{"actual": a, "predicted": p, "rows": n} for (a, p), n in sorted(counts.items())]


# ---------------------------------------------------------------- outcome


def _summary(result: TitanResult, params: TitanParams) -> str:
    def show(metrics: TitanMetrics) -> str:
        values = msgspec.structs.asdict(metrics)
        return ", ".join(f"{k} {v:.3g}" for k, v in values.items() if v is not None)

    best = result.candidates[0]
    text = (
        f"titan compared {len(result.candidates)} model "
        f"{'family' if len(result.candidates) == 1 else 'families'} for this {result.task} task by "
        f"nested cross-validation; {result.model} scored best ({result.cv_metric} "
        f"{best.cv_score:.3g} ± {best.cv_std:.3g}, {best.settings_tried} "
        f"setting{'' if best.settings_tried == 1 else 's'} tried). "
        f"On {result.holdout_rows} held-out rows it reaches {show(result.metrics)}, against "
        f"{show(result.baseline_metrics)} for the dummy baseline."
    )
    top = [item.feature for item in result.feature_importance[:3]]
    text += f" The most important features: {', '.join(top)}."
    if result.interval_coverage is not None:
        text += (
            f" {params.confidence:.0%} conformal intervals covered "
            f"{result.interval_coverage:.0%} of the held-out rows."
        )
    if result.predictions:
        text += f" {len(result.predictions)} rows were predicted."
    return text


def _charts(result: TitanResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    importance = charts.bar(
        [{"feature": i.feature, "importance": i.importance} for i in result.feature_importance],
        charts.field("importance", "quantitative", title="Permutation importance"),
        charts.field("feature", "nominal", title="Feature", sort="-x"),
        title="Feature importance on the held-out rows",
    )
    if result.task == "regression":
        actual = charts.field("actual", "quantitative", title="Actual")
        band = charts.chart(
            [row for row in rows if row["upper"] is not None and math.isfinite(row["upper"])],
            {"type": "rule", "opacity": 0.4},
            {
                "x": actual,
                "y": charts.field("lower", "quantitative", title="Predicted"),
                "y2": {"field": "upper"},
            },
            title="",
        )
        fit = charts.layer(
            band,
            charts.point(rows, actual, charts.field("predicted", "quantitative"), title=""),
            title=f"Predicted against actual with conformal intervals ({result.model}, "
            "held-out rows)",
        )
    else:
        fit = charts.point(
            rows,
            charts.field("actual", "nominal", title="Actual"),
            charts.field("predicted", "nominal", title="Predicted"),
            size=charts.field("rows", "quantitative", title="Rows"),
            title=f"Predicted against actual class ({result.model}, held-out rows)",
        )
    return [importance, fit]


def _example() -> list[dict[str, Cell]]:
    """Floor area and age drive a price; the district adds a premium; one column is noise."""
    import random

    rng = random.Random(0)
    records: list[dict[str, Cell]] = []
    for _ in range(80):
        area = round(rng.uniform(40, 160), 1)
        age = rng.randint(0, 60)
        district = rng.choice(["north", "south", "centre"])
        premium = {"north": 0.0, "south": -20.0, "centre": 40.0}[district]
        price = 2.0 * area - 1.2 * age + premium + rng.gauss(0, 12)
        records.append(
            {
                "area": area,
                "age": age,
                "district": district,
                "noise": round(rng.uniform(0, 1), 3),
                "price": round(price, 1),
            }
        )
    return records


METHOD: Method[TitanParams, TitanResult] = Method(
    name="titan",
    summary="AutoML: model families compared by nested cross-validation within a time budget, "
    "with held-out metrics, feature importance, conformal intervals and predictions.",
    params=TitanParams,
    result=TitanResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=TitanParams(
            target="price",
            task="regression",
            time_budget_s=30,
            max_candidates=1,
            predict=[
                {"area": 75.0, "age": 10, "district": "centre", "noise": 0.5},
                {"area": 120.0, "age": 40, "district": "south", "noise": 0.5},
            ],
        ),
    ),
    tables=("predict",),
    numeric_param="target",
    min_rows=_MIN_ROWS,
)
