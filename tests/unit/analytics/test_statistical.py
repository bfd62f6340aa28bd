"""The statistical engine: p-values equal scipy's on the same data, effect sizes agree with
independent computations, "auto" picks the test the assumption checks point to, and a failed
assumption comes with a recommendation."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest
from scipy import stats

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

TOLERANCE = 1e-12


def _groups_data(groups: dict[str, np.ndarray]) -> Records:
    return [
        {"group": name, "value": float(value)}
        for name, values in groups.items()
        for value in values
    ]


def _normal_groups(spreads: tuple[float, ...], shift: float = 0.8, n: int = 60) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    return {
        f"g{i}": rng.normal(shift * i, spread, size=n + 5 * i) for i, spread in enumerate(spreads)
    }


def _skewed_groups(count: int) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    return {f"g{i}": rng.exponential(1.0 + 0.5 * i, size=80) for i in range(count)}


def _one_test(groups: dict[str, np.ndarray], test: str) -> Any:
    direct = run_direct(
        "statistical", _groups_data(groups), {"test": test, "value": "value", "group": "group"}
    )
    assert len(direct.result.tests) == 1
    return direct.result.tests[0]


SCIPY_P = {
    "t": lambda g: stats.ttest_ind(*g, equal_var=True).pvalue,
    "welch": lambda g: stats.ttest_ind(*g, equal_var=False).pvalue,
    "mann_whitney": lambda g: stats.mannwhitneyu(*g, alternative="two-sided").pvalue,
    "anova": lambda g: stats.f_oneway(*g).pvalue,
    "kruskal": lambda g: stats.kruskal(*g).pvalue,
}


@pytest.mark.parametrize(
    ("test", "count"),
    [("t", 2), ("welch", 2), ("mann_whitney", 2), ("anova", 3), ("kruskal", 4)],
)
def test_group_test_p_values_equal_scipys(test: str, count: int) -> None:
    groups = _normal_groups((1.0, 2.0, 1.5, 1.0)[:count], shift=0.4)
    found = _one_test(groups, test)
    expected = SCIPY_P[test](list(groups.values()))
    assert found.name == test
    assert found.p_value == pytest.approx(expected, rel=TOLERANCE, abs=TOLERANCE)
    assert [group.n for group in found.groups] == [len(values) for values in groups.values()]


def test_chi2_and_cramers_v_equal_scipys() -> None:
    rng = np.random.default_rng(3)
    colour = rng.choice(["red", "green", "blue"], size=400)
    # size depends on colour: "blue" rows are mostly "large"
    large = rng.random(400) < np.where(colour == "blue", 0.7, 0.35)
    size = np.where(large, "large", np.where(rng.random(400) < 0.5, "small", "medium"))
    data: Records = [{"colour": str(c), "size": str(s)} for c, s in zip(colour, size, strict=True)]
    found = run_direct(
        "statistical", data, {"test": "chi2", "group": "colour", "value": "size"}
    ).result.tests[0]
    import pandas as pd

    table = pd.crosstab(pd.Series(colour), pd.Series(size)).to_numpy()
    expected = stats.chi2_contingency(table)
    assert found.p_value == pytest.approx(expected.pvalue, rel=TOLERANCE, abs=TOLERANCE)
    assert found.statistic == pytest.approx(expected.statistic, rel=TOLERANCE)
    assert found.df == [float(expected.dof)]
    assert found.effect_size_name == "cramers_v"
    chi2 = stats.chi2_contingency(table, correction=False).statistic
    assert found.effect_size == pytest.approx(math.sqrt(chi2 / (400 * 2)), rel=1e-9)
    assert found.significant is True
    assert found.assumptions[0].passed is True


def test_chi2_with_sparse_cells_recommends_an_exact_test() -> None:
    data: Records = [{"a": "x" if i < 12 else "y", "b": "p" if i % 6 else "q"} for i in range(14)]
    found = run_direct("statistical", data, {"test": "chi2", "group": "a", "value": "b"})
    test = found.result.tests[0]
    assert test.assumptions[0].passed is False
    assert test.recommendation is not None
    assert "Fisher" in test.recommendation


def test_shapiro_and_correlations_equal_scipys() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=150)
    y = 0.6 * x + rng.normal(scale=0.8, size=150)
    z = np.exp(rng.normal(size=150))
    data: Records = [
        {"x": float(a), "y": None if i % 10 == 0 else float(b), "z": float(c)}
        for i, (a, b, c) in enumerate(zip(x, y, z, strict=True))
    ]
    result = run_direct("statistical", data, {"test": "shapiro"}).result
    by_name = {test.title.rsplit(" ", 1)[-1]: test for test in result.tests}
    present_y = np.array([row["y"] for row in data if row["y"] is not None], dtype=float)
    for name, values in (("x", x), ("y", present_y), ("z", z)):
        assert by_name[name].p_value == pytest.approx(
            stats.shapiro(values).pvalue, rel=TOLERANCE, abs=TOLERANCE
        )
    assert by_name["z"].significant is True  # log-normal: not normal
    keep = np.array([row["y"] is not None for row in data])
    pairs = {(item.a, item.b): item for item in result.correlations}
    assert set(pairs) == {("x", "y"), ("x", "z"), ("y", "z")}
    xy = pairs[("x", "y")]
    assert xy.n == int(keep.sum())
    assert xy.pearson_r == pytest.approx(stats.pearsonr(x[keep], y[keep]).statistic, abs=1e-12)
    assert xy.pearson_p == pytest.approx(stats.pearsonr(x[keep], y[keep]).pvalue, rel=TOLERANCE)
    assert xy.spearman_p == pytest.approx(stats.spearmanr(x[keep], y[keep]).pvalue, rel=TOLERANCE)
    xz = pairs[("x", "z")]
    assert xz.spearman_rho == pytest.approx(stats.spearmanr(x, z).statistic, abs=1e-12)
    assert xz.pearson_p == pytest.approx(stats.pearsonr(x, z).pvalue, rel=TOLERANCE)


def test_describe_matches_numpy_and_counts_missing() -> None:
    values = [3.0, 1.0, None, 4.0, 1.0, 5.0, 9.0, None, 2.0, 6.0]
    data: Records = [{"v": v, "w": i} for i, v in enumerate(values)]
    result = run_direct("statistical", data, {"columns": ["v"]}).result
    (row,) = result.describe
    present = np.array([v for v in values if v is not None])
    assert (row.column, row.count, row.missing) == ("v", 8, 2)
    assert row.mean == pytest.approx(present.mean())
    assert row.std == pytest.approx(present.std(ddof=1))
    assert (row.min, row.max, row.median) == (1.0, 9.0, pytest.approx(np.median(present)))
    assert row.q1 == pytest.approx(np.quantile(present, 0.25))
    assert row.q3 == pytest.approx(np.quantile(present, 0.75))
    assert row.skew == pytest.approx(stats.skew(present, bias=False))
    assert row.kurtosis == pytest.approx(stats.kurtosis(present, bias=False))
    assert result.correlations == []
    assert result.tests == []


def test_effect_sizes_agree_with_independent_computations() -> None:
    import pandas as pd
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    groups = _normal_groups((1.0, 1.0, 1.0), shift=1.0, n=300)
    anova = _one_test(groups, "anova")
    frame = pd.DataFrame(_groups_data(groups))
    table = sm.stats.anova_lm(ols("value ~ C(group)", data=frame).fit())
    eta = table.loc["C(group)", "sum_sq"] / table["sum_sq"].sum()
    assert anova.effect_size == pytest.approx(eta, rel=1e-9)
    assert anova.df == [2.0, float(len(frame) - 3)]

    pair = {name: groups[name] for name in ("g0", "g1")}
    cohen = _one_test(pair, "t")
    assert cohen.effect_size_name == "cohen_d"
    assert cohen.effect_size == pytest.approx(-1.0, abs=0.15)  # planted: one SD, g0 below g1

    separated = {"a": np.arange(10.0) + 100.0, "b": np.arange(10.0)}
    ranks = _one_test(separated, "mann_whitney")
    assert (ranks.effect_size_name, ranks.effect_size) == ("rank_biserial", 1.0)


@pytest.mark.parametrize(
    ("groups", "expected", "reason_words"),
    [
        (_normal_groups((1.0, 1.0)), "t", "alike"),
        (_normal_groups((1.0, 3.0)), "welch", "variances differ"),
        (_skewed_groups(2), "mann_whitney", "normality"),
        (_normal_groups((1.0, 1.0, 1.0)), "anova", "alike"),
        (_skewed_groups(3), "kruskal", "normality"),
    ],
)
def test_auto_picks_the_test_the_checks_point_to(
    groups: dict[str, Any], expected: str, reason_words: str
) -> None:
    found = _one_test(groups, "auto")
    assert found.name == expected
    assert found.reason is not None
    assert reason_words in found.reason
    assert found.p_value == pytest.approx(
        SCIPY_P[expected](list(groups.values())), rel=TOLERANCE, abs=TOLERANCE
    )
    assert found.recommendation is None


def test_a_failed_assumption_names_the_test_to_use() -> None:
    unequal = _one_test(_normal_groups((1.0, 3.0)), "t")
    assert [check.passed for check in unequal.assumptions] == [True, True, False]
    assert unequal.recommendation is not None
    assert unequal.recommendation.startswith("use welch")

    skewed = _one_test(_skewed_groups(2), "welch")
    assert any(check.passed is False for check in skewed.assumptions)
    assert skewed.recommendation is not None
    assert skewed.recommendation.startswith("use mann_whitney")

    anova = _one_test(_skewed_groups(3), "anova")
    assert anova.recommendation is not None
    assert anova.recommendation.startswith("use kruskal")


def test_the_example_answers_with_valid_charts() -> None:
    method = METHODS["statistical"]
    direct = run_direct("statistical", method.example.data, method.example.params)
    result = direct.result
    assert [row.column for row in result.describe] == ["score", "hours", "age"]
    assert len(result.correlations) == 3
    (test,) = result.tests
    assert test.name == "anova"
    assert test.significant is True
    assert "score" in direct.summary
    assert_valid_charts(direct.charts)
    assert [chart["mark"] for chart in direct.charts] == ["boxplot", "rect"]
    assert len(direct.charts[1]["data"]["values"]) == 9


def test_same_seed_same_answer_and_progress_rises() -> None:
    method = METHODS["statistical"]
    first = run_direct("statistical", method.example.data, method.example.params, seed=4)
    again = run_direct("statistical", method.example.data, method.example.params, seed=4)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    assert first.charts == again.charts
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] > 0.5


def test_default_columns_are_every_numeric_column_but_the_group() -> None:
    data: Records = [
        {"a": float(i), "b": float(i % 7), "label": "xy"[i % 2], "g": i % 2} for i in range(20)
    ]
    result = run_direct("statistical", data, {"test": "t", "value": "a", "group": "g"}).result
    assert [row.column for row in result.describe] == ["a", "b"]
    assert [group.group for group in result.tests[0].groups] == ["0", "1"]


def test_a_two_group_test_on_three_groups_is_a_400() -> None:
    data = _groups_data(_normal_groups((1.0, 1.0, 1.0)))
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("statistical", data, {"test": "t", "value": "value", "group": "group"})
    assert refused.value.code == "wrong_group_count"
    assert refused.value.param == "params.group"
    assert "anova" in refused.value.message


def test_a_text_value_for_a_group_test_is_a_400() -> None:
    data: Records = [{"value": "xy"[i % 2], "group": "ab"[i % 2 == 0], "n": i} for i in range(20)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("statistical", data, {"test": "welch", "value": "value", "group": "group"})
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.value")
    assert "'value'" in refused.value.message


def test_a_group_with_one_value_or_a_missing_role_is_a_400() -> None:
    data: Records = [{"value": float(i), "group": "a" if i else "b"} for i in range(10)]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("statistical", data, {"test": "t", "value": "value", "group": "group"})
    assert (refused.value.code, refused.value.param) == ("group_too_small", "params.group")
    assert "'b'" in refused.value.message
    with pytest.raises(InvalidRequestError) as missing:
        run_direct("statistical", data, {"test": "anova", "value": "value"})
    assert (missing.value.code, missing.value.param) == ("missing_param", "params.group")
