"""scout: which features carry information about a target, and which columns drifted.

Ranking (given a ``target``): each feature is scored by its mutual information with the target
(scikit-learn's nearest-neighbour estimate, categories as discrete) and by a random forest's
permutation importance on held-out rows; the two ranks are averaged into one.

Drift (given a ``reference`` table): each column of the request's data (the current set) is
compared with the same column of the reference — numbers by the two-sample Kolmogorov-Smirnov
test and the population stability index (PSI) on the reference's deciles, categories by a chi²
test on their counts. A column drifted when its Bonferroni-adjusted p-value is below 0.01 or
its PSI above 0.2.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

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
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["METHOD", "ScoutDrift", "ScoutParams", "ScoutRank", "ScoutResult"]

#: The largest magnitude a float32 holds (random forests compute in float32).
_FLOAT32_MAX = 3.4028234663852886e38

_MIN_ROWS = 20
_MAX_LABELS = 10
#: Verdicts: adjusted p-value below this, or PSI above ``_PSI``.
_ALPHA = 0.01
_PSI = 0.2
#: PSI's expected value between two samples of one distribution is about (bins - 1) times
#: (1/n_reference + 1/n_current); above this a warning says PSI is noisy.
_PSI_CHANCE = 0.05
#: Categories seen fewer times than this (both tables together) share one chi² cell.
_RARE = 5
_MISSING = "(missing)"


class ScoutParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The column to rank features against (numbers: regression; text, or at most 10 distinct
    #: whole numbers: classes). Leave it out to measure drift only.
    target: str | None = None
    #: The columns to rank and to test for drift (default: every column but the target for
    #: the ranking, every column both tables hold for drift).
    features: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    #: The reference table (records or a dataset id) the request's data are compared with for
    #: drift. Leave it out to rank only. At least one of target and reference is needed.
    reference: TableInput | None = None


class ScoutRank(msgspec.Struct, kw_only=True):
    feature: str
    #: Estimated mutual information with the target (nats).
    mutual_information: float
    #: Mean drop of a random forest's held-out score (R² or accuracy) when the feature is
    #: shuffled.
    model_importance: float
    #: Position by the mean of the two ranks (1: most informative).
    rank: int


class ScoutDrift(msgspec.Struct, kw_only=True):
    column: str
    #: ``ks`` (numbers) or ``chi2`` (categories).
    test: str
    #: The KS distance, or the chi² statistic.
    statistic: float
    p_value: float
    #: The p-value times the number of columns tested (Bonferroni), at most 1.
    p_adjusted: float
    #: Population stability index on the reference's deciles (numbers only).
    psi: float | None
    #: Adjusted p-value below 0.01, or PSI above 0.2.
    drifted: bool


class ScoutResult(msgspec.Struct, kw_only=True):
    #: ``regression`` or ``classification`` when a target was given.
    task: str | None
    #: Features, most informative first (empty without a target).
    ranking: list[ScoutRank]
    #: Columns, in the data's order (empty without a reference).
    drift: list[ScoutDrift]
    #: The columns whose drift verdict is true.
    drifted_columns: list[str]
    current_rows: int
    reference_rows: int | None


# ---------------------------------------------------------------- column reading


def _numeric_like(series: pd.Series) -> bool:
    import pandas as pd

    if series.dtype == bool:
        return False
    values = pd.to_numeric(series, errors="coerce")
    return not bool((values.isna() & series.notna()).any())


def _text(series: pd.Series) -> pd.Series:
    return series.map(str, na_action="ignore").fillna(_MISSING)


# ---------------------------------------------------------------- ranking


def _target(frame: pd.DataFrame, name: str) -> tuple[str, pd.Series]:
    series = columns.column(frame, name, "target")
    if _numeric_like(series):
        values = columns.numeric(frame, name, "target")
        present = values.dropna()
        if bool((present == present.round()).all()) and present.nunique() <= _MAX_LABELS:
            return "classification", values.map(lambda v: f"{v:g}", na_action="ignore")
        return "regression", values
    return "classification", columns.categorical(frame, name, "target")


def _encoded(frame: pd.DataFrame, features: list[str]) -> tuple[np.ndarray[Any, Any], list[bool]]:
    """The features as numbers (categories as codes, missing numbers as the median) and which
    of them are discrete."""
    import pandas as pd

    table, discrete = {}, []
    for name in features:
        if _numeric_like(frame[name]):
            # forests compute in float32: larger magnitudes would overflow there
            values = columns.numeric(
                frame, name, "features", allow_constant=True, largest=_FLOAT32_MAX
            )
            table[name] = values.fillna(values.median())
            discrete.append(False)
        else:
            table[name] = pd.Series(pd.factorize(_text(frame[name]))[0], index=frame.index)
            discrete.append(True)
    return pd.DataFrame(table).to_numpy(dtype=float), discrete


def _rank(
    frame: pd.DataFrame, target: str, features: list[str], run: Run
) -> tuple[str, list[ScoutRank]]:
    import numpy as np
    from scipy.stats import rankdata

    task, y_all = _target(frame, target)
    keep = y_all.notna().to_numpy()
    if not keep.all():
        run.warn(f"{int((~keep).sum())} rows without a target value were left out of the ranking.")
    columns.require_rows(int(keep.sum()), _MIN_ROWS, "the feature ranking")
    x, discrete = _encoded(frame.loc[keep], features)
    y = y_all[keep].to_numpy(dtype=float if task == "regression" else object)
    run.progress(0.1, "mutual information with the target")
    information = _information(task, x, y, discrete, run.seed)
    run.progress(0.3, "random forest permutation importance")
    importance = _importance(task, x, y, run.seed)
    mean_rank = (rankdata(-information) + rankdata(-importance)) / 2
    order = np.lexsort((-importance, -information, mean_rank))
    return task, [
        ScoutRank(
            feature=features[i],
            mutual_information=float(information[i]),
            model_importance=float(importance[i]),
            rank=position + 1,
        )
        for position, i in enumerate(order)
    ]


def _information(
    task: str, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], discrete: list[bool], seed: int
) -> np.ndarray[Any, Any]:
    import numpy as np
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    score = mutual_info_regression if task == "regression" else mutual_info_classif
    return np.asarray(score(x, y, discrete_features=np.array(discrete), random_state=seed))


def _importance(
    task: str, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], seed: int
) -> np.ndarray[Any, Any]:
    """Permutation importance of a random forest on a held-out quarter of the rows."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import train_test_split

    regression = task == "regression"
    stratify = None if regression or min(np.unique(y, return_counts=True)[1]) < 2 else y
    x_fit, x_hold, y_fit, y_hold = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=stratify
    )
    kind = RandomForestRegressor if regression else RandomForestClassifier
    forest = kind(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1)
    forest.fit(x_fit, y_fit)
    found = permutation_importance(
        forest,
        x_hold,
        y_hold,
        scoring="r2" if regression else "accuracy",
        n_repeats=5,
        random_state=seed,
    )
    return np.asarray(found.importances_mean)


# ---------------------------------------------------------------- drift


def _psi(reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]) -> float:
    """Population stability index over the reference's deciles (empty shares count as 1e-4)."""
    import numpy as np

    edges = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    bins = len(edges) + 1
    ref = np.bincount(np.searchsorted(edges, reference), minlength=bins) / len(reference)
    cur = np.bincount(np.searchsorted(edges, current), minlength=bins) / len(current)
    ref, cur = np.maximum(ref, 1e-4), np.maximum(cur, 1e-4)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _numbers(reference: pd.Series, current: pd.Series) -> tuple[float, float, float]:
    """(KS distance, its p-value, PSI); an infinity or a huge number in either table is a
    400 naming the column."""
    import pandas as pd
    from scipy.stats import ks_2samp

    reference_values = pd.to_numeric(reference, errors="coerce")
    current_values = pd.to_numeric(current, errors="coerce")
    columns.check_finite(reference_values, str(reference.name), "reference")
    columns.check_finite(current_values, str(current.name), "data")
    ref = reference_values.dropna().to_numpy(dtype=float)
    cur = current_values.dropna().to_numpy(dtype=float)
    found = ks_2samp(ref, cur)
    return float(found.statistic), float(found.pvalue), _psi(ref, cur)


def _categories(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """(chi², its p-value) on the category counts; rare categories share one cell."""
    import pandas as pd
    from scipy.stats import chi2_contingency

    counts = pd.DataFrame(
        {"reference": _text(reference).value_counts(), "current": _text(current).value_counts()}
    ).fillna(0)
    rare = counts.sum(axis=1) < _RARE
    if rare.sum() > 1:
        counts = pd.concat([counts[~rare], counts[rare].sum().to_frame("(rare)").T])
    if len(counts) < 2:
        return 0.0, 1.0
    found = chi2_contingency(counts.to_numpy().T)
    return float(found.statistic), float(found.pvalue)


def _drift(
    current: pd.DataFrame, reference: pd.DataFrame, names: list[str], run: Run
) -> list[ScoutDrift]:
    tested: list[tuple[str, str, float, float, float | None]] = []
    for done, name in enumerate(names):
        run.progress(0.6 + 0.35 * done / len(names), f"drift: column '{name}'")
        ref, cur = reference[name], current[name]
        if ref.notna().sum() < 2 or cur.notna().sum() < 2:
            run.warn(
                f"Column '{name}' has fewer than two values in a table; its drift was not tested."
            )
            continue
        if _numeric_like(ref) and _numeric_like(cur):
            statistic, p_value, psi = _numbers(ref, cur)
            tested.append((name, "ks", statistic, p_value, psi))
        else:
            statistic, p_value = _categories(ref, cur)
            tested.append((name, "chi2", statistic, p_value, None))
    return [
        ScoutDrift(
            column=name,
            test=test,
            statistic=statistic,
            p_value=p_value,
            p_adjusted=min(1.0, p_value * len(tested)),
            psi=psi,
            drifted=p_value * len(tested) < _ALPHA or (psi is not None and psi > _PSI),
        )
        for name, test, statistic, p_value, psi in tested
    ]


def _drift_columns(
    frame: pd.DataFrame, reference: pd.DataFrame, params: ScoutParams, run: Run
) -> list[str]:
    if params.features is not None:
        for name in params.features:
            columns.column(reference, name, "reference")
        return list(params.features)
    missing = [str(name) for name in frame.columns if name not in reference.columns]
    if missing:
        run.warn(
            f"Columns not in the reference table were not tested for drift: "
            f"{', '.join(missing[:10])}."
        )
    names = [str(name) for name in frame.columns if name in reference.columns]
    if not names:
        raise InvalidRequestError(
            "The reference table shares no column with the data.",
            param="params.reference",
            code="no_common_columns",
        )
    return names


# ---------------------------------------------------------------- compute


def _validate(frame: pd.DataFrame, params: ScoutParams, run: Run) -> tuple[list[str], Any]:
    if params.target is not None:
        columns.column(frame, params.target, "target")
    if params.features is not None:
        columns.columns(frame, params.features, "features")
    reference = run.table("reference")
    if params.target is None and reference is None:
        raise InvalidRequestError(
            "scout needs a target (to rank features by) or a reference table (to measure drift "
            "against), or both.",
            param="params.target",
            code="target_or_reference_required",
        )
    features = params.features or [str(c) for c in frame.columns if c != params.target]
    if params.target is not None:
        if params.target in features:
            raise InvalidRequestError(
                f"Column '{params.target}' is the target; it cannot also be a feature.",
                param="params.features",
                code="target_in_features",
            )
        if not features:
            raise InvalidRequestError(
                "The data have no column besides the target to rank.",
                param="params.features",
                code="no_features",
            )
    return features, reference


def compute(frame: pd.DataFrame, params: ScoutParams, run: Run) -> Outcome[ScoutResult]:
    features, reference = _validate(frame, params, run)
    task: str | None = None
    ranking: list[ScoutRank] = []
    if params.target is not None:
        task, ranking = _rank(frame, params.target, features, run)
    drift: list[ScoutDrift] = []
    if reference is not None:
        names = _drift_columns(frame, reference, params, run)
        chance = 9 * (1 / len(frame) + 1 / len(reference))
        if chance > _PSI_CHANCE:
            run.warn(
                f"With tables this small, PSI reaches about {chance:.2g} by chance alone (the "
                f"verdict's threshold is {_PSI}); weigh PSI-only verdicts against the p-values."
            )
        drift = _drift(frame, reference, names, run)
    result = ScoutResult(
        task=task,
        ranking=ranking,
        drift=drift,
        drifted_columns=[item.column for item in drift if item.drifted],
        current_rows=len(frame),
        reference_rows=None if reference is None else len(reference),
    )
    run.progress(1.0, "done")
    return Outcome(result=result, summary=_summary(result), charts=_charts(result))


def _summary(result: ScoutResult) -> str:
    parts = []
    if result.ranking:
        top = ", ".join(item.feature for item in result.ranking[:3])
        best = result.ranking[0]
        parts.append(
            f"Against the target ({result.task}), the most informative features are {top}; "
            f"{best.feature} has mutual information {best.mutual_information:.3g} and model "
            f"importance {best.model_importance:.3g}."
        )
    if result.reference_rows is not None:
        drifted = result.drifted_columns
        parts.append(
            f"Comparing {result.current_rows} current rows with {result.reference_rows} "
            f"reference rows, {len(drifted)} of {len(result.drift)} columns drifted"
            + (f": {', '.join(drifted)}." if drifted else ".")
        )
    return " ".join(parts)


def _charts(result: ScoutResult) -> list[dict[str, Any]]:
    made = []
    if result.ranking:
        top_mi = max([r.mutual_information for r in result.ranking] + [1e-12])
        top_model = max([r.model_importance for r in result.ranking] + [1e-12])
        rows = [
            {"feature": r.feature, "measure": measure, "share": value / top, "rank": r.rank}
            for r in result.ranking
            for measure, value, top in (
                ("mutual information", r.mutual_information, top_mi),
                ("model importance", r.model_importance, top_model),
            )
        ]
        made.append(
            charts.bar(
                rows,
                charts.field("share", "quantitative", title="Share of the largest value"),
                charts.field(
                    "feature", "nominal", title="Feature", sort=[r.feature for r in result.ranking]
                ),
                color=charts.field("measure", "nominal", title="Measure"),
                yOffset=charts.field("measure", "nominal"),
                title="Feature ranking against the target (best first)",
            )
        )
    if result.drift:
        rows = [
            {
                "column": d.column,
                "evidence": -math.log10(max(d.p_adjusted, 1e-300)),
                "statistic": d.statistic,
                "test": d.test,
                "psi": d.psi,
                "drifted": "drifted" if d.drifted else "stable",
            }
            for d in result.drift
        ]
        made.append(
            charts.bar(
                rows,
                charts.field("column", "nominal", title="Column"),
                charts.field("evidence", "quantitative", title="-log10 adjusted p-value"),
                color=charts.field("drifted", "nominal", title="Verdict"),
                tooltip=[
                    charts.field(k, "nominal" if k == "test" else "quantitative")
                    for k in ("test", "statistic", "psi")
                ],
                title="Drift per column (above 2: p < 0.01 after Bonferroni)",
            )
        )
    return made


def _example() -> tuple[list[dict[str, Cell]], list[dict[str, Cell]]]:
    """Shop visits: spend grows with time on site and basket size; the current month's
    visitors stay longer than last month's, and more of them come from mobile."""
    import random

    def month(rng: random.Random, rows: int, extra_minutes: float, mobile: float) -> list[Any]:
        records = []
        for _ in range(rows):
            minutes = round(rng.gauss(12 + extra_minutes, 4), 1)
            items = rng.randint(1, 8)
            device = "mobile" if rng.random() < mobile else "desktop"
            records.append(
                {
                    "minutes": minutes,
                    "items": items,
                    "device": device,
                    "age": rng.randint(18, 70),
                    "spend": round(3 * minutes + 9 * items + rng.gauss(0, 6), 2),
                }
            )
        return records

    rng = random.Random(0)
    return month(rng, 150, 5.0, 0.75), month(rng, 150, 0.0, 0.4)


_CURRENT, _REFERENCE = _example()

METHOD: Method[ScoutParams, ScoutResult] = Method(
    name="scout",
    summary="Feature discovery and drift: features ranked by mutual information and model "
    "importance, and columns tested for drift against a reference table.",
    params=ScoutParams,
    result=ScoutResult,
    compute=compute,
    example=MethodExample(data=_CURRENT, params=ScoutParams(target="spend", reference=_REFERENCE)),
    tables=("reference",),
    min_rows=_MIN_ROWS,
)
