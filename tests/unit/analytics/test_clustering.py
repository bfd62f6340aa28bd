"""The clustering engine: separated blobs are recovered (ARI >= 0.9) by k-means and by
HDBSCAN, k-means' silhouette picks the planted k, and profiles and projection describe them."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.errors import InvalidRequestError
from tests.analytics import assert_valid_charts, run_direct


def _records(values: np.ndarray) -> Records:
    return [{f"x{j}": float(v) for j, v in enumerate(row)} for row in values]


BLOBS = [
    # (centres, features, rows, make_blobs seed)
    (4, 3, 600, 1),
    (3, 2, 450, 3),
    (5, 4, 750, 0),
]


@pytest.mark.parametrize("algorithm", ["kmeans", "hdbscan"])
@pytest.mark.parametrize(("centres", "features", "rows", "seed"), BLOBS)
def test_separated_blobs_are_recovered(
    algorithm: str, centres: int, features: int, rows: int, seed: int
) -> None:
    values, truth = make_blobs(
        n_samples=rows, centers=centres, n_features=features, cluster_std=0.6, random_state=seed
    )
    result = run_direct(
        "clustering", _records(values), {"algorithm": algorithm, "k_min": 2, "k_max": 8}
    ).result
    assert result.algorithm == algorithm
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    assert result.k == centres
    assert len(result.labels) == rows
    if algorithm == "kmeans":
        assert [item.k for item in result.silhouette_by_k] == list(range(2, 9))
        best = max(result.silhouette_by_k, key=lambda item: item.silhouette or -1.0)
        assert best.k == centres
        assert result.silhouette == pytest.approx(best.silhouette)
        assert result.noise == 0
    else:
        assert result.silhouette_by_k == []
        assert result.noise == sum(label == -1 for label in result.labels)
        assert result.noise <= 0.05 * rows


def test_auto_keeps_k_means_on_blobs_and_says_why() -> None:
    values, truth = make_blobs(
        n_samples=600, centers=4, n_features=3, cluster_std=0.6, random_state=1
    )
    result = run_direct("clustering", _records(values), {"algorithm": "auto", "k_max": 8}).result
    assert result.algorithm == "kmeans"
    assert result.reason is not None
    assert "HDBSCAN" in result.reason
    assert adjusted_rand_score(truth, result.labels) >= 0.9


def test_hdbscan_finds_non_convex_clusters() -> None:
    values, truth = make_moons(n_samples=400, noise=0.05, random_state=0)
    result = run_direct("clustering", _records(values), {"algorithm": "hdbscan"}).result
    assert result.k == 2
    assert adjusted_rand_score(truth, result.labels) >= 0.9


def test_profiles_and_projection_describe_the_clusters() -> None:
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    values, truth = make_blobs(
        n_samples=[150, 100, 50], centers=centres, cluster_std=0.5, random_state=4
    )
    result = run_direct("clustering", _records(values), {"algorithm": "kmeans"}).result
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert [item.cluster for item in result.profiles] == [0, 1, 2]
    assert [item.size for item in result.profiles] == [150, 100, 50]  # largest first
    assert sum(item.share for item in result.profiles) == pytest.approx(1.0)
    for profile in result.profiles:
        rows = values[np.array(result.labels) == profile.cluster]
        for j in range(3):
            assert profile.means[f"x{j}"] == pytest.approx(rows[:, j].mean())
    smallest = result.profiles[2]
    assert smallest.distinctive[0] == "x1"  # the (0, 10, 5) blob stands out in x1
    assert smallest.standardized_means["x1"] > 1.0
    assert len(result.projection) == len(values)
    assert result.explained_variance[0] >= result.explained_variance[1] > 0
    assert sum(result.explained_variance) > 0.95


def test_the_example_answers_with_valid_charts() -> None:
    method = METHODS["clustering"]
    direct = run_direct("clustering", method.example.data, method.example.params)
    result = direct.result
    assert (result.k, result.algorithm) == (3, "kmeans")
    assert sorted(item.size for item in result.profiles) == [30, 30, 30]
    assert "3 clusters" in direct.summary
    assert_valid_charts(direct.charts)
    projection, by_k = direct.charts
    assert projection["mark"] == "point"
    assert projection["encoding"]["color"]["field"] == "cluster"
    assert len(projection["data"]["values"]) == 90
    assert by_k["mark"] == "line"
    encoded = msgspec.json.decode(msgspec.json.encode(result))
    assert encoded["projection"][0] == [result.projection[0].x, result.projection[0].y]


def test_same_seed_same_answer_and_progress_rises() -> None:
    method = METHODS["clustering"]
    first = run_direct("clustering", method.example.data, method.example.params, seed=9)
    again = run_direct("clustering", method.example.data, method.example.params, seed=9)
    assert msgspec.json.encode(first.result) == msgspec.json.encode(again.result)
    assert first.charts == again.charts
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] > 0.9


def test_scale_false_clusters_in_the_data_units() -> None:
    """Unscaled, a column with a large unit decides; scaled, the informative one does."""
    rng = np.random.default_rng(0)
    group = np.repeat([0, 1], 100)
    informative = group * 5.0 + rng.normal(0.0, 0.5, 200)
    loud = rng.choice([0.0, 1000.0], size=200) + rng.normal(0.0, 5.0, 200)
    data: Records = [{"a": float(a), "b": float(b)} for a, b in zip(informative, loud, strict=True)]
    params: dict[str, Any] = {"algorithm": "kmeans", "k_min": 2, "k_max": 2}
    scaled = run_direct("clustering", data, params).result
    raw = run_direct("clustering", data, {**params, "scale": False}).result
    assert adjusted_rand_score(group, raw.labels) < 0.1
    assert adjusted_rand_score(loud > 500, raw.labels) == 1.0
    assert scaled.k == raw.k == 2


def test_k_range_and_cluster_size_are_checked() -> None:
    method = METHODS["clustering"]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("clustering", method.example.data, {"k_min": 6, "k_max": 3})
    assert (refused.value.code, refused.value.param) == ("invalid_range", "params.k_min")
    with pytest.raises(InvalidRequestError) as too_big:
        run_direct(
            "clustering", method.example.data, {"algorithm": "hdbscan", "min_cluster_size": 500}
        )
    assert too_big.value.param == "params.min_cluster_size"
    assert "500" in too_big.value.message


def test_k_max_is_lowered_to_the_distinct_rows() -> None:
    data: Records = [{"a": float(i % 4), "b": float(i % 4) * 2.0} for i in range(40)]
    direct = run_direct("clustering", data, {"algorithm": "kmeans", "k_max": 8})
    assert [item.k for item in direct.result.silhouette_by_k] == [2, 3]
    assert any("k_max is lowered to 3" in warning for warning in direct.warnings)


def test_a_text_column_is_a_400() -> None:
    method = METHODS["clustering"]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct("clustering", method.example.data, {"columns": ["spend", "customer"]})
    assert (refused.value.code, refused.value.param) == ("not_numeric", "params.columns")
    assert "'customer'" in refused.value.message
