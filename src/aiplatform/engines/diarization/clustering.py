"""Grouping voice embeddings into speakers: average-linkage agglomerative clustering on cosine
distance, cut at a given number of speakers or, when it is unknown, where clusters stop being
the same voice."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aiplatform.engines.speakers.encoder import Matrix

__all__ = ["cluster_voices"]


def cluster_voices(
    embeddings: Matrix,
    *,
    num_speakers: int | None,
    max_speakers: int,
    same_voice_threshold: float,
) -> npt.NDArray[np.int64]:
    """A cluster label per row, numbered by first appearance (0, 1, ...)."""
    count = embeddings.shape[0]
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if count == 1:
        return np.zeros(1, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
    if num_speakers is not None:
        raw = fcluster(tree, t=min(num_speakers, count), criterion="maxclust")
    else:
        raw = fcluster(tree, t=1.0 - same_voice_threshold, criterion="distance")
        if len(set(raw.tolist())) > max_speakers:
            raw = fcluster(tree, t=max_speakers, criterion="maxclust")
    order: dict[int, int] = {}
    for label in raw.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in raw.tolist()], dtype=np.int64)
