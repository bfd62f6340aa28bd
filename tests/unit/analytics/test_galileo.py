"""galileo: graphs from correlations, nearest neighbours or edge lists; Louvain communities."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from aiplatform.engines.analytics.methods.galileo import METHOD
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError
from tests.analytics import assert_valid_charts, run_direct


def _labels(communities: list[list[str]], names: list[str]) -> list[int]:
    found = {name: index for index, part in enumerate(communities) for name in part}
    return [found[name] for name in names]


def _planted_edges(seed: int = 3) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """4 groups of 10 nodes: edge probability 0.7 inside a group, 0.03 between."""
    graph = nx.planted_partition_graph(4, 10, 0.7, 0.03, seed=seed)
    records = [{"from": f"n{a}", "to": f"n{b}"} for a, b in graph.edges]
    truth = {f"n{node}": node // 10 for node in graph.nodes}
    return records, truth


def test_planted_partition_edge_list_is_recovered() -> None:
    records, truth = _planted_edges()
    direct = run_direct("galileo", records, {"graph": "edges", "source": "from", "target": "to"})
    result = direct.result
    names = sorted(truth)
    ari = adjusted_rand_score([truth[name] for name in names], _labels(result.communities, names))
    assert ari == pytest.approx(1.0)
    assert [len(part) for part in result.communities] == [10, 10, 10, 10]
    assert result.modularity > 0.5
    assert result.edges == len(records)
    assert len(result.nodes) == 40
    # communities are sorted lists, largest first; the node entries agree with them
    assert all(part == sorted(part) for part in result.communities)
    for node in result.nodes:
        assert node.name in result.communities[node.community]
    pageranks = [node.pagerank for node in result.nodes]
    assert pageranks == sorted(pageranks, reverse=True)
    assert sum(pageranks) == pytest.approx(1.0)
    assert all(node.eigenvector is not None for node in result.nodes)


def test_correlation_graph_of_two_latent_factors() -> None:
    rng = np.random.default_rng(1)
    f, g = rng.normal(size=(2, 400))
    records = []
    for i in range(400):
        row = {f"a{j}": float(f[i] * (1 + 0.2 * j) + rng.normal(0, 0.6)) for j in range(5)}
        row |= {f"b{j}": float(-g[i] * (1 + 0.1 * j) + rng.normal(0, 0.6)) for j in range(5)}
        records.append(row)
    direct = run_direct("galileo", records, {"graph": "correlation", "threshold": 0.4})
    result = direct.result
    assert sorted(result.communities) == [
        [f"a{j}" for j in range(5)],
        [f"b{j}" for j in range(5)],
    ]
    # every edge lies inside a group: 2 x C(5, 2)
    assert result.edges == 20
    # two separate groups: eigenvector centrality is not unique, so it is null, with a warning
    assert all(node.eigenvector is None for node in result.nodes)
    assert any("not connected" in warning for warning in direct.warnings)


def test_knn_graph_of_blobs_keeps_each_community_in_one_blob() -> None:
    rng = np.random.default_rng(2)
    centres = [(0.0, 0.0), (8.0, 0.0), (0.0, 8.0)]
    records = []
    truth = {}
    for blob, (cx, cy) in enumerate(centres):
        for i in range(30):
            name = f"p{blob}_{i}"
            truth[name] = blob
            records.append(
                {"id": name, "x": float(cx + rng.normal()), "y": float(cy + rng.normal())}
            )
    result = run_direct("galileo", records, {"graph": "knn", "k": 12, "label": "id"}).result
    names = sorted(truth)
    ari = adjusted_rand_score([truth[name] for name in names], _labels(result.communities, names))
    assert ari == pytest.approx(1.0)
    assert {node.name for node in result.nodes} == set(truth)
    # a sparser graph splits blobs into smaller communities, but none spans two blobs
    sparse = run_direct("galileo", records, {"graph": "knn", "k": 5, "label": "id"}).result
    assert len(sparse.communities) > 3
    for part in sparse.communities:
        assert len({truth[name] for name in part}) == 1


def test_knn_nodes_default_to_row_numbers() -> None:
    records = [{"x": float(i % 7), "y": float((i * 3) % 11)} for i in range(30)]
    direct = run_direct("galileo", records, {"graph": "knn", "k": 3})
    assert {node.name for node in direct.result.nodes} == {str(i) for i in range(30)}


def test_weights_decide_the_communities() -> None:
    """A complete graph whose only structure is in the weights: two heavy groups of four."""
    records = []
    for a in range(8):
        for b in range(a + 1, 8):
            same = (a < 4) == (b < 4)
            records.append({"s": a, "t": b, "w": 10.0 if same else 0.1})
    direct = run_direct(
        "galileo", records, {"graph": "edges", "source": "s", "target": "t", "weight": "w"}
    )
    assert sorted(direct.result.communities) == [["0", "1", "2", "3"], ["4", "5", "6", "7"]]
    unweighted = run_direct("galileo", records, {"graph": "edges", "source": "s", "target": "t"})
    assert len(unweighted.result.communities) == 1


def test_star_centre_is_the_most_central() -> None:
    records = [{"a": "hub", "b": f"leaf{i}"} for i in range(12)]
    records += [{"a": "leaf0", "b": "leaf1"}]
    result = run_direct("galileo", records, {"graph": "edges", "source": "a", "target": "b"}).result
    hub = result.nodes[0]
    assert hub.name == "hub"
    assert hub.degree == 12
    assert hub.betweenness == pytest.approx(1.0, abs=0.02)
    assert hub.eigenvector == max(node.eigenvector for node in result.nodes)


def test_edge_list_cleaning_is_reported() -> None:
    records = [
        {"s": "a", "t": "b"},
        {"s": "b", "t": "a"},
        {"s": "a", "t": "a"},
        {"s": "b", "t": "c"},
        {"s": None, "t": "c"},
    ]
    direct = run_direct("galileo", records, {"graph": "edges", "source": "s", "target": "t"})
    assert direct.result.edges == 2
    text = " ".join(direct.warnings)
    assert "1 self-loops" in text
    assert "1 repeated edges" in text
    assert "1 edges with a missing node" in text


def test_example_answers_with_valid_charts() -> None:
    direct = run_direct("galileo", METHOD.example.data, METHOD.example.params)
    result = direct.result
    assert {"sales", "visits", "orders"} in [set(part) for part in result.communities]
    assert result.nodes[0].name == "umbrellas"
    assert len(direct.charts) == 3
    assert_valid_charts(direct.charts)
    assert "Louvain finds 2 communities" in direct.summary


def test_same_seed_same_result_and_rising_progress() -> None:
    records, _ = _planted_edges(seed=5)
    params = {"graph": "edges", "source": "from", "target": "to"}
    first = run_direct("galileo", records, params, seed=11)
    second = run_direct("galileo", records, params, seed=11)
    assert first.result == second.result
    assert first.charts == second.charts
    fractions = [fraction for fraction, _ in first.progress]
    assert fractions == sorted(fractions)
    assert len(fractions) >= 4


def test_edge_list_needs_source_and_target() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("galileo", [{"s": "a", "t": "b"}] * 3, {"graph": "edges", "source": "s"})
    assert caught.value.code == "missing_param"
    assert caught.value.param == "params.target"


def test_negative_weight_is_refused() -> None:
    records = [
        {"s": "a", "t": "b", "w": 1.0},
        {"s": "b", "t": "c", "w": -2.0},
        {"s": "c", "t": "a", "w": 1.0},
    ]
    with pytest.raises(InvalidRequestError) as caught:
        run_direct(
            "galileo", records, {"graph": "edges", "source": "s", "target": "t", "weight": "w"}
        )
    assert caught.value.code == "negative_weight"
    assert caught.value.param == "params.weight"
    assert "'w'" in caught.value.message


def test_no_edge_above_threshold_is_unprocessable() -> None:
    rng = np.random.default_rng(0)
    records = [{f"c{j}": float(v) for j, v in enumerate(row)} for row in rng.normal(size=(50, 4))]
    with pytest.raises(UnprocessableEntityError) as caught:
        run_direct("galileo", records, {"graph": "correlation", "threshold": 0.9})
    assert caught.value.code == "no_edges"
    assert "threshold" in caught.value.message


def test_knn_refusals() -> None:
    records = [{"id": "same", "x": float(i), "y": float(i % 3)} for i in range(6)]
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("galileo", records, {"graph": "knn", "k": 6})
    assert caught.value.code == "k_too_large"
    assert caught.value.param == "params.k"
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("galileo", records, {"graph": "knn", "k": 2, "label": "id"})
    assert caught.value.code == "duplicate_label"
    assert "same" in caught.value.message


def test_correlation_graph_needs_three_columns() -> None:
    records = [{"x": float(i), "y": float(i * i)} for i in range(10)]
    with pytest.raises(InvalidRequestError) as caught:
        run_direct("galileo", records, {"graph": "correlation"})
    assert caught.value.code == "too_few_columns"
    assert caught.value.param == "params.columns"


def test_large_graph_estimates_betweenness_and_solves_sparse_eigenvector() -> None:
    graph = nx.planted_partition_graph(4, 130, 0.1, 0.002, seed=4)
    assert nx.is_connected(graph)
    records = [{"s": a, "t": b} for a, b in graph.edges]
    direct = run_direct("galileo", records, {"graph": "edges", "source": "s", "target": "t"})
    result = direct.result
    assert any("estimated from shortest paths out of" in warning for warning in direct.warnings)
    names = [str(node) for node in graph.nodes]
    truth = [node // 130 for node in graph.nodes]
    assert adjusted_rand_score(truth, _labels(result.communities, names)) > 0.95
    exact_eigen = nx.eigenvector_centrality_numpy(graph)
    exact_between = nx.betweenness_centrality(graph)
    found = {node.name: node for node in result.nodes}
    for node in graph.nodes:
        assert found[str(node)].eigenvector == pytest.approx(exact_eigen[node], abs=1e-8)
    estimated = [found[str(node)].betweenness for node in graph.nodes]
    exact = [exact_between[node] for node in graph.nodes]
    assert np.corrcoef(estimated, exact)[0, 1] > 0.9
