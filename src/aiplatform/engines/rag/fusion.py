"""Reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009): rankings from different
scorers (cosine similarity, BM25) merged by rank alone, so their scales never need to agree."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["reciprocal_rank_fusion"]

#: The paper's constant: it damps the weight of the very first ranks.
K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[tuple[int, float]]], k: int = K
) -> list[tuple[int, float]]:
    """Ids with their fused score ``Σ 1/(k + rank)``, best first (ties: first seen first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])
