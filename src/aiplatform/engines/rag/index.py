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
- ``sq8``: exact until the collection reaches ``sq_min_train`` vectors, then each dimension is
  stored in one byte (a quarter of ``flat``'s memory) over a range per dimension trained on the
  collection and widened by a tenth on each side. Unit vectors would allow a fixed [-1, 1]
  range and no training, but an embedding's components seldom pass ±0.3, so trained ranges
  resolve several times finer: recall@10 against ``flat`` of 0.98 instead of 0.93 on
  clustered random 384-d vectors, 0.997 instead of 0.979 on all-MiniLM-L6-v2 embeddings. A
  later vector with a component outside the ranges is clipped there; once such vectors make
  a tenth of the index, it is trained again.
- ``ivfpq``: exact until ``ivf_min_train`` vectors (and at least 256, to train the codebooks),
  then clustered like ``ivf``, each vector's offset from its list's centroid product-quantized
  to one byte per ``ivfpq_dims_per_code`` dimensions. The smallest index; its ranking and
  scores are the most approximate.
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

from aiplatform.storage.durable import fsync_directory, fsync_file

__all__ = ["IndexParams", "VectorIndex", "Vectors", "pq_codes"]

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

#: The share of masked (removed) vectors from which an HNSW index is rebuilt.
_HNSW_MASKED_SHARE = 0.2
#: sq8: each dimension's trained range is widened by this share of it on both sides.
_SQ_RANGE_MARGIN = 0.1
#: sq8: the share of vectors added with a component outside the trained ranges (clipped)
#: from which the index is trained again.
_SQ_CLIPPED_SHARE = 0.1
#: sq8: vectors its ranges are trained on at most (a sample of the collection).
_SQ_TRAIN_MOST = 1 << 18
#: ivfpq: bits of each code (256 centroids per codebook, so at least 256 training vectors).
_PQ_BITS = 8
#: ivfpq: k-means iterations training each codebook. FAISS's default 25 took 2.5x as long as
#: 10 for the same recall (0.83 at 20,000 clustered 384-d vectors); the IVF centroids take 10.
_PQ_TRAIN_ITERATIONS = 10
#: Bytes an ``IndexIDMap2`` spends per id: the id, and its entry in the reverse map (a 24-byte
#: hash node in a 32-byte allocation, and the bucket pointing to it).
_ID_MAP_BYTES = 8 + 40
#: Bytes written to a file per call (a single write of more than 2 GiB is cut short by Linux).
_WRITE_BLOCK = 64 << 20
#: A filter's allowed ids are marked in a bitmap (a bit per id up to the largest) when it
#: takes at most this many bits per allowed id, or at most a MiB; sparser ones go into a hash
#: set, slower to build and to probe (see :func:`_allowed_selector`).
_BITMAP_BITS_PER_ID = 512
_BITMAP_BITS_ANYWAY = 8 << 20


@dataclass(frozen=True, slots=True)
class IndexParams:
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 80
    ivf_min_train: int = 20_000
    #: Lists searched by ``ivf`` and ``ivfpq``.
    ivf_nprobe: int = 16
    #: sq8: vectors from which a collection is quantized (searched exactly before).
    sq_min_train: int = 1000
    #: ivfpq: dimensions each one-byte code stands for; a vector takes about
    #: ``dimension / ivfpq_dims_per_code`` bytes (see :func:`pq_codes`).
    ivfpq_dims_per_code: int = 4


def pq_codes(dimension: int, dims_per_code: int) -> int:
    """Codes per vector for IVF-PQ: the divisor of ``dimension`` (PQ cuts a vector into equal
    parts) nearest to ``dimension / dims_per_code``, the larger one on a tie. A prime dimension
    gets a code per dimension rather than one code for the whole vector."""
    target = dimension / max(1, dims_per_code)
    divisors = [m for m in range(1, dimension + 1) if dimension % m == 0]
    return min(divisors, key=lambda m: (abs(math.log(m / target)), -m))


class VectorIndex:
    """Thread-safe: searches and changes of one collection's index take its lock."""

    def __init__(self, dimension: int, index_type: str, params: IndexParams) -> None:
        self.dimension = dimension
        self.index_type = index_type
        self._params = params
        self._lock = threading.Lock()
        self._masked: set[int] = set()
        #: sq8, once trained: each dimension's (lowest, highest) value that is not clipped.
        self._ranges: tuple[Vectors, Vectors] | None = None
        #: sq8: vectors added since the index was built with a component clipped.
        self._clipped = 0
        self._index: Any = self._empty()

    # -- building ------------------------------------------------------------------------------

    def _empty(self) -> Any:
        """A new index (sq8, IVF and IVF-PQ collections start exact and are trained by
        :meth:`rebuilt`)."""
        faiss = _faiss()

        if self.index_type == "hnsw":
            graph = faiss.IndexHNSWFlat(
                self.dimension, self._params.hnsw_m, faiss.METRIC_INNER_PRODUCT
            )
            graph.hnsw.efConstruction = self._params.hnsw_ef_construction
            return faiss.IndexIDMap2(graph)
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    def _trained(self, sample: Vectors) -> Any:
        """The quantized (sq8) or clustered (ivf, ivfpq) index of this type, trained on
        ``sample``."""
        faiss = _faiss()

        if self.index_type == "sq8":
            quantizer = faiss.IndexScalarQuantizer(
                self.dimension, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            quantizer.sq.rangestat_arg = _SQ_RANGE_MARGIN
            quantizer.train(sample)
            return faiss.IndexIDMap2(quantizer)
        lists = max(1, min(int(4 * math.sqrt(sample.shape[0])), sample.shape[0] // 39))
        centroids = faiss.IndexFlatIP(self.dimension)
        if self.index_type == "ivfpq":
            codes = pq_codes(self.dimension, self._params.ivfpq_dims_per_code)
            index = faiss.IndexIVFPQ(
                centroids, self.dimension, lists, codes, _PQ_BITS, faiss.METRIC_INNER_PRODUCT
            )
            index.pq.cp.niter = _PQ_TRAIN_ITERATIONS
        else:
            index = faiss.IndexIVFFlat(centroids, self.dimension, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(sample)
        return index

    def _min_train(self) -> int | None:
        """Vectors from which this type is trained; None for the types never trained."""
        if self.index_type == "ivf":
            return self._params.ivf_min_train
        if self.index_type == "ivfpq":
            return max(self._params.ivf_min_train, 1 << _PQ_BITS)
        if self.index_type == "sq8":
            return max(self._params.sq_min_train, 2)
        return None

    def _adopt(self, index: Any) -> None:
        """Make ``index`` this one's FAISS index (under the lock, or before it is shared)."""
        self._index, self._masked, self._clipped = index, set(), 0
        self._ranges = _quantizer_ranges(index)

    @property
    def is_ivf(self) -> bool:
        faiss = _faiss()

        return isinstance(self._index, faiss.IndexIVF)

    @property
    def is_trained(self) -> bool:
        """Whether the index has the form its type is trained into: quantized (sq8) or
        clustered (ivf, ivfpq). Always true for flat and hnsw."""
        with self._lock:
            return self._is_trained()

    def _is_trained(self) -> bool:
        if self.index_type in ("ivf", "ivfpq"):
            return self.is_ivf
        if self.index_type == "sq8":
            return self._ranges is not None
        return True

    def rebuilt(self, batches: Iterable[tuple[Ids, Vectors]], count: int) -> VectorIndex:
        """A fresh index of the same type holding ``batches`` (``count`` vectors in all); an
        sq8, IVF or IVF-PQ collection large enough is trained now. Built without this index's
        lock."""
        fresh = VectorIndex(self.dimension, self.index_type, self._params)
        min_train = self._min_train()
        if min_train is not None and count >= min_train:
            pending = list(batches)
            vectors = np.concatenate([v for _, v in pending]) if pending else None
            if vectors is not None and vectors.shape[0] >= min_train:
                most = _SQ_TRAIN_MOST if self.index_type == "sq8" else None
                fresh._adopt(fresh._trained(_training_sample(vectors, most)))
            batches = pending
        for ids, vectors in batches:
            fresh._index.add_with_ids(vectors, ids)
        return fresh

    def wants_rebuild(self) -> bool:
        """Whether a rebuild would pay: masked HNSW nodes pile up, an sq8, IVF or IVF-PQ
        collection has grown large enough to train, or many sq8 vectors were clipped."""
        with self._lock:
            total = int(self._index.ntotal)
            if self._masked and len(self._masked) >= _HNSW_MASKED_SHARE * max(total, 1):
                return True
            if self._clipped and self._clipped >= _SQ_CLIPPED_SHARE * total:
                return True
            min_train = self._min_train()
            return min_train is not None and not self._is_trained() and total >= min_train

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
            self._adopt(other._index)
            self._masked, self._clipped = set(other._masked), other._clipped

    # -- changes -------------------------------------------------------------------------------

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if ids.size == 0:
            return
        with self._lock:
            self._index.add_with_ids(vectors, ids)
            if self._ranges is not None:
                low, high = self._ranges
                self._clipped += int(((vectors < low) | (vectors > high)).any(axis=1).sum())

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
        """About how much memory the index takes: each vector's code (4 bytes a dimension
        stored exactly, 1 for sq8, ``pq_codes`` bytes for ivfpq) and id (with its reverse-map
        entry outside IVF lists), HNSW's links, and what was trained (IVF centroids, PQ
        codebooks, sq8 ranges). Masked vectors count: they are still held."""
        with self._lock:
            return _footprint(self._index)

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
                selector = _allowed_selector(allowed)
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
        written. Changes and searches wait until the file is written (:meth:`write` has them
        wait only for a copy in memory)."""
        faiss = _faiss()

        temporary = path.with_name(f".{path.name}.tmp")
        with self._lock:
            if self._masked:
                self._compact()
            faiss.write_index(self._index, str(temporary))
        fsync_file(temporary)
        os.replace(temporary, path)
        fsync_directory(path.parent)

    def write(self, path: Path) -> None:
        """Write the index to ``path`` and flush it to the disk, for the caller to rename into
        place. The index is copied in memory under the lock (masked vectors compacted away
        first) and the copy written after it, so changes and searches wait for a copy of
        memory, not for the disk; the copy takes about as much memory as the file."""
        image = self._image()
        # a view of the image's memory: the image is kept until the view's last use
        data = _faiss().rev_swig_ptr(image.data.data(), image.data.size())
        with open(path, "wb") as file:
            for start in range(0, data.size, _WRITE_BLOCK):
                file.write(data[start : start + _WRITE_BLOCK])
            file.flush()
            os.fsync(file.fileno())

    def _image(self) -> Any:
        """The index as its file holds it, in memory (a FAISS ``VectorIOWriter``)."""
        faiss = _faiss()

        with self._lock:
            expected = _footprint(self._index, id_bytes=8)
        image = faiss.VectorIOWriter()
        # the memory is taken (and touched) before the lock, so that under it the index is only
        # copied; a little more than the index needs, for the vectors added meanwhile
        image.data.resize(expected + expected // 32 + (1 << 20))
        image.data.resize(0)  # a vector keeps its capacity when it shrinks
        with self._lock:
            if self._masked:
                self._compact()
            faiss.write_index(self._index, image)
        return image

    @classmethod
    def load(cls, path: Path, dimension: int, index_type: str, params: IndexParams) -> VectorIndex:
        """The index saved at ``path``; ``ValueError`` when it is unreadable or of another
        shape or type (the caller rebuilds it from the database)."""
        faiss = _faiss()

        index = cls(dimension, index_type, params)
        try:
            loaded = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ValueError(f"unreadable index file {path.name}: {exc}") from exc
        if loaded.d != dimension:
            raise ValueError(f"index file {path.name} holds {loaded.d}-d vectors, not {dimension}")
        if _kind(loaded) not in _KINDS_OF.get(index_type, ()):
            raise ValueError(f"index file {path.name} holds no {index_type} index")
        index._adopt(loaded)
        return index


#: The FAISS structures (see :func:`_kind`) each index type may be in: the types trained
#: later start exact.
_KINDS_OF = {
    "flat": {"flat"},
    "hnsw": {"hnsw"},
    "ivf": {"flat", "ivf"},
    "sq8": {"flat", "sq8"},
    "ivfpq": {"flat", "ivfpq"},
}


def _kind(index: Any) -> str:
    faiss = _faiss()

    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    if not isinstance(index, faiss.IndexIDMap2):
        return "other"
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(inner, faiss.IndexScalarQuantizer):
        return "sq8"
    return "flat" if isinstance(inner, faiss.IndexFlatIP) else "other"


def _footprint(index: Any, *, id_bytes: int = _ID_MAP_BYTES) -> int:
    """The bytes :attr:`VectorIndex.memory_bytes` reports for a FAISS index of ours; with
    ``id_bytes`` 8, about the size of its file (which holds no reverse id map)."""
    faiss = _faiss()

    total = int(index.ntotal)
    if isinstance(index, faiss.IndexIVF):
        trained = 4 * int(index.nlist) * int(index.d)  # the lists' centroids
        if isinstance(index, faiss.IndexIVFPQ):
            trained += 4 * int(index.pq.centroids.size())
        return trained + total * (int(index.code_size) + 8)
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        graph = inner.hnsw
        links = 4 * (int(graph.neighbors.size()) + int(graph.levels.size()))
        links += 8 * int(graph.offsets.size())
        return links + total * (4 * int(index.d) + id_bytes)
    trained = 0
    if isinstance(inner, faiss.IndexScalarQuantizer):
        trained = 4 * int(inner.sq.trained.size())
    return trained + total * (int(inner.code_size) + id_bytes)


def _quantizer_ranges(index: Any) -> tuple[Vectors, Vectors] | None:
    """Each dimension's (lowest, highest) value an sq8 index encodes without clipping; None
    for the other structures."""
    faiss = _faiss()

    if not isinstance(index, faiss.IndexIDMap2):
        return None
    inner = faiss.downcast_index(index.index)
    if not isinstance(inner, faiss.IndexScalarQuantizer):
        return None
    trained = faiss.vector_to_array(inner.sq.trained).astype(np.float32)
    low, span = trained[: index.d], trained[index.d :]
    return low, low + span


def _training_sample(vectors: Vectors, most: int | None = None) -> Vectors:
    """What a trained index learns from: up to 256 vectors per IVF list (about ``4·√n``
    lists), and at most ``most``; the same draw for the same vectors."""
    rng = np.random.default_rng(0)
    take = min(vectors.shape[0], 256 * int(4 * math.sqrt(vectors.shape[0])))
    if most is not None:
        take = min(take, most)
    return np.ascontiguousarray(vectors[rng.choice(vectors.shape[0], size=take, replace=False)])


def _allowed_selector(allowed: Ids) -> Any:
    """A FAISS selector of the ids in ``allowed``, built for one search.

    A bitmap (a bit per id up to the largest) unless the ids are too sparse for one: building
    it costs about 15 ns an id, and probing it a shift and a mask, so a filtered flat search
    costs no more than an unfiltered one at any selectivity. ``IDSelectorBatch`` first hashes
    every id into a set (about 90 ns an id: 4.7 ms for 50,000), and ``IDSelectorArray`` scans
    the whole list for each vector probed, which is hopeless beyond a few ids."""
    faiss = _faiss()

    allowed = np.asarray(allowed, dtype=np.int64)
    if allowed.size == 0 or int(allowed.min()) < 0:
        return faiss.IDSelectorBatch(allowed)
    highest = int(allowed.max())
    if highest >= max(_BITMAP_BITS_PER_ID * allowed.size, _BITMAP_BITS_ANYWAY):
        return faiss.IDSelectorBatch(allowed)
    bitmap = np.zeros(highest // 8 + 1, dtype=np.uint8)
    np.bitwise_or.at(bitmap, allowed >> 3, np.left_shift(1, allowed & 7).astype(np.uint8))
    return faiss.IDSelectorBitmap(bitmap)


def _faiss() -> Any:
    """The faiss module, imported when first used (its bundled type stubs do not match it)."""
    import faiss

    return faiss
