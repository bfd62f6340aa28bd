"""One collection's FAISS index: unit vectors under the chunks' database ids, searched by
inner product (cosine similarity).

The database is the record; this index is derived from it and can always be rebuilt from it.
:meth:`VectorIndex.ids` lets the store compare the two and catch up after a crash.

Index types:

- ``flat``: exact search; ids removed at once.
- ``hnsw``: a graph index. FAISS cannot take nodes out of it, so removed ids are masked at search
  time until :attr:`VectorIndex.wants_rebuild` says the masked share is worth a rebuild. Masked
  vectors are never written: :meth:`VectorIndex.save` compacts the graph first.
- ``ivf``: exact (flat) until the collection reaches ``ivf_min_train`` vectors, then clustered
  into about ``4·√n`` lists trained on the collection; ids removed at once.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["IndexParams", "VectorIndex", "Vectors"]

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

#: The share of masked (removed) vectors from which an HNSW index is rebuilt.
_HNSW_MASKED_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class IndexParams:
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 80
    ivf_min_train: int = 20_000
    ivf_nprobe: int = 16


class VectorIndex:
    """Thread-safe: searches and changes of one collection's index take its lock."""

    def __init__(self, dimension: int, index_type: str, params: IndexParams) -> None:
        self.dimension = dimension
        self.index_type = index_type
        self._params = params
        self._lock = threading.Lock()
        self._masked: set[int] = set()
        self._index: Any = self._empty()

    # -- building ------------------------------------------------------------------------------

    def _empty(self) -> Any:
        """A new index (an IVF collection starts exact and is clustered by :meth:`rebuilt`)."""
        faiss = _faiss()

        if self.index_type == "hnsw":
            graph = faiss.IndexHNSWFlat(
                self.dimension, self._params.hnsw_m, faiss.METRIC_INNER_PRODUCT
            )
            graph.hnsw.efConstruction = self._params.hnsw_ef_construction
            return faiss.IndexIDMap2(graph)
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    def _trained_ivf(self, sample: Vectors) -> Any:
        faiss = _faiss()

        lists = max(1, min(int(4 * math.sqrt(sample.shape[0])), sample.shape[0] // 39))
        quantizer = faiss.IndexFlatIP(self.dimension)
        index = faiss.IndexIVFFlat(quantizer, self.dimension, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(sample)
        return index

    @property
    def is_ivf(self) -> bool:
        faiss = _faiss()

        return isinstance(self._index, faiss.IndexIVF)

    def rebuilt(self, batches: Iterable[tuple[Ids, Vectors]], count: int) -> VectorIndex:
        """A fresh index of the same type holding ``batches`` (``count`` vectors in all); an IVF
        collection large enough is clustered now. Built without this index's lock."""
        fresh = VectorIndex(self.dimension, self.index_type, self._params)
        pending: list[tuple[Ids, Vectors]] = []
        if self.index_type == "ivf" and count >= self._params.ivf_min_train:
            pending = list(batches)
            vectors = np.concatenate([v for _, v in pending]) if pending else None
            if vectors is not None and vectors.shape[0] >= self._params.ivf_min_train:
                rng = np.random.default_rng(0)
                take = min(vectors.shape[0], 256 * int(4 * math.sqrt(vectors.shape[0])))
                sample = vectors[rng.choice(vectors.shape[0], size=take, replace=False)]
                fresh._index = fresh._trained_ivf(np.ascontiguousarray(sample))
            batches = pending
        for ids, vectors in batches:
            fresh._index.add_with_ids(vectors, ids)
        return fresh

    def wants_rebuild(self) -> bool:
        """Whether a rebuild would pay: masked HNSW nodes pile up, or an IVF collection has
        grown large enough to cluster."""
        with self._lock:
            total = int(self._index.ntotal)
            if self._masked and len(self._masked) >= _HNSW_MASKED_SHARE * max(total, 1):
                return True
            return (
                self.index_type == "ivf" and not self.is_ivf and total >= self._params.ivf_min_train
            )

    @property
    def masked_count(self) -> int:
        """Removed vectors still in the graph (masked at search time)."""
        with self._lock:
            return len(self._masked)

    def _compact(self) -> None:
        """Rebuild the graph without its masked vectors (under the lock), so that a removed
        vector leaves the index, and with it the file the index is written to."""
        faiss = _faiss()

        total = int(self._index.ntotal)
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, total) if total else None
        keep = ~np.isin(ids, np.fromiter(self._masked, dtype=np.int64))
        fresh = self._empty()
        if vectors is not None and keep.any():
            fresh.add_with_ids(np.ascontiguousarray(vectors[keep]), ids[keep])
        self._index, self._masked = fresh, set()

    def replace_with(self, other: VectorIndex) -> None:
        with self._lock:
            self._index, self._masked = other._index, set(other._masked)

    # -- changes -------------------------------------------------------------------------------

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if ids.size == 0:
            return
        with self._lock:
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids: Ids) -> None:
        faiss = _faiss()

        if ids.size == 0:
            return
        with self._lock:
            if self.index_type == "hnsw":
                self._masked.update(int(i) for i in ids)
            else:
                self._index.remove_ids(faiss.IDSelectorBatch(ids))

    # -- reading -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Vectors that searches can find."""
        with self._lock:
            return int(self._index.ntotal) - len(self._masked)

    @property
    def memory_bytes(self) -> int:
        """About how much memory the index takes: its vectors, their ids, and the graph's
        links for HNSW."""
        with self._lock:
            total = int(self._index.ntotal)
        per_vector = 4 * self.dimension + 8
        if self.index_type == "hnsw":
            per_vector += 4 * 2 * self._params.hnsw_m
        return total * per_vector

    def ids(self) -> Ids:
        """Every id the index answers for (masked ones left out)."""
        faiss = _faiss()

        with self._lock:
            if self.is_ivf:
                lists = self._index.invlists
                parts = [
                    faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
                    for n in range(lists.nlist)
                    if lists.list_size(n)
                ]
                found = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            else:
                found = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            if self._masked:
                found = found[~np.isin(found, np.fromiter(self._masked, dtype=np.int64))]
            return found

    def search(self, query: Vectors, k: int, allowed: Ids | None = None) -> tuple[Vectors, Ids]:
        """The ``k`` nearest ids to ``query`` (one row) with their similarities, best first;
        only ids in ``allowed`` when it is given. Fewer when fewer match."""
        faiss = _faiss()

        with self._lock:
            total = int(self._index.ntotal)
            if total == 0 or k == 0:
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            selector: Any = None
            if allowed is not None:
                selector = faiss.IDSelectorBatch(allowed)
            elif self._masked:
                masked = np.fromiter(self._masked, dtype=np.int64)
                selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(masked))
            params = self._search_params(selector, k)
            scores, ids = self._index.search(query, min(k, total), params=params)
            del selector  # kept alive until the search is done
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _search_params(self, selector: Any, k: int) -> Any:
        faiss = _faiss()

        if self.index_type == "hnsw":
            return faiss.SearchParametersHNSW(
                efSearch=max(self._params.hnsw_ef_search, k), sel=selector
            )
        if self.is_ivf:
            return faiss.SearchParametersIVF(nprobe=self._params.ivf_nprobe, sel=selector)
        return faiss.SearchParameters(sel=selector)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically: a crash leaves the old file or the new one.
        Masked vectors are compacted away first, so a deleted document's vector is not
        written."""
        faiss = _faiss()

        temporary = path.with_name(f".{path.name}.tmp")
        with self._lock:
            if self._masked:
                self._compact()
            faiss.write_index(self._index, str(temporary))
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        _fsync_directory(path.parent)

    @classmethod
    def load(cls, path: Path, dimension: int, index_type: str, params: IndexParams) -> VectorIndex:
        """The index saved at ``path``; ``ValueError`` when it is unreadable or of another
        shape (the caller rebuilds it from the database)."""
        faiss = _faiss()

        index = cls(dimension, index_type, params)
        try:
            loaded = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ValueError(f"unreadable index file {path.name}: {exc}") from exc
        if loaded.d != dimension:
            raise ValueError(f"index file {path.name} holds {loaded.d}-d vectors, not {dimension}")
        index._index = loaded
        return index


def _faiss() -> Any:
    """The faiss module, imported when first used (its bundled type stubs do not match it)."""
    import faiss

    return faiss


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
