"""flash: a quick model, and for one row the smallest change that flips its prediction.

A gradient boosting model (scikit-learn's histogram gradient boosting; classification or
regression as the target says) is fitted on the rows and scored by 3-fold cross-validation.
For the chosen ``row`` a counterfactual is searched: the closest row, changing only the
``allowed`` columns, whose prediction is another class (or the ``desired`` one) or, for
regression, lies across ``threshold``.

Closeness is the normalised L1 distance: a numeric change counts |new - old| / scale, the
scale being the column's MAD * 1.4826 (else IQR / 1.349, else its standard deviation); a
changed category, or a value given where it was missing, counts 1. The search: each numeric
column's candidate values are its observed quantiles (``grid`` of them), each other column's
its observed values. Every single change is tried, then (``max_changes`` = 2) every pair of
changes, in one batch each; when the pairs would pass the budget of model evaluations, only
the columns whose single changes moved the prediction most towards the goal are paired. The
closest flip wins (fewer changes on a tie). It is then refined: its numeric changes are shrunk
together towards the row (a line search to within 1/2500 of the change; whole-number columns
stay whole), and any change the flip does not need is dropped. No flip within the budget:
422 ``no_counterfactual``.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Records, Run
from aiplatform.engines.analytics.methods import _classifier as clf
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "FlashChange", "FlashParams", "FlashResult"]

_MIN_ROWS = 20
_MIN_CLASS_ROWS = 5
_MAX_LABELS = 10
_FOLDS = 3
#: Most model evaluations the pair search may take.
_BUDGET = 200_000
#: Points of each stage of the line search that shrinks a counterfactual towards the row.
_LINE = 50
_MAD_TO_SD = 1.4826


class FlashParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The column the model predicts.
    target: str
    #: The row to explain: its position in the data (0-based).
    row: Annotated[int, msgspec.Meta(ge=0)]
    #: The columns the counterfactual may change (default: every feature).
    allowed: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    #: The columns the model predicts from (default: every other column). Non-numeric ones are
    #: one-hot encoded; missing numbers are filled with the column's median.
    features: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    #: ``classification``, ``regression``, or ``auto``: a non-numeric target, or a numeric one
    #: holding at most 10 distinct whole numbers, is classification; any other is regression.
    task: Literal["auto", "classification", "regression"] = "auto"
    #: Classification: the class the prediction should become (default: any other class).
    desired: str | None = None
    #: Regression (required there): the value the prediction must cross, upwards when the row
    #: is predicted at or below it, downwards when above.
    threshold: float | None = None
    #: Candidate values per numeric column: its observed quantiles at this many evenly spaced
    #: levels.
    grid: Annotated[int, msgspec.Meta(ge=3, le=200)] = 25
    #: Most columns changed together: 1 (single changes) or 2 (pairs as well).
    max_changes: Annotated[int, msgspec.Meta(ge=1, le=2)] = 2


class FlashChange(msgspec.Struct, kw_only=True):
    column: str
    #: The row's value (None: missing) and the counterfactual's.
    original: Cell
    new: Cell
    #: The change's share of the distance: |new - original| / scale, or 1 for a category.
    distance: float


class FlashResult(msgspec.Struct, kw_only=True):
    #: ``classification`` or ``regression``.
    task: str
    #: The model: ``gradient_boosting``.
    model: str
    #: ``accuracy`` or ``r2``, and the model's mean 3-fold cross-validated score.
    cv_metric: str
    cv_score: float
    #: The row explained (0-based).
    row: int
    #: The model's prediction for the row as it is: a class, or a value.
    original_prediction: str | float
    #: Classification: the probability the model gives that class.
    original_probability: float | None
    #: The columns changed, and how.
    changes: list[FlashChange]
    #: The prediction for the changed row.
    new_prediction: str | float
    #: Classification: the probability the model gives the new class.
    new_probability: float | None
    #: The normalised L1 distance between the row and the counterfactual.
    distance: float
    #: The goal: the desired class (None: any other), or the threshold crossed.
    desired: str | None
    threshold: float | None
    #: Candidate rows the model predicted during the search.
    candidates_tried: int


# ---------------------------------------------------------------- input


@dataclass(slots=True)
class _Data:
    task: str
    x: pd.DataFrame
    y: np.ndarray[Any, Any]
    features: clf.Features
    #: the explained row's features (one-row table)
    row: pd.DataFrame
    allowed: list[str]


def _target(frame: pd.DataFrame, params: FlashParams) -> tuple[str, pd.Series]:
    """The task and the target (floats for regression, text labels for classification)."""
    return columns.supervised_target(frame, params.target, params.task, _MAX_LABELS)


def _allowed(params: FlashParams, names: list[str]) -> list[str]:
    allowed = params.allowed if params.allowed is not None else names
    for name in allowed:
        if name not in names:
            raise InvalidRequestError(
                f"Column '{name}' given in allowed is not a feature of the model (features: "
                f"{', '.join(names[:20])}).",
                param="params.allowed",
                code="not_a_feature",
            )
    if len(set(allowed)) != len(allowed):
        raise InvalidRequestError(
            "A column is given twice in allowed.", param="params.allowed", code="duplicate_column"
        )
    return list(allowed)


def _goal_fits_task(task: str, params: FlashParams) -> None:
    if task == "regression" and params.threshold is None:
        raise InvalidRequestError(
            "A regression counterfactual needs a threshold for the prediction to cross.",
            param="params.threshold",
            code="missing_threshold",
        )
    if task == "regression" and params.desired is not None:
        raise InvalidRequestError(
            "desired names a class; the target is predicted as a number (give threshold).",
            param="params.desired",
            code="not_classification",
        )
    if task == "classification" and params.threshold is not None:
        raise InvalidRequestError(
            "threshold is for a number predicted; the target is predicted as classes (give "
            "desired, or nothing for any other class).",
            param="params.threshold",
            code="not_regression",
        )


def _read(frame: pd.DataFrame, params: FlashParams, run: Run) -> _Data:
    import numpy as np

    columns.column(frame, params.target, "target")
    names = clf.feature_names(frame, params.features, {params.target: "target"})
    task, target = _target(frame, params)
    if params.row >= len(frame):
        raise InvalidRequestError(
            f"Row {params.row} is not in the data (rows 0 to {len(frame) - 1}).",
            param="params.row",
            code="row_out_of_range",
        )
    allowed = _allowed(params, names)
    _goal_fits_task(task, params)
    x, features = clf.read_features(frame, names)
    keep = target.notna().to_numpy()
    if not keep.all():
        run.warn(f"{int((~keep).sum())} rows without a target value were left out of the fit.")
    columns.require_rows(int(keep.sum()), _MIN_ROWS, "flash")
    y = target[keep].to_numpy(dtype=float if task == "regression" else object)
    if task == "classification":
        _check_classes(y, params)
    return _Data(
        task=task,
        x=x.loc[keep].reset_index(drop=True),
        y=np.asarray(y),
        features=features,
        row=x.iloc[[params.row]].reset_index(drop=True),
        allowed=allowed,
    )


def _check_classes(y: np.ndarray[Any, Any], params: FlashParams) -> None:
    import numpy as np

    labels, counts = np.unique(y.astype(str), return_counts=True)
    columns.refuse_rare_classes(labels.tolist(), counts.tolist(), params.target, _MIN_CLASS_ROWS)
    if params.desired is not None and params.desired not in set(labels.tolist()):
        raise InvalidRequestError(
            f"Class '{params.desired}' given as desired is not a class of target "
            f"'{params.target}' (classes: {', '.join(labels.tolist()[:20])}).",
            param="params.desired",
            code="unknown_class",
        )


# ---------------------------------------------------------------- model


def _fit(data: _Data, seed: int) -> Any:
    """The model: histogram gradient boosting on the encoded features, fitted on every row."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    kind = (
        HistGradientBoostingRegressor
        if data.task == "regression"
        else HistGradientBoostingClassifier
    )
    model = Pipeline(
        [("prep", clf.preprocessor(data.features)), ("model", kind(random_state=seed))]
    )
    return model.fit(data.x, data.y)


def model_for(frame: pd.DataFrame, params: FlashParams, seed: int) -> Any:
    """The model :func:`compute` fits for ``params`` and ``seed``: ``predict`` (and for
    classes ``predict_proba``) on a table of the feature columns. For checking an answer."""
    with clf.quiet():
        return _fit(_read(frame, params, Run(seed=seed)), seed)


def _cv_score(data: _Data, model: Any, seed: int) -> tuple[str, float]:
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    metric = "r2" if data.task == "regression" else "accuracy"
    kind = KFold if data.task == "regression" else StratifiedKFold
    scores = cross_val_score(
        clone(model),
        data.x,
        data.y,
        cv=kind(n_splits=_FOLDS, shuffle=True, random_state=seed),
        scoring=metric,
    )
    return metric, float(np.mean(scores))


@dataclass(slots=True)
class _Goal:
    """What counts as a flip, and how far a prediction has moved towards one."""

    task: str
    model: Any
    #: classification: the row's class and the class wanted (None: any other)
    original: str | None = None
    desired: str | None = None
    #: regression: the threshold and +1 to cross it upwards, -1 downwards
    threshold: float = 0.0
    direction: float = 1.0
    evaluated: int = 0

    def outputs(self, rows: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        self.evaluated += len(rows)
        if self.task == "regression":
            return np.asarray(self.model.predict(rows), dtype=float)
        return np.asarray(self.model.predict_proba(rows))

    def flips(self, out: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        import numpy as np

        if self.task == "regression":
            return np.asarray(self.direction * (out - self.threshold) > 0)
        labels = self.model.classes_[out.argmax(axis=1)]
        if self.desired is not None:
            return np.asarray(labels == self.desired)
        return np.asarray(labels != self.original)

    def progress(self, out: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """How far each output has moved towards the goal (larger: closer)."""
        import numpy as np

        if self.task == "regression":
            return np.asarray(self.direction * out)
        classes = list(self.model.classes_)
        if self.desired is not None:
            return np.asarray(out[:, classes.index(self.desired)])
        return np.asarray(1.0 - out[:, classes.index(self.original)])


def _goal(data: _Data, model: Any, params: FlashParams) -> _Goal:
    if data.task == "regression":
        assert params.threshold is not None
        goal = _Goal(task="regression", model=model, threshold=params.threshold)
        goal.direction = 1.0 if float(goal.outputs(data.row)[0]) <= params.threshold else -1.0
        return goal
    out = model.predict_proba(data.row)
    original = str(model.classes_[int(out.argmax(axis=1)[0])])
    if params.desired == original:
        raise InvalidRequestError(
            f"Row {params.row} is already predicted '{original}'.",
            param="params.desired",
            code="already_desired",
        )
    return _Goal(task="classification", model=model, original=original, desired=params.desired)


# ---------------------------------------------------------------- search


@dataclass(slots=True)
class _Column:
    """One allowed column: its candidate values, their distances from the row's value, and
    its scale."""

    name: str
    values: list[Any]
    distances: list[float]
    numeric: bool
    scale: float
    whole: bool


def _scale(values: np.ndarray[Any, Any]) -> float:
    """MAD * 1.4826, else IQR / 1.349, else the standard deviation, else 1."""
    import numpy as np

    median = float(np.median(values))
    q1, q3 = np.percentile(values, [25, 75])
    for scale in (
        float(np.median(np.abs(values - median))) * _MAD_TO_SD,
        float(q3 - q1) / 1.349,
        float(np.std(values)),
    ):
        if scale > 0:
            return scale
    return 1.0


def _candidates(data: _Data, grid: int) -> list[_Column]:
    """Each allowed column's candidate values: observed quantiles, or observed categories."""
    import numpy as np

    found = []
    for name in data.allowed:
        current = data.row[name].iloc[0]
        if name in data.features.numeric:
            observed = data.x[name].dropna().to_numpy(dtype=float)
            if len(observed) == 0:
                continue
            scale = _scale(observed)
            levels = np.unique(
                np.quantile(observed, np.linspace(0, 1, grid), method="inverted_cdf")
            )
            values = [float(v) for v in levels if math.isnan(current) or v != current]
            distances = [
                1.0 if math.isnan(current) else float(abs(v - current)) / scale for v in values
            ]
            whole = bool(np.all(observed == np.round(observed)))
            found.append(_Column(name, values, distances, True, scale, whole))
        else:
            values = sorted(set(data.x[name].tolist()) - {current, clf.MISSING})
            found.append(_Column(name, values, [1.0] * len(values), False, 1.0, False))
    return [column for column in found if column.values]


@dataclass(slots=True)
class _Flip:
    """A candidate counterfactual: column -> new value, and its distance from the row."""

    changes: dict[str, Any]
    distance: float

    def beats(self, other: _Flip | None) -> bool:
        return other is None or self.distance < other.distance - 1e-12


@dataclass(slots=True)
class _Search:
    """The counterfactual search for one row (see the module's docstring)."""

    data: _Data
    goal: _Goal
    found: list[_Column]
    run: Run

    @property
    def by_name(self) -> dict[str, _Column]:
        return {column.name: column for column in self.found}

    def current(self, name: str) -> Any:
        return self.data.row[name].iloc[0]

    def table(self, steps: list[dict[str, Any]]) -> pd.DataFrame:
        """One copy of the row per step, each with the step's columns set to its values."""
        import pandas as pd

        row = self.data.row
        table = pd.DataFrame(
            {name: [row[name].iloc[0]] * len(steps) for name in row.columns},
            index=range(len(steps)),
        )
        for name in {name for step in steps for name in step}:
            values = [step.get(name, row[name].iloc[0]) for step in steps]
            table[name] = pd.Series(values, index=table.index, dtype=table[name].dtype)
        return table

    def outputs(self, steps: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
        return self.goal.outputs(self.table(steps))

    def closest(
        self, steps: list[dict[str, Any]], distances: list[float], out: np.ndarray[Any, Any]
    ) -> _Flip | None:
        """The closest of ``steps`` (whose model outputs are ``out``) that flips the
        prediction (None: none does)."""
        best: _Flip | None = None
        for hit, distance, step in zip(self.goal.flips(out), distances, steps, strict=True):
            flip = _Flip(step, distance)
            if hit and flip.beats(best):
                best = flip
        return best

    def singles(self) -> tuple[_Flip | None, dict[str, float]]:
        """The closest single-change flip, and each column's best progress towards the goal."""
        steps = [{c.name: value} for c in self.found for value in c.values]
        distances = [d for c in self.found for d in c.distances]
        out = self.outputs(steps)
        progress: dict[str, float] = {}
        for step, moved in zip(steps, self.goal.progress(out), strict=True):
            (name,) = step
            progress[name] = max(progress.get(name, -math.inf), float(moved))
        return self.closest(steps, distances, out), progress

    def pairs(self, progress: dict[str, float]) -> _Flip | None:
        """The closest flip changing two columns, over the pairs the budget allows: the
        columns that moved the prediction most towards the goal are paired first."""
        ranked = sorted(self.found, key=lambda c: -progress.get(c.name, -math.inf))
        pairs: list[tuple[_Column, _Column]] = []
        for keep in range(len(ranked), 1, -1):
            pairs = list(itertools.combinations(ranked[:keep], 2))
            if sum(len(a.values) * len(b.values) for a, b in pairs) <= _BUDGET:
                break
        best: _Flip | None = None
        for index, (a, b) in enumerate(pairs):
            self.run.progress(
                0.45 + 0.35 * index / len(pairs), f"trying changes of {a.name} and {b.name}"
            )
            combos = list(itertools.product(range(len(a.values)), range(len(b.values))))
            steps = [{a.name: a.values[i], b.name: b.values[j]} for i, j in combos]
            distances = [a.distances[i] + b.distances[j] for i, j in combos]
            found = self.closest(steps, distances, self.outputs(steps))
            if found is not None and found.beats(best):
                best = found
        return best

    # ------------------------------------------------------------ refinement

    def distance(self, changes: dict[str, Any]) -> float:
        total = 0.0
        for name, value in changes.items():
            column, current = self.by_name[name], self.current(name)
            if not column.numeric or math.isnan(current):
                total += 1.0
            else:
                total += float(abs(value - current)) / column.scale
        return total

    def along(self, flip: _Flip, t: float) -> dict[str, Any]:
        """The changes of ``flip`` shrunk to the share ``t`` of each numeric change
        (whole-number columns rounded away from the row); categories stay changed."""
        changes: dict[str, Any] = {}
        for name, value in flip.changes.items():
            column, current = self.by_name[name], self.current(name)
            if not column.numeric or math.isnan(current):
                changes[name] = value
                continue
            moved = current + t * (value - current)
            if column.whole:
                moved = math.ceil(moved - 1e-9) if value > current else math.floor(moved + 1e-9)
            changes[name] = float(moved)
        return changes

    def line(self, flip: _Flip, low: float, high: float) -> float:
        """The smallest share in (low, high] on a grid of :data:`_LINE` points that still
        flips (``high`` when none smaller does)."""
        import numpy as np

        shares = np.linspace(low, high, _LINE + 1)[1:]
        out = self.outputs([self.along(flip, float(t)) for t in shares])
        hits = np.flatnonzero(self.goal.flips(out))
        return float(shares[hits[0]]) if len(hits) else high

    def shrink(self, flip: _Flip) -> _Flip:
        """The numeric changes shrunk together towards the row, as far as the flip holds."""
        coarse = self.line(flip, 0.0, 1.0)
        fine = self.line(flip, max(0.0, coarse - 1.0 / _LINE), coarse)
        changes = self.along(flip, fine)
        return _Flip(changes, self.distance(changes))

    def prune(self, flip: _Flip) -> _Flip:
        """The changes the flip does not need dropped, the largest tried first."""
        changes = dict(flip.changes)
        for name in sorted(changes, key=lambda n: -self.distance({n: changes[n]})):
            if len(changes) == 1:
                break
            fewer = {k: v for k, v in changes.items() if k != name}
            if bool(self.goal.flips(self.outputs([fewer]))[0]):
                changes = fewer
        return _Flip(changes, self.distance(changes))

    def refine(self, flip: _Flip) -> _Flip:
        """Shrink, drop what is not needed, and shrink what is left again."""
        shrunk = self.shrink(flip)
        pruned = self.prune(shrunk)
        return self.shrink(pruned) if len(pruned.changes) < len(shrunk.changes) else pruned

    def path(self, flip: _Flip) -> list[dict[str, Any]]:
        """The model's output (regression) or progress towards the goal (classes) as the
        change is applied from 0 to 100%."""
        import numpy as np

        shares = np.linspace(0.0, 1.0, 21)
        out = self.outputs([self.along(flip, float(t)) for t in shares])
        values = out if self.goal.task == "regression" else self.goal.progress(out)
        return [
            {"share": float(t), "output": float(v)} for t, v in zip(shares, values, strict=True)
        ]


# ---------------------------------------------------------------- outcome


def _prediction(goal: _Goal, out: np.ndarray[Any, Any]) -> tuple[str | float, float | None]:
    if goal.task == "regression":
        return float(out[0]), None
    index = int(out[0].argmax())
    return str(goal.model.classes_[index]), float(out[0][index])


def _search(search: _Search, params: FlashParams) -> _Flip:
    """The closest flip of one or two changes, refined; 422 when none is found."""
    search.run.progress(0.3, "trying single changes")
    best, progress = search.singles()
    if params.max_changes == 2:
        paired = search.pairs(progress)
        if paired is not None and paired.beats(best):
            best = paired
    if best is None:
        raise UnprocessableEntityError(
            f"No change of at most {params.max_changes} of the allowed columns "
            f"({', '.join(search.data.allowed[:20])}) over their observed range flips the "
            f"prediction of row {params.row} ({search.goal.evaluated} candidates tried).",
            code="no_counterfactual",
        )
    search.run.progress(0.85, "shrinking the change towards the row")
    return search.refine(best)


def compute(frame: pd.DataFrame, params: FlashParams, run: Run) -> Outcome[FlashResult]:
    data = _read(frame, params, run)
    run.progress(0.05, "fitting a gradient boosting model")
    with clf.quiet():
        model = _fit(data, run.seed)
        run.progress(0.15, "cross-validating the model")
        metric, cv = _cv_score(data, model, run.seed)
        goal = _goal(data, model, params)
        search = _Search(data, goal, _candidates(data, params.grid), run)
        flip = _search(search, params)
        tried = goal.evaluated
        original, original_p = _prediction(goal, search.outputs([{}]))
        new, new_p = _prediction(goal, search.outputs([flip.changes]))
        path = search.path(flip)
    result = FlashResult(
        task=data.task,
        model="gradient_boosting",
        cv_metric=metric,
        cv_score=cv,
        row=params.row,
        original_prediction=original,
        original_probability=original_p,
        changes=[
            FlashChange(
                column=name,
                original=clf.display(search.current(name)),
                new=clf.display(value),
                distance=search.distance({name: value}),
            )
            for name, value in flip.changes.items()
        ],
        new_prediction=new,
        new_probability=new_p,
        distance=flip.distance,
        desired=params.desired,
        threshold=params.threshold,
        candidates_tried=tried,
    )
    run.progress(1.0, "done")
    return Outcome(result=result, summary=_summary(result), charts=_charts(result, path))


def _show(value: str | float) -> str:
    return f"'{value}'" if isinstance(value, str) else f"{value:.4g}"


def _summary(result: FlashResult) -> str:
    text = (
        f"flash fitted gradient boosting for this {result.task} task ({result.cv_metric} "
        f"{result.cv_score:.3f} by {_FOLDS}-fold cross-validation). Row {result.row} is "
        f"predicted {_show(result.original_prediction)}; "
    )
    moves = ", ".join(
        f"{c.column} from {_cell(c.original)} to {_cell(c.new)}" for c in result.changes
    )
    text += (
        f"changing {moves} makes it {_show(result.new_prediction)} (normalised distance "
        f"{result.distance:.3g}; {result.candidates_tried} candidates tried)."
    )
    return text


def _cell(value: Cell) -> str:
    if value is None:
        return "missing"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _charts(result: FlashResult, path: list[dict[str, Any]]) -> list[dict[str, Any]]:
    changes = charts.bar(
        [
            {
                "column": c.column,
                "distance": c.distance,
                "original": str(c.original),
                "new": str(c.new),
            }
            for c in result.changes
        ],
        charts.field("distance", "quantitative", title="Normalised change"),
        charts.field("column", "nominal", title="Column", sort="-x"),
        tooltip=[charts.field("original", "nominal"), charts.field("new", "nominal")],
        title=f"What changes the prediction of row {result.row}",
    )
    what = (
        "Predicted value"
        if result.task == "regression"
        else (
            f"Probability of '{result.desired}'"
            if result.desired is not None
            else f"1 - probability of '{result.original_prediction}'"
        )
    )
    line = charts.line(
        path,
        charts.field("share", "quantitative", title="Share of the change applied"),
        charts.field("output", "quantitative", title=what),
        title="",
    )
    views = [line]
    if result.threshold is not None:
        views.append(
            charts.chart(
                [{"threshold": result.threshold}],
                {"type": "rule", "color": "#d62728"},
                {"y": charts.field("threshold", "quantitative")},
                title="",
            )
        )
    return [changes, charts.layer(*views, title="The model's output along the change")]


def _example() -> Records:
    """Loan applications: approval follows income, debt ratio and credit history."""
    rng = random.Random(0)
    records: Records = []
    for _ in range(120):
        income = round(rng.uniform(20, 150), 1)
        debt = round(rng.uniform(0.05, 0.8), 2)
        years = rng.randint(0, 25)
        purpose = rng.choice(["car", "home", "education", "travel"])
        score = 0.04 * (income - 70) - 6.0 * (debt - 0.4) + 0.12 * (years - 8)
        records.append(
            {
                "income": income,
                "debt_ratio": debt,
                "credit_years": years,
                "purpose": purpose,
                "approved": "yes" if score + rng.gauss(0, 0.5) > 0 else "no",
            }
        )
    records[0].update({"income": 45.0, "debt_ratio": 0.55, "credit_years": 4, "approved": "no"})
    return records


METHOD: Method[FlashParams, FlashResult] = Method(
    name="flash",
    summary="A quick model and, for one row, the smallest change of the allowed columns that "
    "flips its prediction (a counterfactual).",
    params=FlashParams,
    result=FlashResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=FlashParams(
            target="approved", row=0, allowed=["income", "debt_ratio"], desired="yes"
        ),
    ),
    min_rows=_MIN_ROWS,
)
