"""mirror: synthetic rows that keep marginals and correlations, and never copy a real row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aiplatform.engines.analytics.methods.mirror import METHOD
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct


def _correlated(count: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """a, b, c with correlations 0.8 (a, b), -0.5 (a, c) and -0.3 (b, c) between their normal
    scores; b is skewed (log-normal), c whole numbers; segment follows a."""
    rng = np.random.default_rng(seed)
    matrix = np.array([[1, 0.8, -0.5], [0.8, 1, -0.3], [-0.5, -0.3, 1]])
    z = rng.multivariate_normal(np.zeros(3), matrix, size=count)
    a = 5 + 2 * z[:, 0]
    b = np.exp(z[:, 1])
    c = np.round(20 + 3 * z[:, 2])
    noisy = a + rng.normal(0, 0.5, count)
    segment = np.where(noisy > 6, "high", np.where(noisy < 4, "low", "mid"))
    return [
        {"a": float(a[i]), "b": float(b[i]), "c": int(c[i]), "segment": str(segment[i])}
        for i in range(count)
    ]


def test_correlations_marginals_and_categories_are_kept() -> None:
    records = _correlated()
    direct = run_direct("mirror", records, {"rows": 2000})
    result = direct.result
    real = pd.DataFrame(records)
    synthetic = pd.DataFrame(result.rows)
    assert len(synthetic) == 2000
    assert list(synthetic.columns) == ["a", "b", "c", "segment"]
    gap = (real[["a", "b", "c"]].corr() - synthetic[["a", "b", "c"]].corr()).abs().to_numpy()
    assert gap.max() < 0.1
    assert result.fidelity.correlation_difference == pytest.approx(gap.max())
    for name in ("a", "b", "c"):
        assert stats.ks_2samp(real[name], synthetic[name]).pvalue > 0.01
    by_column = {column.column: column for column in result.fidelity.columns}
    assert all(by_column[name].ks_statistic < 0.05 for name in ("a", "b", "c"))
    assert by_column["segment"].kind == "categorical"
    assert by_column["segment"].tvd < 0.05
    # whole numbers stay whole
    assert all(isinstance(value, int) for value in synthetic["c"])
    # the segment still follows a
    means = synthetic.groupby("segment")["a"].mean()
    assert means["low"] < means["mid"] < means["high"]
    real_means = real.groupby("segment")["a"].mean()
    assert (means - real_means).abs().max() < 0.5
    # nothing copied: checked here independently of the engine's own count
    real_rows = set(map(tuple, real.to_numpy().tolist()))
    assert not any(tuple(row) in real_rows for row in synthetic.to_numpy().tolist())
    assert result.copies == 0
    assert result.min_distance > 0


def test_data_with_few_distinct_values_never_returns_a_real_row() -> None:
    """Three two-valued columns: the data hold 5 of the 8 combinations, so most synthetic rows
    copy one; they are drawn again, and those that keep copying are dropped."""
    combos = [
        ((0, "a", False), 40),
        ((1, "b", True), 40),
        ((0, "a", True), 10),
        ((1, "b", False), 10),
        ((0, "b", False), 6),
    ]
    records = [{"n": n, "t": t, "flag": f} for (n, t, f), times in combos for _ in range(times)]
    direct = run_direct("mirror", records, {"rows": 300})
    result = direct.result
    real_rows = {combo for combo, _ in combos}
    produced = {(row["n"], row["t"], row["flag"]) for row in result.rows}
    assert produced, "some rows are new combinations"
    assert not produced & real_rows
    assert all(isinstance(row["flag"], bool) for row in result.rows)
    assert result.copies == 0
    assert result.redrawn > 300 // 2
    assert result.dropped > 0
    assert len(result.rows) == 300 - result.dropped
    assert any("kept copying a real row" in warning for warning in direct.warnings)
    # one column in three differs at least
    assert result.min_distance >= 1 / 3 - 1e-9


def test_when_the_data_hold_every_combination_nothing_can_be_returned() -> None:
    records = [{"x": x, "y": y} for x in ("p", "q") for y in (0, 1) for _ in range(5)]
    with pytest.raises(UnprocessableEntityError) as caught:
        run_direct("mirror", records, {"rows": 50})
    assert caught.value.code == "no_private_rows"


def test_missing_values_are_kept_at_their_rate() -> None:
    rng = np.random.default_rng(3)
    records = []
    for i in range(1000):
        value = float(rng.normal())
        records.append(
            {
                "x": None if i % 5 == 0 else value,
                "y": value + float(rng.normal(0, 0.3)),
                "kind": None if i % 10 == 0 else ("u" if value > 0 else "v"),
            }
        )
    synthetic = pd.DataFrame(run_direct("mirror", records, {"rows": 2000}).result.rows)
    assert synthetic["x"].isna().mean() == pytest.approx(0.2, abs=0.03)
    assert synthetic["kind"].isna().mean() == pytest.approx(0.1, abs=0.03)
    assert set(synthetic["kind"].dropna()) == {"u", "v"}


def test_identifier_columns_are_left_out_unless_named() -> None:
    rng = np.random.default_rng(4)
    records = [
        {"id": f"user-{i}", "x": float(rng.normal()), "y": float(rng.normal())} for i in range(100)
    ]
    direct = run_direct("mirror", records, {"rows": 20})
    assert set(direct.result.rows[0]) == {"x", "y"}
    assert any("'id' looks like an identifier" in warning for warning in direct.warnings)
    named = run_direct("mirror", records, {"rows": 20, "columns": ["id", "x"]})
    assert set(named.result.rows[0]) == {"id", "x"}
    assert any("reuse its real values" in warning for warning in named.warnings)


def test_example_answers_with_valid_charts() -> None:
    direct = run_direct("mirror", METHOD.example.data, METHOD.example.params)
    assert len(direct.result.rows) == 100
    assert direct.result.copies == 0
    assert len(direct.charts) == 3
    assert_valid_charts(direct.charts)
    assert "100 synthetic rows from 120 real ones" in direct.summary


def test_same_seed_same_rows_and_rising_progress() -> None:
    records = _correlated(count=300, seed=1)
    first = run_direct("mirror", records, {"rows": 200}, seed=9)
    second = run_direct("mirror", records, {"rows": 200}, seed=9)
    other = run_direct("mirror", records, {"rows": 200}, seed=10)
    assert first.result == second.result
    assert first.result.rows != other.result.rows
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert len(fractions) >= 5


def test_an_all_missing_column_is_refused() -> None:
    records = [{"x": float(i), "empty": None} for i in range(20)]
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("mirror", records, {"columns": ["x", "empty"]})
    assert caught.value.code == "all_missing"
    assert caught.value.param == "params.columns"
    assert "'empty'" in caught.value.message


#: Computes mirror on two categorical columns (15 and 7 categories), whose sets of categories a
#: hash seed orders.
_HASH_SEED_RUN = """
import random, msgspec
from tests.analytics import run_direct
rng = random.Random(0)
data = [
    {
        "x": rng.gauss(0, 1),
        "c": f"k{rng.randrange(15)}",
        "d": rng.choice("pqrstuv"),
    }
    for _ in range(300)
]
direct = run_direct("mirror", data, {"rows": 500}, seed=3)
print(msgspec.json.encode([direct.result, direct.summary, direct.charts]).decode())
"""


def _with_hash_seed(seed: str) -> str:
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _HASH_SEED_RUN],
        cwd=root,
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_the_same_seed_answers_the_same_in_processes_with_other_hash_seeds() -> None:
    """Python's string hashes (and so set order) change between processes; the result, down to
    the last bit of every distance, does not."""
    first, second = _with_hash_seed("0"), _with_hash_seed("4")
    assert '"tvd":0.' in first
    assert first == second


@pytest.mark.parametrize(
    ("value", "code"), [(float("inf"), "not_finite"), (-1e305, "value_too_large")]
)
def test_an_infinite_or_huge_number_is_refused_naming_the_column(value: float, code: str) -> None:
    records = [dict(row) for row in METHOD.example.data]
    records[7]["spend"] = value
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("mirror", records, {"rows": 50})
    assert (caught.value.code, caught.value.param) == (code, "params.columns")
    assert "'spend'" in caught.value.message
    assert "row 7" in caught.value.message
