"""Graphs: communities and central nodes.

The graph comes from the table in one of three ways: a correlation graph over numeric columns
(an edge where two columns correlate at least ``threshold``, weighted by ``|r|``), a k-nearest
neighbour graph over rows (standardised numeric columns; an edge from each row to its ``k``
nearest rows, weighted ``1 / (1 + distance)``) or an explicit edge list (``source``, ``target``
and an optional ``weight`` column). Louvain (networkx, seeded) finds the communities; degree,
betweenness (along ``1 / weight`` distances, so that strong links are short), PageRank and
eigenvector centrality (when its power iteration converges) rank the nodes.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import Cell, Method, MethodExample, Outcome, Run
from aiplatform.errors import InvalidRequestError, UnprocessableEntityError

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

__all__ = ["METHOD", "GalileoNode", "GalileoParams", "GalileoResult"]

#: The most nodes a graph may have (rows of a k-NN graph, distinct names of an edge list).
MAX_NODES = 10_000
#: Betweenness costs one shortest-path search per source node, each visiting every edge: when
#: nodes x edges exceeds this, it is estimated from enough seeded pivot sources to stay within.
BETWEENNESS_BUDGET = 1_000_000
#: The fewest pivot sources an estimated betweenness uses.
MIN_PIVOTS = 20
#: Up to this many nodes eigenvector centrality comes from a dense eigen-decomposition.
DENSE_EIGEN_NODES = 500
#: The spring-layout chart is drawn for graphs up to this many nodes.
LAYOUT_NODES = 300


class GalileoParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: How the graph is built: "correlation" (nodes are numeric columns, edges where
    #: |correlation| >= threshold), "knn" (nodes are rows, edges to the k nearest rows) or
    #: "edges" (the table is an edge list: source, target and optional weight columns).
    graph: Literal["correlation", "knn", "edges"] = "correlation"
    #: Numeric columns: the nodes of a correlation graph, the features of a k-NN graph. None:
    #: every numeric column.
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=500)] | None = None
    #: Correlation graph: the smallest |correlation| that makes an edge.
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    #: Correlation graph: Pearson (linear) or Spearman (rank) correlation.
    correlation: Literal["pearson", "spearman"] = "pearson"
    #: k-NN graph: how many nearest rows each row links to.
    k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    #: k-NN graph: the column naming each row (unique values); None: the row number.
    label: str | None = None
    #: Edge list: the column holding each edge's first node.
    source: str | None = None
    #: Edge list: the column holding each edge's second node.
    target: str | None = None
    #: Edge list: a numeric column of positive edge weights; None: every edge weighs 1.
    weight: str | None = None
    #: Louvain resolution: above 1 favours smaller communities, below 1 larger ones.
    resolution: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 1.0
    #: How many nodes the PageRank chart shows.
    top: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20


class GalileoNode(msgspec.Struct, kw_only=True):
    name: str
    #: Index of the node's community in ``communities``.
    community: int
    #: Number of neighbours.
    degree: int
    #: Normalised betweenness centrality (shortest paths along 1 / weight).
    betweenness: float
    pagerank: float
    #: Eigenvector centrality; None when its power iteration does not converge.
    eigenvector: float | None


class GalileoResult(msgspec.Struct, kw_only=True):
    #: How the graph was built.
    graph: str
    #: Nodes, by PageRank (highest first).
    nodes: list[GalileoNode]
    #: Number of edges.
    edges: int
    #: Communities as lists of node names (each sorted; largest community first).
    communities: list[list[str]]
    #: Modularity of the partition (at the requested resolution).
    modularity: float


def compute(frame: pd.DataFrame, params: GalileoParams, run: Run) -> Outcome[GalileoResult]:
    run.progress(0.05, "building the graph")
    if params.graph == "correlation":
        graph = _correlation_graph(frame, params)
    elif params.graph == "knn":
        graph = _knn_graph(frame, params, run)
    else:
        graph = _edge_list_graph(frame, params, run)
    if graph.number_of_nodes() > MAX_NODES:
        raise InvalidRequestError(
            f"The graph has {graph.number_of_nodes()} nodes; the limit is {MAX_NODES}.",
            param="data",
            code="too_many_nodes",
        )
    if graph.number_of_edges() == 0:
        hint = " Lower params.threshold." if params.graph == "correlation" else ""
        raise UnprocessableEntityError(
            f"The {params.graph} graph has {graph.number_of_nodes()} nodes and no edge; there "
            f"are no communities to find.{hint}",
            code="no_edges",
        )
    run.progress(0.3, "finding communities")
    communities, modularity = _communities(graph, params, run)
    run.progress(0.5, "ranking nodes")
    nodes = _nodes(graph, communities, run)
    result = GalileoResult(
        graph=params.graph,
        nodes=nodes,
        edges=graph.number_of_edges(),
        communities=communities,
        modularity=modularity,
    )
    run.progress(0.9, "drawing charts")
    return Outcome(
        result=result, summary=_summary(result), charts=_charts(graph, result, params, run)
    )


def _numeric_frame(frame: pd.DataFrame, params: GalileoParams, exclude: set[str]) -> pd.DataFrame:
    """The numeric columns named in ``params.columns`` (checked), or every numeric column."""
    import pandas as pd

    if params.columns is not None:
        return columns.numeric_columns(frame, params.columns, "columns")
    names = [
        str(name)
        for name in frame.columns
        if name not in exclude
        and pd.api.types.is_numeric_dtype(frame[name])
        and frame[name].dtype != bool
        and frame[name].nunique() > 1
    ]
    if not names:
        raise InvalidRequestError(
            "The data have no numeric column (with more than one value) to build the graph "
            "from; name them in params.columns.",
            param="params.columns",
            code="no_numeric_columns",
        )
    return columns.numeric_columns(frame, names, "columns")


def _correlation_graph(frame: pd.DataFrame, params: GalileoParams) -> nx.Graph[str]:
    import networkx as nx

    values = _numeric_frame(frame, params, set())
    if values.shape[1] < 3:
        raise InvalidRequestError(
            f"A correlation graph needs at least 3 numeric columns; {values.shape[1]} given.",
            param="params.columns",
            code="too_few_columns",
        )
    matrix = values.corr(method=params.correlation, min_periods=3)
    graph: nx.Graph[str] = nx.Graph()
    names = [str(name) for name in matrix.columns]
    graph.add_nodes_from(names)
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            r = float(matrix.iat[i, j])
            if math.isfinite(r) and abs(r) >= params.threshold and abs(r) > 0:
                graph.add_edge(first, names[j], weight=abs(r), correlation=r)
    return graph


def _knn_graph(frame: pd.DataFrame, params: GalileoParams, run: Run) -> nx.Graph[str]:
    import networkx as nx
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    labels = None
    if params.label is not None:
        labels = columns.column(frame, params.label, "label")
    values = _numeric_frame(frame, params, {params.label} if params.label else set())
    complete = values.notna().all(axis=1).to_numpy()
    if not complete.all():
        run.warn(f"{int((~complete).sum())} rows with missing values were left out of the graph.")
    values = values[complete]
    if len(values) > MAX_NODES:
        raise InvalidRequestError(
            f"A k-NN graph has one node per row; the data have {len(values)} rows and the limit "
            f"is {MAX_NODES}.",
            param="data",
            code="too_many_nodes",
        )
    if params.k >= len(values):
        raise InvalidRequestError(
            f"params.k ({params.k}) must be below the number of complete rows ({len(values)}).",
            param="params.k",
            code="k_too_large",
        )
    names = _row_names(values.index, labels, params.label)
    matrix = values.to_numpy(dtype=float)
    spread = matrix.std(axis=0)
    matrix = (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    distances, neighbours = (
        NearestNeighbors(n_neighbors=params.k + 1).fit(matrix).kneighbors(matrix)
    )
    graph: nx.Graph[str] = nx.Graph()
    graph.add_nodes_from(names)
    for row, (near, far) in enumerate(zip(neighbours, distances, strict=True)):
        for other, distance in zip(near, far, strict=True):
            if int(other) != row:
                graph.add_edge(names[row], names[int(other)], weight=1.0 / (1.0 + float(distance)))
    return graph


def _row_names(index: pd.Index[Any], labels: pd.Series | None, label: str | None) -> list[str]:
    if labels is None:
        return [str(position) for position in index]
    chosen = labels.loc[index]
    if bool(chosen.isna().any()):
        raise InvalidRequestError(
            f"Column '{label}' given as label has missing values; every row needs a name.",
            param="params.label",
            code="missing_label",
        )
    names = [_name(value) for value in chosen]
    if len(set(names)) != len(names):
        repeated = next(name for name in names if names.count(name) > 1)
        raise InvalidRequestError(
            f"Column '{label}' given as label repeats the name '{repeated}'; each row needs its "
            "own.",
            param="params.label",
            code="duplicate_label",
        )
    return names


def _name(value: Any) -> str:
    """A node name: whole numbers without a trailing ``.0`` (ids read as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    item = getattr(value, "item", None)
    if callable(item):
        return _name(item())
    return str(value)


def _edge_list_graph(frame: pd.DataFrame, params: GalileoParams, run: Run) -> nx.Graph[str]:
    import networkx as nx
    import pandas as pd

    if params.source is None or params.target is None:
        missing = "source" if params.source is None else "target"
        raise InvalidRequestError(
            f"An edge-list graph needs params.source and params.target; {missing} is missing.",
            param=f"params.{missing}",
            code="missing_param",
        )
    sources = columns.column(frame, params.source, "source")
    targets = columns.column(frame, params.target, "target")
    if params.weight is not None:
        weights = columns.numeric(frame, params.weight, "weight", allow_constant=True)
        negative = weights < 0
        if bool(negative.any()):
            raise InvalidRequestError(
                f"Column '{params.weight}' given as weight must not be negative; row "
                f"{int(negative.to_numpy().argmax())} holds {float(weights[negative].iloc[0]):g}.",
                param="params.weight",
                code="negative_weight",
            )
    else:
        weights = pd.Series(1.0, index=frame.index)
    usable = (sources.notna() & targets.notna() & weights.notna()).to_numpy()
    if not usable.all():
        run.warn(f"{int((~usable).sum())} edges with a missing node or weight were left out.")
    zero = usable & (weights.to_numpy() == 0)
    if zero.any():
        run.warn(f"{int(zero.sum())} edges of weight 0 were left out.")
    graph: nx.Graph[str] = nx.Graph()
    loops = repeats = 0
    for a, b, w in zip(
        sources[usable & ~zero], targets[usable & ~zero], weights[usable & ~zero], strict=True
    ):
        first, second = _name(a), _name(b)
        if first == second:
            loops += 1
            continue
        if graph.has_edge(first, second):
            repeats += 1
            graph[first][second]["weight"] += float(w)
        else:
            graph.add_edge(first, second, weight=float(w))
    if loops:
        run.warn(f"{loops} self-loops were left out.")
    if repeats:
        run.warn(f"{repeats} repeated edges were merged (their weights added).")
    return graph


def _communities(
    graph: nx.Graph[str], params: GalileoParams, run: Run
) -> tuple[list[list[str]], float]:
    import networkx as nx

    found = nx.community.louvain_communities(
        graph, weight="weight", resolution=params.resolution, seed=run.seed
    )
    communities = sorted((sorted(part) for part in found), key=lambda part: (-len(part), part[0]))
    modularity = nx.community.modularity(
        graph, communities, weight="weight", resolution=params.resolution
    )
    return communities, float(modularity)


def _nodes(graph: nx.Graph[str], communities: list[list[str]], run: Run) -> list[GalileoNode]:
    import networkx as nx

    for a, b, data in graph.edges(data=True):
        graph[a][b]["distance"] = 1.0 / data["weight"]
    count = graph.number_of_nodes()
    pivots = None
    if count * graph.number_of_edges() > BETWEENNESS_BUDGET:
        pivots = min(count, max(MIN_PIVOTS, BETWEENNESS_BUDGET // graph.number_of_edges()))
        run.warn(
            f"Betweenness is estimated from shortest paths out of {pivots} seeded pivot nodes "
            f"(the graph has {count})."
        )
    betweenness = nx.betweenness_centrality(graph, k=pivots, weight="distance", seed=run.seed)
    run.progress(0.7, "PageRank")
    try:
        pagerank = nx.pagerank(graph, weight="weight", max_iter=1000)
    except nx.PowerIterationFailedConvergence:
        raise UnprocessableEntityError(
            "PageRank did not converge on this graph.", code="no_convergence"
        ) from None
    run.progress(0.8, "eigenvector centrality")
    eigenvector = _eigenvector(graph, run)
    membership = {name: index for index, part in enumerate(communities) for name in part}
    nodes = [
        GalileoNode(
            name=name,
            community=membership[name],
            degree=int(graph.degree(name)),
            betweenness=float(betweenness[name]),
            pagerank=float(pagerank[name]),
            eigenvector=None if eigenvector is None else float(eigenvector[name]),
        )
        for name in graph.nodes
    ]
    return sorted(nodes, key=lambda node: (-node.pagerank, node.name))


def _eigenvector(graph: nx.Graph[str], run: Run) -> dict[str, float] | None:
    """Eigenvector centrality: the leading eigenvector of the weighted adjacency matrix (unit
    length, positive). None when the graph is disconnected (each component has its own leading
    eigenvector, so the answer is not unique) or the eigen-solver does not converge. The solver
    starts from a fixed vector, so the answer does not vary between runs."""
    import networkx as nx
    import numpy as np
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    if not nx.is_connected(graph):
        run.warn(
            "The graph is not connected, so eigenvector centrality is not unique; it is left "
            "out (null)."
        )
        return None
    names = list(graph.nodes)
    matrix = nx.to_scipy_sparse_array(graph, nodelist=names, weight="weight", dtype=float)
    if len(names) <= DENSE_EIGEN_NODES:
        _, vectors = np.linalg.eigh(matrix.toarray())
        leading = vectors[:, -1]
    else:
        try:
            _, vectors = eigsh(matrix, k=1, which="LA", v0=np.ones(len(names)), maxiter=10_000)
        except ArpackNoConvergence:
            run.warn("Eigenvector centrality did not converge; it is left out (null).")
            return None
        leading = vectors[:, 0]
    leading = leading * np.sign(leading.sum()) / np.linalg.norm(leading)
    return {name: float(value) for name, value in zip(names, leading, strict=True)}


def _summary(result: GalileoResult) -> str:
    sizes = ", ".join(str(len(part)) for part in result.communities[:10])
    more = ", ..." if len(result.communities) > 10 else ""
    top = result.nodes[0]
    return (
        f"The {result.graph} graph has {len(result.nodes)} nodes and {result.edges} edges. "
        f"Louvain finds {len(result.communities)} communities (sizes {sizes}{more}) with "
        f"modularity {result.modularity:.3f}. The most central node by PageRank is "
        f"'{top.name}' ({top.pagerank:.3f}, degree {top.degree})."
    )


def _charts(
    graph: nx.Graph[str], result: GalileoResult, params: GalileoParams, run: Run
) -> list[dict[str, Any]]:
    import networkx as nx

    community = charts.field("community", "nominal", title="Community")
    shown = [
        {"name": node.name, "pagerank": node.pagerank, "community": node.community}
        for node in result.nodes[: params.top]
    ]
    made = [
        charts.bar(
            shown,
            charts.field("pagerank", "quantitative", title="PageRank"),
            charts.field("name", "nominal", title="Node", sort="-x"),
            title=f"Top {len(shown)} nodes by PageRank",
            color=community,
        ),
        charts.bar(
            [
                {"community": index, "size": len(part)}
                for index, part in enumerate(result.communities)
            ],
            charts.field("community", "ordinal", title="Community"),
            charts.field("size", "quantitative", title="Nodes"),
            title="Community sizes",
        ),
    ]
    if graph.number_of_nodes() <= LAYOUT_NODES:
        layout = nx.spring_layout(graph, seed=run.seed, weight="weight")
        membership = {node.name: node.community for node in result.nodes}
        made.append(
            charts.point(
                [
                    {"name": name, "x": float(x), "y": float(y), "community": membership[name]}
                    for name, (x, y) in layout.items()
                ],
                charts.field("x", "quantitative", title="", axis=None),
                charts.field("y", "quantitative", title="", axis=None),
                title="Spring layout, coloured by community",
                color=community,
                tooltip=[charts.field("name", "nominal"), community],
            )
        )
    return made


def _example() -> list[dict[str, Cell]]:
    """Six columns driven by two hidden factors (two communities of three columns) and one
    driven by both, which links them."""
    rng = random.Random(0)
    records: list[dict[str, Cell]] = []
    for _ in range(60):
        f, g = rng.gauss(0, 1), rng.gauss(0, 1)
        records.append(
            {
                "sales": round(f + rng.gauss(0, 0.4), 3),
                "visits": round(0.8 * f + rng.gauss(0, 0.4), 3),
                "orders": round(-f + rng.gauss(0, 0.4), 3),
                "rain": round(g + rng.gauss(0, 0.4), 3),
                "humidity": round(0.9 * g + rng.gauss(0, 0.4), 3),
                "clouds": round(g + rng.gauss(0, 0.5), 3),
                "umbrellas": round(0.7 * f + 0.7 * g + rng.gauss(0, 0.3), 3),
            }
        )
    return records


METHOD: Method[GalileoParams, GalileoResult] = Method(
    name="galileo",
    summary="Graphs from correlations, nearest neighbours or an edge list: Louvain communities "
    "and node centralities.",
    params=GalileoParams,
    result=GalileoResult,
    compute=compute,
    example=MethodExample(
        data=_example(),
        params=GalileoParams(
            graph="correlation",
            columns=["sales", "visits", "orders", "rain", "humidity", "clouds", "umbrellas"],
            threshold=0.5,
        ),
    ),
    numeric_param="columns",
    min_rows=3,
)
