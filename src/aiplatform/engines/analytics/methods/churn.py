"""churn: each customer's probability of churning, and the features that drive it.

Without ``duration``, ``target`` says whether a customer churned (1) or not (0), and a
calibrated classifier is fitted (see :mod:`._classifier`: a logistic model or gradient
boosting chosen by cross-validated AUC, calibrated with ``CalibratedClassifierCV``, measured
on a quarter of the rows held out, refit on all). A customer's drivers are the interventional
one-feature attributions of the model's log-odds (the exact Shapley values for the logistic
model).

With ``duration`` (how long each customer has been observed, e.g. tenure), ``target`` is the
event flag (1: churn observed; 0: still a customer) and a Cox proportional hazards model is
fitted (lifelines). A still-active customer's probability is that of churning within
``horizon`` more duration units, given that they have stayed so far: 1 - S(d + h) / S(d).
Hazard ratios are the global drivers; a customer's drivers are the terms of their log hazard
against the average customer's, ``coef * (x - mean x)``, added up per feature. The held-out
scores take the probability of churn by ``horizon`` from the start: a held-out customer who
churned by then is a 1, one observed past it a 0, one censored earlier is left out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Records, Run
from aiplatform.engines.analytics.methods import _classifier as clf
from aiplatform.engines.analytics.methods._classifier import (
    ClassifierCandidate,
    ClassifierContribution,
    ClassifierDriver,
    ClassifierMetrics,
    ClassifierReliability,
)
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "ChurnCustomer",
    "ChurnHazardRatio",
    "ChurnParams",
    "ChurnResult",
]

_MIN_ROWS = 40
#: Most levels of a non-numeric feature the survival model keeps apart (the rest share one).
_LEVELS = 20
_PENALIZER = 0.01


class ChurnParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The churn column: 1 for a customer who churned, 0 for one who did not (with
    #: ``duration``: 1 when the churn was observed, 0 for a customer still active).
    target: str
    #: The columns to predict from (default: every column but the target, ``id_column`` and
    #: ``duration``). Non-numeric ones are one-hot encoded; missing numbers are filled with
    #: the column's median.
    features: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    #: The column naming each customer in ``customers`` (default: none; rows are numbered).
    id_column: str | None = None
    #: How long each customer has been observed (tenure). Given: a survival model (Cox
    #: proportional hazards) and the probability of churn within ``horizon``.
    duration: str | None = None
    #: With ``duration``: the probability is that of churning within this many more duration
    #: units. Default: the median observed duration.
    horizon: Annotated[float, msgspec.Meta(gt=0)] | None = None
    #: How many customers who have not churned are listed, highest probability first.
    top: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    #: How many drivers each listed customer gets.
    drivers_per_customer: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3


class ChurnHazardRatio(msgspec.Struct, kw_only=True):
    #: A numeric feature, or ``feature=value`` for a value of a non-numeric one (against its
    #: most frequent value).
    term: str
    #: How many times the hazard of churn is multiplied per unit of the feature (or for the
    #: value against the reference one).
    hazard_ratio: float
    #: Its 95% confidence interval.
    lower: float
    upper: float
    p_value: float


class ChurnCustomer(msgspec.Struct, kw_only=True):
    #: The customer's row in the data (0-based).
    row: int
    #: Their ``id_column`` value (None without one).
    id: Cell
    #: Probability of churn (with ``duration``: within the horizon, given they stayed so far).
    probability: float
    #: The features that push their probability most, largest |effect| first.
    drivers: list[ClassifierContribution]


class ChurnResult(msgspec.Struct, kw_only=True):
    #: ``logistic`` or ``gradient_boosting`` (classification), ``cox`` (with ``duration``).
    model: str
    #: With ``duration``: the horizon of the probabilities (None without).
    horizon: float | None
    #: Customers the model was fitted on.
    rows: int
    #: Share of customers who churned (with ``duration``: the Kaplan-Meier share churned
    #: within the horizon); the baseline gives it to everyone.
    churn_rate: float
    #: The model on the held-out customers, against the base rate.
    metrics: ClassifierMetrics
    #: With ``duration``: Harrell's concordance on the held-out customers.
    concordance: float | None
    #: The held-out reliability table: probability against observed churn, in equal bins.
    calibration: list[ClassifierReliability]
    #: The families compared by cross-validation, the chosen one first (empty with duration).
    candidates: list[ClassifierCandidate]
    #: Every feature by its mean |effect| on the customers, largest first.
    drivers: list[ClassifierDriver]
    #: With ``duration``: the fitted hazard ratios (empty without).
    hazard_ratios: list[ChurnHazardRatio]
    #: Every row's churn probability, in row order (None: a customer who already churned,
    #: with ``duration``, or without a duration).
    probabilities: list[float | None]
    #: Customers who have not churned (target 0 or missing), highest probability first.
    customers: list[ChurnCustomer]


@dataclass(slots=True)
class _Data:
    """The usable rows: features, outcome, and (survival) durations."""

    x: pd.DataFrame
    y: np.ndarray[Any, Any]
    features: clf.Features
    #: positions in the data of the usable rows
    rows: np.ndarray[Any, Any]
    duration: np.ndarray[Any, Any] | None
    #: rows in the data
    total: int


@dataclass(slots=True)
class _Answer:
    """What either model gives: metrics, per-row probabilities and effects."""

    model: str
    metrics: ClassifierMetrics
    reliability: list[ClassifierReliability]
    churn_rate: float
    #: probability per row of the data (NaN: none)
    probability: np.ndarray[Any, Any]
    #: effects per feature, by row of the data: of the rows the drivers are averaged over
    #: and of the rows that may be listed
    effects: dict[int, np.ndarray[Any, Any]]
    drivers: list[ClassifierDriver]
    candidates: list[ClassifierCandidate] = field(default_factory=list)
    hazard_ratios: list[ChurnHazardRatio] = field(default_factory=list)
    concordance: float | None = None
    horizon: float | None = None


# ---------------------------------------------------------------- input


def _read(frame: pd.DataFrame, params: ChurnParams, run: Run) -> tuple[_Data, pd.DataFrame]:
    """The usable rows and the feature table of every row."""
    import numpy as np

    columns.column(frame, params.target, "target")
    target = clf.binary_target(frame, params.target, "target", "churned")
    reserved = {params.target: "target"}
    if params.id_column is not None:
        columns.column(frame, params.id_column, "id_column")
        reserved[params.id_column] = "id column"
    duration = None
    if params.duration is not None:
        duration = _duration(frame, params.duration)
        reserved[params.duration] = "duration"
    elif params.horizon is not None:
        raise InvalidRequestError(
            "A horizon needs a duration column (how long each customer has been observed).",
            param="params.horizon",
            code="horizon_without_duration",
        )
    names = clf.feature_names(frame, params.features, reserved)
    x, features = clf.read_features(frame, names)
    keep = target.notna() if duration is None else target.notna() & duration.notna()
    if not bool(keep.all()):
        what = "a target value" if duration is None else "a target value or a duration"
        run.warn(f"{int((~keep).sum())} rows without {what} were left out of the fit.")
    columns.require_rows(int(keep.sum()), _MIN_ROWS, "churn")
    mask = keep.to_numpy()
    y = target[keep].to_numpy(dtype=int)
    clf.require_classes(y, params.target, "target", ("not churned", "churned"))
    missing = x[features.numeric].isna().any(axis=1) & keep
    if bool(missing.any()):
        run.warn(f"{int(missing.sum())} rows miss a feature value; each is filled with its median.")
    data = _Data(
        x=x.loc[keep].reset_index(drop=True),
        y=y,
        features=features,
        rows=np.flatnonzero(mask),
        duration=None if duration is None else duration[keep].to_numpy(dtype=float),
        total=len(frame),
    )
    return data, x


def _duration(frame: pd.DataFrame, name: str) -> pd.Series:
    values = columns.numeric(frame, name, "duration")
    negative = values < 0
    if bool(negative.any()):
        row = int(negative.to_numpy().argmax())
        raise InvalidRequestError(
            f"Column '{name}' given as duration holds {values.iloc[row]:g} at row {row}; "
            "durations cannot be negative.",
            param="params.duration",
            code="negative_duration",
        )
    return values


# ---------------------------------------------------------------- classification


def _classify(data: _Data, x_all: pd.DataFrame, params: ChurnParams, run: Run) -> _Answer:
    import numpy as np

    scored = clf.score(data.x, data.y, data.features, run)
    probability = scored.model.predict_proba(x_all)[:, 1]
    sampled = _sample(data.rows, run.seed)
    explained = np.unique(np.concatenate([sampled, _listed(probability, data, params)]))
    run.progress(0.75, "attributing each customer's probability to the features")
    effects = clf.local_effects(
        clf.log_odds(scored.model), x_all.iloc[explained], data.x, run, (0.75, 0.2)
    )
    by_row = {int(row): effects[i] for i, row in enumerate(explained)}
    return _Answer(
        model=scored.family,
        metrics=scored.metrics,
        reliability=scored.reliability,
        churn_rate=float(data.y.mean()),
        probability=np.asarray(probability, dtype=float),
        effects=by_row,
        drivers=clf.global_drivers(
            np.array([by_row[int(row)] for row in sampled]), x_all.iloc[sampled], data.features
        ),
        candidates=scored.candidates,
    )


def _sample(rows: np.ndarray[Any, Any], seed: int) -> np.ndarray[Any, Any]:
    """The rows of the data the global drivers are averaged over."""
    import numpy as np

    return np.asarray(rows[clf.driver_sample(len(rows), seed)])


def _listed(
    probability: np.ndarray[Any, Any], data: _Data, params: ChurnParams
) -> np.ndarray[Any, Any]:
    """Rows of customers who have not churned with a probability, highest first (the first
    ``top``)."""
    import numpy as np

    churned = np.zeros(len(probability), dtype=bool)
    churned[data.rows[data.y == 1]] = True
    candidates = np.flatnonzero(~churned & ~np.isnan(probability))
    order = np.argsort(-probability[candidates], kind="stable")
    return np.asarray(candidates[order][: params.top])


# ---------------------------------------------------------------- survival


def _design(x: pd.DataFrame, features: clf.Features) -> tuple[pd.DataFrame, dict[str, str]]:
    """The survival model's covariates: numbers (missing filled with the median) and, for each
    other feature, one 0/1 column per value but its most frequent one, the reference (the 20
    most frequent values, missing counting as one; the rest share one); with the feature each
    column belongs to."""
    import pandas as pd

    parts: dict[str, pd.Series] = {}
    owner: dict[str, str] = {}
    for name in features.names:
        series = x[name]
        if name in features.numeric:
            filled = series.fillna(series.median())
            parts[name], owner[name] = filled.fillna(0.0), name
            continue
        counts = series.value_counts()
        common = counts.index[:_LEVELS]
        lumped = series.where(series.isin(common), "(other)")
        for level in sorted(set(lumped) - {counts.index[0]}):
            term = f"{name}={level}"
            parts[term], owner[term] = (lumped == level).astype(float), name
    return pd.DataFrame(parts, index=x.index), owner


def _cox(design: pd.DataFrame, duration: Any, event: Any, run: Run) -> Any:
    """A Cox model on the covariates that vary; 422 when the fit does not converge. The
    advice lifelines gives about a fit (a column of low variance, one that separates the
    events) is passed on as warnings."""
    import numpy as np
    from lifelines import CoxPHFitter  # type: ignore[import-untyped, unused-ignore]
    from lifelines.exceptions import (  # type: ignore[import-untyped, unused-ignore]
        ConvergenceError,
        ConvergenceWarning,
    )

    table = design.loc[:, design.nunique() > 1].copy()
    table["_duration"] = duration
    table["_event"] = event
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model = CoxPHFitter(penalizer=_PENALIZER).fit(table, "_duration", "_event")
        except (ConvergenceError, np.linalg.LinAlgError) as exc:
            raise UnprocessableEntityError(
                f"The survival model did not converge on these data ({str(exc)[:160]}).",
                code="no_convergence",
            ) from exc
    for found in caught:
        if found.category is ConvergenceWarning:
            # the first sentence names the problem; the rest is advice for lifelines' users
            message = f"Survival model: {str(found.message).strip().split('. ')[0]}."
            if message not in run.warnings:
                run.warn(message)
    return model


def _survive(data: _Data, params: ChurnParams, run: Run) -> _Answer:
    """The Cox model: held-out scores at the horizon, then the refit on every row."""
    import numpy as np
    from lifelines import KaplanMeierFitter  # type: ignore[import-untyped, unused-ignore]
    from lifelines.utils import concordance_index  # type: ignore[import-untyped, unused-ignore]
    from sklearn.model_selection import train_test_split

    assert data.duration is not None
    durations, events = data.duration, data.y
    horizon = params.horizon if params.horizon is not None else float(np.median(durations))
    design, owner = _design(data.x, data.features)
    fit, hold = train_test_split(
        np.arange(len(events)), test_size=0.25, random_state=run.seed, stratify=events
    )
    run.progress(0.15, "fitting a Cox model on the fitting rows")
    measured = _cox(design.iloc[fit], durations[fit], events[fit], run)
    covariates = list(measured.params_.index)
    held = design.iloc[hold][covariates]
    churn_by = 1.0 - measured.predict_survival_function(held, times=[horizon]).to_numpy()[0]
    known = (durations[hold] > horizon) | (events[hold] == 1)
    outcome = ((durations[hold] <= horizon) & (events[hold] == 1)).astype(float)
    km = KaplanMeierFitter().fit(durations[fit], events[fit])
    base = 1.0 - float(km.predict(horizon))
    if len(np.unique(outcome[known])) < 2:
        run.warn(
            "The held-out customers known at the horizon all share one outcome; AUC is left out."
        )
    metrics, bins = clf.measure(outcome[known], churn_by[known], base)
    concordance = float(
        concordance_index(durations[hold], -measured.predict_partial_hazard(held), events[hold])
    )
    run.progress(0.5, "refitting the Cox model on every row")
    model = _cox(design, durations, events, run)
    covariates = list(model.params_.index)
    full = design[covariates]
    return _Answer(
        model="cox",
        metrics=metrics,
        reliability=bins,
        churn_rate=1.0 - float(KaplanMeierFitter().fit(durations, events).predict(horizon)),
        probability=_conditional(model, full, horizon, data, run),
        effects=_hazard_effects(model, full, owner, data),
        drivers=[],
        hazard_ratios=_ratios(model),
        concordance=concordance,
        horizon=horizon,
    )


def _conditional(
    model: Any, full: pd.DataFrame, horizon: float, data: _Data, run: Run
) -> np.ndarray[Any, Any]:
    """Per row of the data: for a customer still active, the probability of churning within
    the horizon given they have stayed so far; NaN for the others."""
    import numpy as np

    assert data.duration is not None
    durations, events = data.duration, data.y

    active = events == 0
    probability = np.full(data.total, np.nan)
    if active.any():
        surviving = model.predict_survival_function(
            full[active], times=[horizon], conditional_after=durations[active]
        ).to_numpy()[0]
        probability[data.rows[active]] = 1.0 - surviving
    longest = float(durations.max())
    beyond = int((durations[active] + horizon > longest).sum())
    if beyond:
        run.warn(
            f"For {beyond} customers the horizon reaches past the longest observed duration "
            f"({longest:g}); their probabilities assume no churn after it."
        )
    return probability


def _hazard_effects(
    model: Any, full: pd.DataFrame, owner: dict[str, str], data: _Data
) -> dict[int, np.ndarray[Any, Any]]:
    """Each usable row's log hazard against the average customer's, added up per feature."""
    import numpy as np

    centred = (full - full.mean()).to_numpy() * model.params_.to_numpy()
    index = {name: j for j, name in enumerate(data.features.names)}
    effects = np.zeros((len(full), len(index)))
    for k, term in enumerate(full.columns):
        effects[:, index[owner[term]]] += centred[:, k]
    return {int(row): effects[i] for i, row in enumerate(data.rows)}


def _ratios(model: Any) -> list[ChurnHazardRatio]:
    summary = model.summary
    return [
        ChurnHazardRatio(
            term=str(term),
            hazard_ratio=float(row["exp(coef)"]),
            lower=float(row["exp(coef) lower 95%"]),
            upper=float(row["exp(coef) upper 95%"]),
            p_value=float(row["p"]),
        )
        for term, row in summary.iterrows()
    ]


# ---------------------------------------------------------------- outcome


def compute(frame: pd.DataFrame, params: ChurnParams, run: Run) -> Outcome[ChurnResult]:
    data, x_all = _read(frame, params, run)
    with clf.quiet():
        if data.duration is None:
            answer = _classify(data, x_all, params, run)
        else:
            answer = _survive(data, params, run)
            answer.drivers = _drivers_from(answer, data, x_all)
    run.progress(0.95, "listing the customers at risk")
    result = _result(frame, data, x_all, answer, params)
    run.progress(1.0, "done")
    return Outcome(
        result=result,
        summary=_summary(result),
        charts=[
            clf.drivers_chart(
                result.drivers,
                "What drives churn",
                "log-odds" if result.model != "cox" else "log hazard",
            ),
            clf.reliability_chart(
                result.calibration, "Predicted against observed churn (held-out)"
            ),
        ],
    )


def _drivers_from(answer: _Answer, data: _Data, x_all: pd.DataFrame) -> list[ClassifierDriver]:
    import numpy as np

    effects = np.array([answer.effects[int(row)] for row in data.rows])
    return clf.global_drivers(effects, x_all.iloc[data.rows], data.features)


def _result(
    frame: pd.DataFrame, data: _Data, x_all: pd.DataFrame, answer: _Answer, params: ChurnParams
) -> ChurnResult:
    probability = answer.probability
    listed = _listed(probability, data, params)
    ids = frame[params.id_column] if params.id_column is not None else None
    customers = [
        ChurnCustomer(
            row=int(row),
            id=charts.json_safe(ids.iloc[row]) if ids is not None else None,
            probability=float(probability[row]),
            drivers=clf.contributions(
                answer.effects[int(row)],
                x_all.iloc[int(row)],
                data.features.names,
                params.drivers_per_customer,
            ),
        )
        for row in listed
        if int(row) in answer.effects
    ]
    return ChurnResult(
        model=answer.model,
        horizon=answer.horizon,
        rows=len(data.y),
        churn_rate=answer.churn_rate,
        metrics=answer.metrics,
        concordance=answer.concordance,
        calibration=answer.reliability,
        candidates=answer.candidates,
        drivers=answer.drivers,
        hazard_ratios=answer.hazard_ratios,
        probabilities=[None if math.isnan(p) else float(p) for p in probability],
        customers=customers,
    )


def _summary(result: ChurnResult) -> str:
    metrics = result.metrics
    model = {
        "logistic": "a calibrated logistic model",
        "gradient_boosting": "calibrated gradient boosting",
        "cox": "a Cox proportional hazards model",
    }[result.model]
    rate = f"{result.churn_rate:.1%}"
    if result.horizon is not None:
        rate += f" within {result.horizon:g}"
    text = f"churn fitted {model} on {result.rows} customers (churn rate {rate}). "
    auc = f"AUC {metrics.auc:.3f}, " if metrics.auc is not None else ""
    text += (
        f"On {metrics.holdout_rows} held-out customers it reaches {auc}Brier score "
        f"{metrics.brier:.3f} against {metrics.baseline_brier:.3f} for the base rate, with a "
        f"calibration error of {metrics.calibration_error:.3f}."
    )
    if result.concordance is not None:
        text += f" Concordance: {result.concordance:.3f}."
    top = ", ".join(driver.feature for driver in result.drivers[:3])
    text += f" The strongest drivers: {top}."
    if result.customers:
        first = result.customers[0]
        who = f"'{first.id}'" if first.id is not None else f"row {first.row}"
        text += (
            f" Of the customers who have not churned, {who} is the most at risk "
            f"({first.probability:.0%})."
        )
    return text


def _example() -> Records:
    """Subscribers: short tenure, high charges, support calls and a monthly contract raise
    churn; the region does not."""
    import random

    rng = random.Random(0)
    records: Records = []
    for i in range(200):
        tenure = rng.randint(1, 72)
        charges = round(rng.uniform(20, 110), 2)
        calls = min(9, int(rng.expovariate(0.7)))
        contract = rng.choice(["monthly", "monthly", "yearly", "two_year"])
        region = rng.choice(["north", "south", "east", "west"])
        score = (
            -0.8
            - 0.05 * (tenure - 36)
            + 0.025 * (charges - 65)
            + 0.45 * (calls - 1)
            + {"monthly": 0.9, "yearly": -0.4, "two_year": -1.2}[contract]
        )
        churned = int(rng.random() < 1.0 / (1.0 + math.exp(-score)))
        records.append(
            {
                "customer": f"c{i:03d}",
                "tenure": tenure,
                "monthly_charges": charges,
                "support_calls": calls,
                "contract": contract,
                "region": region,
                "churned": churned,
            }
        )
    return records


METHOD: Method[ChurnParams, ChurnResult] = Method(
    name="churn",
    summary="Churn probability per customer from a calibrated model (or a Cox survival model "
    "with a duration), with held-out AUC and Brier score and each customer's drivers.",
    params=ChurnParams,
    result=ChurnResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=ChurnParams(target="churned", id_column="customer", top=5),
    ),
    numeric_param="target",
    min_rows=_MIN_ROWS,
)
