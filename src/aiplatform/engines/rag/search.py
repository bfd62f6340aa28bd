"""One search of a collection, run on a worker thread in one go: the metadata filter selects
chunk ids, the vector index and/or the full-text index rank candidates among
them, hybrid rankings are fused, the threshold applied, and the hits read back."""

from __future__ import annotations

import numpy as np

from aiplatform.api.rag import SearchHit, SearchRequest
from aiplatform.engines.rag.fusion import reciprocal_rank_fusion
from aiplatform.engines.rag.index import Vectors
from aiplatform.engines.rag.store import CollectionRow, RagStore, Ranked

__all__ = ["search_collection"]

#: Candidates each ranking contributes to a hybrid search, per hit asked for.
HYBRID_DEPTH = 4
#: Index types whose scores are approximate (compressed vectors): this many times the
#: candidates are taken from them and scored again exactly against the stored vectors.
RESCORED = {"sq8": 4, "ivfpq": 4}


def search_collection(
    store: RagStore,
    row: CollectionRow,
    request: SearchRequest,
    query: Vectors | None,
    *,
    exact_filter_limit: int,
) -> list[SearchHit]:
    """The hits of ``request`` (``query`` is its unit query vector; None in lexical mode)."""
    allowed = None
    if request.filter is not None:
        allowed = store.matching_chunk_ids(row, request.filter)
        if allowed.size == 0:
            return []
    depth = request.top_k * HYBRID_DEPTH if request.mode == "hybrid" else request.top_k
    by_vector: Ranked = []
    by_words: Ranked = []
    if query is not None:
        # a flat index searches exactly under a filter; approximate ones (HNSW, IVF) can miss
        # rare matches, so few matching chunks are scored one by one instead
        approximate = row.index_type != "flat"
        if allowed is not None and approximate and allowed.size <= exact_filter_limit:
            by_vector = store.exact_search(row, query, depth, allowed)
        else:
            widen = RESCORED.get(row.index_type, 1)
            by_vector = store.vector_search(row, query, depth * widen, allowed)
            if allowed is not None and approximate and len(by_vector) < min(depth, allowed.size):
                # the graph or the probed lists held too few matches: score them all
                by_vector = store.exact_search(row, query, depth, allowed)
            elif widen > 1 and by_vector:
                candidates = np.fromiter((i for i, _ in by_vector), dtype=np.int64)
                by_vector = store.exact_search(row, query, depth, candidates)
    if request.mode != "vector" and request.query:
        by_words = store.lexical_search(row, request.query, depth, allowed)
    if request.mode == "vector":
        ranked = by_vector
    elif request.mode == "lexical":
        ranked = by_words
    else:
        ranked = reciprocal_rank_fusion([by_vector, by_words])
    if request.score_threshold is not None:
        ranked = _above(
            store,
            row,
            threshold=request.score_threshold,
            query=query,
            ranked=ranked,
            by_vector=by_vector,
        )
    ranked = ranked[: request.top_k]
    records = store.chunk_records(row, [chunk_id for chunk_id, _ in ranked])
    return [
        SearchHit(
            chunk_id=str(chunk_id),
            document_id=record.document_id,
            text=record.text,
            score=score,
            metadata=record.metadata,
            start=record.start,
            end=record.end,
        )
        for chunk_id, score in ranked
        if (record := records.get(chunk_id)) is not None
    ]


def _above(
    store: RagStore,
    row: CollectionRow,
    *,
    threshold: float,
    query: Vectors | None,
    ranked: Ranked,
    by_vector: Ranked,
) -> Ranked:
    """Hits whose cosine similarity to the query reaches ``threshold`` (lexical mode: whose
    BM25 score does). Hybrid hits found only by their words are scored against the query vector
    here."""
    if query is None:
        return [hit for hit in ranked if hit[1] >= threshold]
    similarity = dict(by_vector)
    unknown = [chunk_id for chunk_id, _ in ranked if chunk_id not in similarity]
    if unknown:
        vectors = store.chunk_vectors(row, unknown)
        similarity.update({i: float(v @ query[0]) for i, v in vectors.items()})
    return [hit for hit in ranked if similarity.get(hit[0], -1.0) >= threshold]
