"""The budget_variance engine: variances, relative variances, directions and material flags
equal the hand-computed ones on a planted budget, for each way of setting thresholds and line
types; impacts add up to the effect on profit."""

from __future__ import annotations

from typing import Any

import pytest

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct

#: Two months of a budget, the months given out of order; Hosting's February is split over
#: two rows.
BUDGET: Records = [
    {"month": "2024-02", "line": "Sales", "actual": 95_000.0, "budget": 100_000.0},
    {"month": "2024-02", "line": "Hosting", "actual": 700.0, "budget": 1_000.0},
    {"month": "2024-02", "line": "Hosting", "actual": 500.0, "budget": 0.0},
    {"month": "2024-02", "line": "Payroll", "actual": 50_000.0, "budget": 50_000.0},
    {"month": "2024-02", "line": "Grants", "actual": 2_000.0, "budget": 0.0},
    {"month": "2024-01", "line": "Sales", "actual": 104_000.0, "budget": 100_000.0},
    {"month": "2024-01", "line": "Hosting", "actual": 880.0, "budget": 1_000.0},
    {"month": "2024-01", "line": "Payroll", "actual": 56_000.0, "budget": 50_000.0},
    {"month": "2024-01", "line": "Grants", "actual": 0.0, "budget": 0.0},
]
TYPES = {"Sales": "revenue", "Grants": "revenue"}
PARAMS: dict[str, Any] = {
    "category": "line",
    "actual": "actual",
    "budget": "budget",
    "period": "month",
    "line_types": TYPES,
    "default_line_type": "cost",
}


def _by_hand(threshold_abs: float | None, threshold_rel: float | None, both: bool) -> list[Any]:
    """(category, period, variance, relative, direction, impact, material) per line."""
    lines = [
        ("Sales", "2024-01", 104_000.0, 100_000.0, 1),
        ("Sales", "2024-02", 95_000.0, 100_000.0, 1),
        ("Hosting", "2024-01", 880.0, 1_000.0, -1),
        ("Hosting", "2024-02", 700.0 + 500.0, 1_000.0 + 0.0, -1),
        ("Payroll", "2024-01", 56_000.0, 50_000.0, -1),
        ("Payroll", "2024-02", 50_000.0, 50_000.0, -1),
        ("Grants", "2024-01", 0.0, 0.0, 1),
        ("Grants", "2024-02", 2_000.0, 0.0, 1),
    ]
    made = []
    for category, period, actual, budget, sign in lines:
        variance = actual - budget
        relative = variance / abs(budget) if budget else None
        impact = sign * variance
        direction = "on_budget" if variance == 0 else "favourable" if impact > 0 else "unfavourable"
        tests = []
        if threshold_abs is not None:
            tests.append(abs(variance) >= threshold_abs)
        if threshold_rel is not None:
            tests.append(relative is None or abs(relative) >= threshold_rel)
        material = variance != 0 and bool(tests) and (all(tests) if both else any(tests))
        made.append((category, period, variance, relative, direction, impact, material))
    return made


def _got(lines: list[Any]) -> list[Any]:
    return [
        (
            line.category,
            line.period,
            line.variance,
            line.relative_variance,
            line.direction,
            line.impact,
            line.material,
        )
        for line in lines
    ]


@pytest.mark.parametrize(
    ("threshold_abs", "threshold_rel", "materiality"),
    [
        (None, 0.1, "either"),
        (1_000.0, None, "either"),
        (1_000.0, 0.1, "either"),
        (1_000.0, 0.1, "both"),
        (None, None, "either"),
    ],
)
def test_variances_and_flags_equal_the_hand_computed_ones(
    threshold_abs: float | None, threshold_rel: float | None, materiality: str
) -> None:
    params = {
        **PARAMS,
        "threshold_abs": threshold_abs,
        "threshold_rel": threshold_rel,
        "materiality": materiality,
    }
    direct = run_direct("budget_variance", BUDGET, params)
    result = direct.result
    expected = _by_hand(threshold_abs, threshold_rel, materiality == "both")
    assert _got(result.lines) == expected
    assert result.material_count == sum(line[-1] for line in expected)
    assert [line.line_type for line in result.lines[:4]] == ["revenue"] * 2 + ["cost"] * 2
    if threshold_abs is None and threshold_rel is None:
        assert result.material_count == 0
        assert any("no variance is material" in warning for warning in direct.warnings)


def test_the_flags_that_differ_between_the_threshold_rules() -> None:
    """Hosting in January is 12% under budget but only 120 in money; Payroll in January is
    6,000 over but only 12%: the rules disagree exactly there."""
    flags: dict[str, dict[tuple[str, str], bool]] = {}
    for name, extra in {
        "relative": {"threshold_rel": 0.15},
        "absolute": {"threshold_abs": 5_000.0, "threshold_rel": None},
        "either": {"threshold_abs": 5_000.0, "threshold_rel": 0.15},
        "both": {"threshold_abs": 5_000.0, "threshold_rel": 0.1, "materiality": "both"},
    }.items():
        result = run_direct("budget_variance", BUDGET, {**PARAMS, **extra}).result
        flags[name] = {(line.category, line.period): line.material for line in result.lines}
    hosting, payroll = ("Hosting", "2024-01"), ("Payroll", "2024-01")
    assert (flags["relative"][hosting], flags["relative"][payroll]) == (False, False)
    assert (flags["absolute"][hosting], flags["absolute"][payroll]) == (False, True)
    assert (flags["either"][hosting], flags["either"][payroll]) == (False, True)
    assert (flags["both"][hosting], flags["both"][payroll]) == (False, True)
    # Grants in February: 2,000 against a zero budget is infinitely large relatively.
    assert flags["relative"][("Grants", "2024-02")] is True
    assert flags["both"][("Grants", "2024-02")] is False


def test_impacts_add_up_per_period_per_category_and_in_all() -> None:
    result = run_direct("budget_variance", BUDGET, PARAMS).result
    assert [period.period for period in result.periods] == ["2024-01", "2024-02"]
    january = result.periods[0]
    assert january.revenue_variance == 4_000.0 + 0.0
    assert january.cost_variance == -120.0 + 6_000.0
    assert january.impact == pytest.approx(4_000.0 - 5_880.0)
    impacts = [line.impact for line in result.lines]
    assert result.total_impact == pytest.approx(sum(impacts))
    assert result.favourable_total == pytest.approx(sum(i for i in impacts if i > 0))
    assert result.unfavourable_total == pytest.approx(-sum(i for i in impacts if i < 0))
    assert result.total_impact == pytest.approx(sum(period.impact for period in result.periods))
    sales, hosting = result.categories[0], result.categories[1]
    assert (sales.category, sales.actual, sales.budget) == ("Sales", 199_000.0, 200_000.0)
    assert (sales.variance, sales.relative_variance) == (-1_000.0, -1_000.0 / 200_000.0)
    assert (sales.direction, sales.period) == ("unfavourable", None)
    assert (hosting.actual, hosting.budget, hosting.direction) == (2_080.0, 2_000.0, "unfavourable")


def test_line_types_come_from_a_column_of_words_or_are_refused() -> None:
    kinds = {"Sales": " Income", "Grants": "SALES", "Hosting": "expense", "Payroll": "Costs"}
    typed = [{**row, "kind": kinds[str(row["line"])]} for row in BUDGET]
    by_column = run_direct(
        "budget_variance",
        typed,
        {key: value for key, value in PARAMS.items() if key not in ("line_types",)}
        | {"line_type": "kind", "default_line_type": None},
    )
    assert by_column.result == run_direct("budget_variance", BUDGET, PARAMS).result

    untyped = {**PARAMS, "default_line_type": None}
    with pytest.raises(InvalidRequestError) as missing:
        run_direct("budget_variance", BUDGET, untyped)
    assert (missing.value.code, missing.value.param) == ("missing_line_type", "params.line_types")
    assert "'Hosting'" in missing.value.message

    odd = [{**row, "kind": "capex" if row["line"] == "Hosting" else "cost"} for row in BUDGET]
    with pytest.raises(InvalidRequestError) as unknown:
        run_direct("budget_variance", odd, {**PARAMS, "line_type": "kind"})
    assert (unknown.value.code, unknown.value.param) == ("unknown_line_type", "params.line_type")
    assert "'capex' at row 1" in unknown.value.message

    both = [
        {**row, "kind": "revenue" if index == 1 else "cost"} for index, row in enumerate(BUDGET)
    ]
    with pytest.raises(InvalidRequestError) as conflicting:
        run_direct("budget_variance", both, {**PARAMS, "line_type": "kind"})
    assert conflicting.value.code == "conflicting_line_type"


def test_one_period_and_periods_that_are_not_times() -> None:
    single = run_direct(
        "budget_variance", BUDGET, {**PARAMS, "period": None, "threshold_rel": 0.02}
    ).result
    assert single.periods == []
    assert [(line.category, line.period) for line in single.lines] == [
        ("Sales", None),
        ("Hosting", None),
        ("Payroll", None),
        ("Grants", None),
    ]
    assert [line.variance for line in single.lines] == [line.variance for line in single.categories]
    quarters = [{**row, "month": "Q2" if row["month"] == "2024-01" else "Q1"} for row in BUDGET]
    named = run_direct("budget_variance", quarters, PARAMS).result
    # Labels that are not times keep the order they first appear in.
    assert [period.period for period in named.periods] == ["Q1", "Q2"]


def test_the_example_answers_with_valid_charts_the_same_each_time() -> None:
    method = METHODS["budget_variance"]
    first = run_direct("budget_variance", method.example.data, method.example.params, seed=1)
    again = run_direct("budget_variance", method.example.data, method.example.params, seed=2)
    assert first.result == again.result
    assert first.summary == again.summary
    flagged = {line.category for line in first.result.categories if line.material}
    # The example's hosting runs about 25% over and its travel about 40% under.
    assert flagged == {"Cloud hosting", "Travel"}
    directions = {line.category: line.direction for line in first.result.categories}
    assert (directions["Cloud hosting"], directions["Travel"]) == ("unfavourable", "favourable")
    assert_valid_charts(first.charts)
    assert len(first.charts) == 2
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] >= 0.9


def test_a_text_budget_is_a_400_naming_it() -> None:
    rows = [{**row, "budget": "tbd"} for row in BUDGET]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("budget_variance", rows, PARAMS)
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.budget")
    assert "'budget'" in refused.value.message
