"""Descriptive statistics, correlations with p-values, and hypothesis tests that check their
own assumptions.

Every numeric column is described (count, mean, spread, quartiles, skew, excess kurtosis,
missing values); every pair of them gets Pearson's r and Spearman's rho with their p-values
(scipy, pairwise complete rows). A test compares ``value`` across the groups of ``group``:
Student's or Welch's t, Mann-Whitney U, one-way ANOVA, Kruskal-Wallis; chi² tests the
association of two categorical columns; Shapiro-Wilk tests normality. Each test reports an
effect size and checks what it assumes (normality within each group by Shapiro-Wilk, equal
variances by Levene's median-centred test, expected counts for chi²); when a check fails it
recommends the test that does without it. ``test="auto"`` makes that choice itself and says
why.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Method, MethodExample, Outcome, Records, Run
from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "METHOD",
    "Assumption",
    "Correlation",
    "Description",
    "GroupSummary",
    "HypothesisTest",
    "StatisticalParams",
    "StatisticalResult",
]

#: Correlations are computed among at most this many columns (the first ones given).
MAX_CORRELATED = 50
#: A grouping column may have at most this many groups.
MAX_GROUPS = 50
#: Box plots draw at most this many raw values (a seeded sample beyond).
CHART_VALUES = 5_000

TestName = Literal["auto", "t", "welch", "mann_whitney", "anova", "kruskal", "chi2", "shapiro"]
_GROUP_TESTS = ("t", "welch", "mann_whitney", "anova", "kruskal")
_TWO_GROUP_TESTS = ("t", "welch", "mann_whitney")

_TITLES = {
    "t": "Student's t-test",
    "welch": "Welch's t-test",
    "mann_whitney": "Mann-Whitney U test",
    "anova": "one-way ANOVA",
    "kruskal": "Kruskal-Wallis H test",
    "chi2": "chi-squared test of independence",
    "shapiro": "Shapiro-Wilk test",
}


class StatisticalParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Numeric columns to describe and correlate. None: every numeric column (but ``group``).
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    #: The test to run: "t" (Student), "welch", "mann_whitney" (two groups), "anova",
    #: "kruskal" (two or more groups), "chi2" (``group`` by ``value``, both categorical),
    #: "shapiro" (normality of ``value``, per group when ``group`` is given, else of each of
    #: ``columns``), "auto" (a group test chosen by the assumption checks) or None (no test).
    test: TestName | None = None
    #: The numeric column compared across groups (categorical for "chi2").
    value: str | None = None
    #: The column whose values define the groups.
    group: str | None = None
    #: Significance level for the tests and the assumption checks.
    alpha: Annotated[float, msgspec.Meta(gt=0.0, lt=0.5)] = 0.05


class Description(msgspec.Struct, kw_only=True):
    column: str
    #: Values present.
    count: int
    missing: int
    mean: float | None
    #: Sample standard deviation (n - 1).
    std: float | None
    min: float | None
    q1: float | None
    median: float | None
    q3: float | None
    max: float | None
    #: Adjusted Fisher-Pearson skewness (pandas ``skew``).
    skew: float | None
    #: Excess kurtosis, bias-corrected (pandas ``kurt``; 0 for a normal distribution).
    kurtosis: float | None


class Correlation(msgspec.Struct, kw_only=True):
    a: str
    b: str
    #: Rows where both columns are present.
    n: int
    pearson_r: float | None
    pearson_p: float | None
    spearman_rho: float | None
    spearman_p: float | None


class Assumption(msgspec.Struct, kw_only=True):
    name: str
    #: None when the check cannot be made (too few values).
    passed: bool | None
    detail: str


class GroupSummary(msgspec.Struct, kw_only=True):
    group: str
    n: int
    mean: float | None
    median: float | None
    std: float | None


class HypothesisTest(msgspec.Struct, kw_only=True):
    #: "t", "welch", "mann_whitney", "anova", "kruskal", "chi2" or "shapiro".
    name: str
    #: What was tested, in words.
    title: str
    statistic: float | None
    p_value: float | None
    #: p_value < alpha.
    significant: bool | None
    #: Degrees of freedom (two for ANOVA: between and within groups).
    df: list[float]
    effect_size: float | None
    #: cohen_d (pooled SD), cohen_d_av (mean of the two variances), rank_biserial,
    #: eta_squared, epsilon_squared or cramers_v; None for Shapiro-Wilk.
    effect_size_name: str | None
    #: The groups compared, in the order the effect size's sign refers to (first minus second).
    groups: list[GroupSummary]
    assumptions: list[Assumption]
    #: The test to use instead when an assumption fails; None when none fails.
    recommendation: str | None = None
    #: Why "auto" chose this test; None for a test asked for by name.
    reason: str | None = None


class StatisticalResult(msgspec.Struct, kw_only=True):
    rows: int
    alpha: float
    describe: list[Description]
    correlations: list[Correlation]
    tests: list[HypothesisTest]


# ----------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "p = n/a"
    return f"p = {p:.3g}" if p >= 1e-4 else "p < 0.0001"


def _numeric_names(frame: pd.DataFrame, exclude: set[str]) -> list[str]:
    import pandas as pd

    return [
        str(name)
        for name in frame.columns
        if name not in exclude
        and pd.api.types.is_numeric_dtype(frame[name])
        and not pd.api.types.is_bool_dtype(frame[name])
        and bool(frame[name].notna().any())
    ]


def _chosen_columns(frame: pd.DataFrame, params: StatisticalParams) -> pd.DataFrame:
    """The columns to describe, as floats; column roles are checked here, first of all."""
    import pandas as pd

    if params.columns is not None:
        return columns.numeric_columns(frame, params.columns, "columns", allow_constant=True)
    exclude = {name for name in (params.group,) if name is not None}
    if params.test == "chi2" and params.value is not None:
        exclude.add(params.value)
    names = _numeric_names(frame, exclude)
    if not names:
        if params.test is None:
            raise InvalidRequestError(
                "The data have no numeric column to describe; name columns in params.columns.",
                param="params.columns",
                code="no_numeric_columns",
            )
        return pd.DataFrame(index=frame.index)
    return columns.numeric_columns(frame, names, "columns", allow_constant=True)


def _describe(values: pd.Series, name: str) -> Description:
    present = values.dropna()
    quartiles = present.quantile([0.25, 0.5, 0.75]) if len(present) else None
    return Description(
        column=name,
        count=len(present),
        missing=int(values.isna().sum()),
        mean=_num(present.mean()) if len(present) else None,
        std=_num(present.std()) if len(present) > 1 else None,
        min=_num(present.min()) if len(present) else None,
        q1=_num(quartiles.iloc[0]) if quartiles is not None else None,
        median=_num(quartiles.iloc[1]) if quartiles is not None else None,
        q3=_num(quartiles.iloc[2]) if quartiles is not None else None,
        max=_num(present.max()) if len(present) else None,
        skew=_num(present.skew()) if len(present) > 2 else None,
        kurtosis=_num(present.kurt()) if len(present) > 3 else None,
    )


def _correlate(a: pd.Series, b: pd.Series, name_a: str, name_b: str) -> Correlation:
    from scipy import stats

    both = a.notna() & b.notna()
    x = a[both].to_numpy(dtype=float)
    y = b[both].to_numpy(dtype=float)
    n = len(x)
    if n < 3 or float(x.min()) == float(x.max()) or float(y.min()) == float(y.max()):
        return Correlation(
            a=name_a,
            b=name_b,
            n=n,
            pearson_r=None,
            pearson_p=None,
            spearman_rho=None,
            spearman_p=None,
        )
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    return Correlation(
        a=name_a,
        b=name_b,
        n=n,
        pearson_r=_num(pearson.statistic),
        pearson_p=_num(pearson.pvalue),
        spearman_rho=_num(spearman.statistic),
        spearman_p=_num(spearman.pvalue),
    )


def _correlations(numeric: pd.DataFrame, run: Run) -> list[Correlation]:
    names = [str(name) for name in numeric.columns]
    if len(names) > MAX_CORRELATED:
        run.warn(
            f"Correlations are computed among the first {MAX_CORRELATED} of the "
            f"{len(names)} columns."
        )
        names = names[:MAX_CORRELATED]
    constant = [name for name in names if numeric[name].dropna().nunique() <= 1]
    if constant:
        run.warn(f"Constant columns have no correlation: {', '.join(constant)}.")
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    found: list[Correlation] = []
    for done, (a, b) in enumerate(pairs):
        found.append(_correlate(numeric[a], numeric[b], a, b))
        if done % 50 == 0:
            run.progress(0.2 + 0.3 * done / len(pairs), "correlating columns")
    return found


# ----------------------------------------------------------------------------- groups


def _group_order(labels: pd.Series) -> list[str]:
    """Group labels in their natural order (numbers as numbers), as the strings used."""
    present = labels.dropna()
    try:
        ordered = sorted(present.unique())
    except TypeError:
        ordered = sorted(present.astype(str).unique())
    return list(dict.fromkeys(str(item) for item in ordered))


def _groups(frame: pd.DataFrame, params: StatisticalParams) -> dict[str, np.ndarray]:
    """``value`` split by ``group``, each group's present values (checked: 2+ groups, 2+
    values each, at most MAX_GROUPS)."""
    assert params.value is not None
    assert params.group is not None
    values = columns.numeric(frame, params.value, "value")
    labels = columns.categorical(frame, params.group, "group")
    keep = values.notna() & labels.notna()
    order = _group_order(frame[params.group][keep])
    if len(order) > MAX_GROUPS:
        raise InvalidRequestError(
            f"Column '{params.group}' given as group has {len(order)} groups; the most is "
            f"{MAX_GROUPS}.",
            param="params.group",
            code="too_many_groups",
        )
    if len(order) < 2:
        raise InvalidRequestError(
            f"Column '{params.group}' given as group has fewer than two groups with values of "
            f"'{params.value}'.",
            param="params.group",
            code="too_few_groups",
        )
    kept_labels = labels[keep]
    kept_values = values[keep]
    split = {name: kept_values[kept_labels == name].to_numpy(dtype=float) for name in order}
    small = [name for name, group in split.items() if len(group) < 2]
    if small:
        raise InvalidRequestError(
            f"Group '{small[0]}' of '{params.group}' has fewer than two values of "
            f"'{params.value}'; a test needs at least two in each group.",
            param="params.group",
            code="group_too_small",
        )
    return split


def _summaries(groups: dict[str, np.ndarray]) -> list[GroupSummary]:
    import numpy as np

    return [
        GroupSummary(
            group=name,
            n=len(values),
            mean=_num(np.mean(values)),
            median=_num(np.median(values)),
            std=_num(np.std(values, ddof=1)) if len(values) > 1 else None,
        )
        for name, values in groups.items()
    ]


def _normality(groups: dict[str, np.ndarray], alpha: float) -> list[Assumption]:
    """Shapiro-Wilk within each group."""
    checks = []
    for name, values in groups.items():
        result = _shapiro(values)
        if result is None:
            checks.append(
                Assumption(
                    name=f"normality ({name})",
                    passed=None,
                    detail=f"Group '{name}' has too few distinct values to test normality.",
                )
            )
            continue
        w, p = result
        checks.append(
            Assumption(
                name=f"normality ({name})",
                passed=p >= alpha,
                detail=f"Shapiro-Wilk in group '{name}' (n = {len(values)}): W = {w:.4f}, "
                f"{_fmt_p(p)}.",
            )
        )
    return checks


def _shapiro(values: np.ndarray) -> tuple[float, float] | None:
    """(W, p), or None when the values are too few or all alike."""
    import warnings

    import numpy as np
    from scipy import stats

    if len(values) < 3 or float(np.ptp(values)) == 0.0:
        return None
    with warnings.catch_warnings():
        # Above 5000 values scipy warns that the p-value may be inaccurate.
        warnings.simplefilter("ignore", UserWarning)
        result = stats.shapiro(values)
    w, p = _num(result.statistic), _num(result.pvalue)
    return None if w is None or p is None else (w, p)


def _equal_variances(groups: dict[str, np.ndarray], alpha: float) -> Assumption:
    from scipy import stats

    result = stats.levene(*groups.values())
    p = _num(result.pvalue)
    if p is None:
        return Assumption(
            name="equal variances",
            passed=None,
            detail="Levene's test is undefined here (no spread within the groups).",
        )
    return Assumption(
        name="equal variances",
        passed=p >= alpha,
        detail=f"Levene (median-centred): W = {float(result.statistic):.4f}, {_fmt_p(p)}.",
    )


def _failed(checks: list[Assumption], prefix: str) -> list[Assumption]:
    return [check for check in checks if check.name.startswith(prefix) and check.passed is False]


def _unknown(checks: list[Assumption], prefix: str) -> list[Assumption]:
    return [check for check in checks if check.name.startswith(prefix) and check.passed is None]


def _recommend(name: str, checks: list[Assumption]) -> str | None:
    """The test to use instead of ``name`` when one of its checks fails."""
    not_normal = _failed(checks, "normality")
    unequal = _failed(checks, "equal variances")
    if name in ("t", "welch") and not_normal:
        return "use mann_whitney: a group does not look normal"
    if name == "t" and unequal:
        return "use welch: the group variances differ"
    if name == "anova" and not_normal:
        return "use kruskal: a group does not look normal"
    if name == "anova" and unequal:
        return "use kruskal (or Welch's ANOVA): the group variances differ"
    if name == "chi2" and checks and checks[0].passed is False:
        return "use Fisher's exact test or merge sparse categories: expected counts are small"
    return None


def _auto(groups: dict[str, np.ndarray], checks: list[Assumption]) -> tuple[str, str]:
    """The group test the assumption checks point to, and why."""
    not_normal = _failed(checks, "normality")
    unknown = _unknown(checks, "normality")
    unequal = _failed(checks, "equal variances")
    two = len(groups) == 2
    if not_normal or unknown:
        check = (not_normal or unknown)[0]
        why = (
            f"{check.name} fails ({check.detail})"
            if not_normal
            else f"{check.name} cannot be checked"
        )
        choice = "mann_whitney" if two else "kruskal"
        return choice, f"{why}: a rank test ({_TITLES[choice]}) does not assume it."
    if two:
        if unequal:
            return "welch", (
                f"Both groups look normal but their variances differ ({unequal[0].detail}): "
                "Welch's t-test does not assume equal variances."
            )
        return "t", "Both groups look normal and their variances are alike: Student's t-test."
    if unequal:
        return "kruskal", (
            f"The groups look normal but their variances differ ({unequal[0].detail}): "
            "the Kruskal-Wallis test."
        )
    return "anova", "Every group looks normal and their variances are alike: one-way ANOVA."


# ----------------------------------------------------------------------------- tests


def _two_group_test(
    name: str, a: np.ndarray, b: np.ndarray
) -> tuple[Any, float | None, str, list[float]]:
    """(scipy result, effect size, effect size name, df) of a two-group test."""
    import numpy as np
    from scipy import stats

    diff = float(np.mean(a) - np.mean(b))
    var_a, var_b = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    if name == "mann_whitney":
        result = stats.mannwhitneyu(a, b, alternative="two-sided")
        rank_biserial = 2.0 * float(result.statistic) / (len(a) * len(b)) - 1.0
        return result, rank_biserial, "rank_biserial", []
    equal = name == "t"
    result = stats.ttest_ind(a, b, equal_var=equal)
    if equal:
        pooled = ((len(a) - 1) * var_a + (len(b) - 1) * var_b) / (len(a) + len(b) - 2)
        spread, effect_name = math.sqrt(pooled), "cohen_d"
    else:
        spread, effect_name = math.sqrt((var_a + var_b) / 2.0), "cohen_d_av"
    effect = diff / spread if spread > 0 else None
    return result, effect, effect_name, [float(result.df)]


def _many_group_test(
    name: str, groups: list[np.ndarray]
) -> tuple[Any, float | None, str, list[float]]:
    import numpy as np
    from scipy import stats

    everything = np.concatenate(groups)
    n, k = len(everything), len(groups)
    if name == "anova":
        result = stats.f_oneway(*groups)
        grand = float(np.mean(everything))
        between = sum(len(g) * (float(np.mean(g)) - grand) ** 2 for g in groups)
        total = float(np.sum((everything - grand) ** 2))
        effect = between / total if total > 0 else None
        return result, effect, "eta_squared", [float(k - 1), float(n - k)]
    result = stats.kruskal(*groups)
    effect = _num(result.statistic)
    return (
        result,
        (effect / (n - 1) if effect is not None else None),
        "epsilon_squared",
        [float(k - 1)],
    )


def _group_test(
    name: str, groups: dict[str, np.ndarray], params: StatisticalParams, reason: str | None
) -> HypothesisTest:
    if name in _TWO_GROUP_TESTS and len(groups) != 2:
        raise InvalidRequestError(
            f"The {_TITLES[name]} compares two groups; '{params.group}' has {len(groups)}. "
            "Use anova or kruskal.",
            param="params.group",
            code="wrong_group_count",
        )
    checks = _normality(groups, params.alpha) if name in ("t", "welch", "anova") else []
    if name in ("t", "anova"):
        checks.append(_equal_variances(groups, params.alpha))
    arrays = list(groups.values())
    if name in _TWO_GROUP_TESTS:
        result, effect, effect_name, df = _two_group_test(name, arrays[0], arrays[1])
    else:
        result, effect, effect_name, df = _many_group_test(name, arrays)
    p = _num(result.pvalue)
    return HypothesisTest(
        name=name,
        title=f"{_TITLES[name]} of {params.value} by {params.group}",
        statistic=_num(result.statistic),
        p_value=p,
        significant=None if p is None else p < params.alpha,
        df=df,
        effect_size=_num(effect),
        effect_size_name=effect_name,
        groups=_summaries(groups),
        assumptions=checks,
        recommendation=_recommend(name, checks),
        reason=reason,
    )


def _chi2(frame: pd.DataFrame, params: StatisticalParams) -> HypothesisTest:
    import pandas as pd
    from scipy import stats

    assert params.value is not None
    assert params.group is not None
    rows = columns.categorical(frame, params.group, "group")
    cols = columns.categorical(frame, params.value, "value")
    keep = rows.notna() & cols.notna()
    table = pd.crosstab(rows[keep], cols[keep])
    result = stats.chi2_contingency(table.to_numpy())
    expected = result.expected_freq
    small = float((expected < 5).mean())
    passed = bool(small <= 0.2 and expected.min() >= 1)
    check = Assumption(
        name="expected counts",
        passed=passed,
        detail=f"{small:.0%} of the {expected.size} cells expect fewer than 5 rows; the "
        f"smallest expects {float(expected.min()):.2f} (rule: at most 20% below 5, none below 1).",
    )
    effect = stats.contingency.association(table.to_numpy(), method="cramer")
    p = _num(result.pvalue)
    return HypothesisTest(
        name="chi2",
        title=f"{_TITLES['chi2']} of {params.group} by {params.value}"
        + (" (Yates-corrected)" if table.shape == (2, 2) else ""),
        statistic=_num(result.statistic),
        p_value=p,
        significant=None if p is None else p < params.alpha,
        df=[float(result.dof)],
        effect_size=_num(effect),
        effect_size_name="cramers_v",
        groups=[],
        assumptions=[check],
        recommendation=_recommend("chi2", [check]),
    )


def _shapiro_test(values: np.ndarray, what: str, alpha: float) -> HypothesisTest:
    result = _shapiro(values)
    w, p = result if result is not None else (None, None)
    detail = f"{len(values)} values"
    if result is None:
        detail += ": too few, or all alike, to test"
    elif len(values) > 5000:
        detail += "; above 5000 values the p-value is approximate"
    return HypothesisTest(
        name="shapiro",
        title=f"{_TITLES['shapiro']} of {what}",
        statistic=w,
        p_value=p,
        significant=None if p is None else p < alpha,
        df=[],
        effect_size=None,
        effect_size_name=None,
        groups=[],
        assumptions=[
            Assumption(name="sample size", passed=result is not None, detail=detail + ".")
        ],
    )


def _shapiro_tests(
    frame: pd.DataFrame, numeric: pd.DataFrame, params: StatisticalParams
) -> list[HypothesisTest]:
    if params.value is not None and params.group is not None:
        groups = _groups(frame, params)
        return [
            _shapiro_test(values, f"{params.value} in {params.group} = {name}", params.alpha)
            for name, values in groups.items()
        ]
    if params.value is not None:
        values = columns.numeric(frame, params.value, "value").dropna().to_numpy(dtype=float)
        return [_shapiro_test(values, params.value, params.alpha)]
    return [
        _shapiro_test(numeric[name].dropna().to_numpy(dtype=float), str(name), params.alpha)
        for name in numeric.columns
    ]


def _require(params: StatisticalParams, *fields: str) -> None:
    for name in fields:
        if getattr(params, name) is None:
            raise InvalidRequestError(
                f"The {params.test} test needs params.{name}.",
                param=f"params.{name}",
                code="missing_param",
            )


def _tests(
    frame: pd.DataFrame, numeric: pd.DataFrame, params: StatisticalParams
) -> list[HypothesisTest]:
    if params.test is None:
        return []
    if params.test == "shapiro":
        return _shapiro_tests(frame, numeric, params)
    _require(params, "value", "group")
    if params.test == "chi2":
        return [_chi2(frame, params)]
    groups = _groups(frame, params)
    if params.test == "auto":
        checks = [*_normality(groups, params.alpha), _equal_variances(groups, params.alpha)]
        name, reason = _auto(groups, checks)
        return [_group_test(name, groups, params, reason)]
    return [_group_test(params.test, groups, params, None)]


# ----------------------------------------------------------------------------- output


def _sample(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= CHART_VALUES else frame.sample(CHART_VALUES, random_state=seed)


def _box_chart(frame: pd.DataFrame, params: StatisticalParams, seed: int) -> dict[str, Any]:
    assert params.value is not None
    assert params.group is not None
    data = frame[[params.group, params.value]].dropna()
    data = _sample(data, seed)
    order = _group_order(data[params.group])
    return charts.chart(
        (
            {"group": str(g), "value": v}
            for g, v in zip(data[params.group], data[params.value], strict=True)
        ),
        "boxplot",
        {
            "x": charts.field("group", "nominal", title=params.group, sort=order),
            "y": charts.field("value", "quantitative", title=params.value),
        },
        title=f"{params.value} by {params.group}",
    )


def _columns_box_chart(numeric: pd.DataFrame, seed: int) -> dict[str, Any]:
    data = _sample(numeric, seed)
    values = (
        {"column": str(name), "value": value}
        for name in data.columns
        for value in data[name].dropna()
    )
    return charts.chart(
        values,
        "boxplot",
        {
            "x": charts.field("column", "nominal", title="column"),
            "y": charts.field("value", "quantitative", title="value"),
        },
        title="Distribution of each column",
    )


def _heat_map(correlations: list[Correlation], names: list[str]) -> dict[str, Any]:
    cells: list[dict[str, Any]] = [{"a": name, "b": name, "r": 1.0, "p": None} for name in names]
    for item in correlations:
        for a, b in ((item.a, item.b), (item.b, item.a)):
            cells.append({"a": a, "b": b, "r": item.pearson_r, "p": item.pearson_p})
    return charts.chart(
        cells,
        "rect",
        {
            "x": charts.field("a", "nominal", title=None, sort=names),
            "y": charts.field("b", "nominal", title=None, sort=names),
            "color": charts.field(
                "r",
                "quantitative",
                title="Pearson r",
                scale={"domain": [-1, 1], "scheme": "redblue", "reverse": True},
            ),
            "tooltip": [
                charts.field("a", "nominal"),
                charts.field("b", "nominal"),
                charts.field("r", "quantitative", format=".3f"),
                charts.field("p", "quantitative", format=".3g"),
            ],
        },
        title="Correlation matrix (Pearson r)",
    )


def _charts(
    frame: pd.DataFrame,
    numeric: pd.DataFrame,
    params: StatisticalParams,
    result: StatisticalResult,
    seed: int,
) -> list[dict[str, Any]]:
    made = []
    group_test = any(test.name in _GROUP_TESTS for test in result.tests) or (
        params.test == "shapiro" and params.group is not None and params.value is not None
    )
    if group_test:
        made.append(_box_chart(frame, params, seed))
    if len(numeric.columns) >= 2:
        names = [str(name) for name in numeric.columns][:MAX_CORRELATED]
        made.append(_heat_map(result.correlations, names))
    if not made and len(numeric.columns):
        made.append(_columns_box_chart(numeric, seed))
    return made


def _test_sentence(test: HypothesisTest) -> str:
    stat = "n/a" if test.statistic is None else f"{test.statistic:.4g}"
    text = f"{test.title[0].upper()}{test.title[1:]}: statistic {stat}, {_fmt_p(test.p_value)}"
    if test.effect_size is not None:
        text += f", {test.effect_size_name} = {test.effect_size:.3f}"
    text += "."
    if test.reason:
        text += f" Chosen by the checks: {test.reason}"
    if test.recommendation:
        text += f" An assumption fails: {test.recommendation}."
    return text


def _summary(result: StatisticalResult) -> str:
    count = len(result.describe)
    parts = [
        f"Described {count} numeric column{'' if count == 1 else 's'} over {result.rows} rows."
    ]
    ranked = [item for item in result.correlations if item.pearson_r is not None]
    if ranked:
        top = max(ranked, key=lambda item: abs(item.pearson_r or 0.0))
        parts.append(
            f"Strongest correlation: {top.a} and {top.b}, Pearson r = {top.pearson_r:.3f} "
            f"({_fmt_p(top.pearson_p)}), Spearman rho = {top.spearman_rho:.3f}."
        )
    parts.extend(_test_sentence(test) for test in result.tests[:5])
    if len(result.tests) > 5:
        parts.append(f"{len(result.tests) - 5} more tests in the result.")
    return " ".join(parts)


def compute(frame: pd.DataFrame, params: StatisticalParams, run: Run) -> Outcome[StatisticalResult]:
    numeric = _chosen_columns(frame, params)
    if params.value is not None:
        columns.column(frame, params.value, "value")
    if params.group is not None:
        columns.column(frame, params.group, "group")
    run.progress(0.1, "describing columns")
    described = [_describe(numeric[name], str(name)) for name in numeric.columns]
    run.progress(0.2, "correlating columns")
    correlations = _correlations(numeric, run)
    run.progress(0.6, "testing")
    tests = _tests(frame, numeric, params)
    result = StatisticalResult(
        rows=len(frame),
        alpha=params.alpha,
        describe=described,
        correlations=correlations,
        tests=tests,
    )
    run.progress(0.9, "drawing charts")
    return Outcome(
        result=result,
        summary=_summary(result),
        charts=_charts(frame, numeric, params, result, run.seed),
    )


def _example_data() -> Records:
    """Three teams; team C scores higher; hours and score go together."""
    rng = random.Random(0)
    data: Records = []
    for i in range(60):
        team = "ABC"[i % 3]
        hours = round(rng.uniform(2.0, 10.0), 2)
        score = 50.0 + 3.0 * hours + (12.0 if team == "C" else 0.0) + rng.gauss(0.0, 4.0)
        data.append({"team": team, "hours": hours, "score": round(score, 2), "age": 20 + i % 17})
    return data


METHOD: Method[StatisticalParams, StatisticalResult] = Method(
    name="statistical",
    summary="Descriptive statistics, correlations with p-values, and hypothesis tests with "
    "effect sizes and checked assumptions.",
    params=StatisticalParams,
    result=StatisticalResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=StatisticalParams(
            columns=["score", "hours", "age"], test="auto", value="score", group="team"
        ),
    ),
    numeric_param="columns",
    min_rows=3,
)
