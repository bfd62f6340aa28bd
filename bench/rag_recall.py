"""RAG index types compared: how much of exact search each finds, the memory it takes, and how
fast it answers, for ``flat``, ``hnsw``, ``ivf``, ``sq8`` and ``ivfpq``.

(a) Real embeddings, through the engine: the labelled town set (tests/retrieval.py) embedded
    with all-MiniLM-L6-v2, in one collection per index type. It holds 24 documents, too few to
    train on, so each collection also takes ``--fillers`` Python standard-library docstrings
    (first paragraphs, natural English on other subjects) and the engine runs with
    ``RagSettings(ivf_min_train=256)``: the ivf and ivfpq collections are clustered, the sq8
    one quantized (past ``sq_min_train``), before anything is measured. Per type: recall@10 of
    the labelled queries' top 10 against the flat collection's, recall@5 and MRR of the
    labelled answers, and memory per vector.
(b) Synthetic scale, on the index alone: ``--size`` unit vectors at 384 dimensions around
    1,000 random centres (neighbours about as similar as embeddings of related texts), queries
    the stored vectors moved a little. Per type: build time (adds, then the training rebuild
    the store would run), recall@10 against flat, memory per vector, and single-query search
    p50 (wall clock, and CPU time, which waiting for a shared core does not inflate); and for
    ivfpq, what re-scoring 4x its candidates with the exact vectors would recover.
(c) Filtered flat search on the same vectors with 1 %, 10 % and 50 % of the ids allowed: the
    index's own search (a bitmap of the allowed ids) against an unfiltered search, and against
    FAISS's ``IDSelectorBatch`` (a hash set) and ``IDSelectorArray`` (a list scanned per
    probe) built per query, as the index could.

Every step is checked (documents stored, indexes trained, each search answering its 10 hits,
filtered hits among the allowed ids) before a figure is printed; a failed check exits 1. Run:
``python -m bench.rag_recall [--size 100000] [--fillers 1000] [--skip-labelled]
[--skip-synthetic]``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tests.retrieval import labelled_set, mrr, recall_at

from aiplatform.api.rag import (
    CollectionCreateRequest,
    DocumentAddRequest,
    DocumentInput,
    SearchRequest,
)
from aiplatform.engines.embeddings.backend import EmbeddingBackend, EncodedBatch
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.index import Ids, IndexParams, VectorIndex, Vectors
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.rag.sqlite_store import SqliteStore
from bench.checks import require, require_count, run_bench

TYPES = ["flat", "hnsw", "ivf", "sq8", "ivfpq"]
TRAINED = {"ivf", "sq8", "ivfpq"}
DIMENSION = 384
QUERIES = 200
BATCH = 256
#: Seconds the engine gets to train a collection in the background.
TRAIN_DEADLINE_S = 300.0


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Timings:
    """Wall-clock and CPU seconds (of all the process's threads) of repeated calls. On a
    shared machine the wall clock also counts the time spent waiting for a core; the CPU time
    does not, so the two together show what a search costs and what it took here."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextmanager
    def measure(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)

    @property
    def cpu_p50(self) -> float:
        return percentile(self.cpu, 0.5)

    def p50(self) -> str:
        wall = percentile(self.wall, 0.5)
        return f"p50 {wall * 1e3:6.2f} ms (CPU {self.cpu_p50 * 1e3:6.2f} ms)"


def overlap_at_10(found: Sequence[Sequence[Any]], exact: Sequence[Sequence[Any]]) -> float:
    """Recall@10 against exact search: the share of exact top-10 hits also found."""
    shares = [len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(found, exact, strict=True)]
    return float(np.mean(shares))


# -- (a) the labelled set through the engine ---------------------------------------------------


class CachedBackend:
    """The real model behind a memo: a text is embedded once, however many collections (one
    per index type) take it."""

    def __init__(self, inner: EmbeddingBackend) -> None:
        self._inner = inner
        self._cache: dict[str, tuple[Vectors, int]] = {}

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    def load(self) -> None:
        self._inner.load()

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        missing = [text for text in dict.fromkeys(texts) if text not in self._cache]
        if missing:
            batch = self._inner.encode(missing)
            for text, vector, count in zip(missing, batch.vectors, batch.token_counts, strict=True):
                self._cache[text] = (vector, count)
        vectors = np.stack([self._cache[text][0] for text in texts])
        return EncodedBatch(vectors, [self._cache[text][1] for text in texts])

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self._inner.detokenize(token_ids)


def docstrings(count: int) -> list[str]:
    """``count`` first paragraphs of standard-library docstrings, spread over the library."""
    found: set[str] = set()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                text = ast.get_docstring(node)
                paragraph = " ".join(text.split("\n\n")[0].split()) if text else ""
                if 40 <= len(paragraph) <= 400:
                    found.add(paragraph)
    ordered = sorted(found)
    require(len(ordered) >= count, f"only {len(ordered)} docstrings for {count} fillers")
    return [ordered[i] for i in np.linspace(0, len(ordered) - 1, count).astype(int)]


async def labelled(fillers: int) -> None:
    labelled = labelled_set()
    documents = [DocumentInput(id=key, text=text) for key, text in labelled.documents]
    documents += [
        DocumentInput(id=f"filler-{n}", text=t) for n, t in enumerate(docstrings(fillers))
    ]
    settings = EmbeddingsSettings()
    embeddings = LocalEmbeddingsEngine(settings, backend=CachedBackend(make_backend(settings)))
    relevant = [key for _, key in labelled.queries]
    rankings: dict[str, list[list[str]]] = {}
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        engine = LocalRagEngine(
            RagSettings(data_dir=folder, ivf_min_train=256), embeddings=embeddings
        )
        async with embeddings, engine:
            for index_type in TYPES:
                collection = await filled_collection(engine, index_type, documents)
                memory[index_type] = await trained_memory(engine, collection, index_type)
                rankings[index_type] = []
                for query, _ in labelled.queries:
                    request = SearchRequest(
                        collection_id=collection, query=query, top_k=10, mode="vector"
                    )
                    found = await engine.invoke(rag.SEARCH, request)
                    require_count(f"{index_type} hits for {query!r}", len(found.data), 10)
                    rankings[index_type].append([hit.document_id for hit in found.data])
    print(
        f"(a) labelled set: {len(labelled.documents)} towns + {fillers} docstring fillers, "
        f"{len(labelled.queries)} queries, all-MiniLM-L6-v2, RagSettings(ivf_min_train=256)"
    )
    for index_type in TYPES:
        ranked = rankings[index_type]
        print(
            f"    {index_type:6s} recall@10 vs flat {overlap_at_10(ranked, rankings['flat']):.3f}"
            f"  answers: recall@5 {recall_at(ranked, relevant, 5):.3f}"
            f" MRR {mrr(ranked, relevant):.3f}"
            f"  memory {memory[index_type]:7.1f} B/vector"
        )


async def filled_collection(
    engine: LocalRagEngine, index_type: str, documents: list[DocumentInput]
) -> str:
    created = await engine.invoke(
        rag.CREATE_COLLECTION,
        CollectionCreateRequest(name=f"towns-{index_type}", index=index_type),  # type: ignore[arg-type]
    )
    for start in range(0, len(documents), BATCH):
        batch = documents[start : start + BATCH]
        added = await engine.invoke(
            rag.ADD_DOCUMENTS, DocumentAddRequest(collection_id=created.id, documents=batch)
        )
        require_count(f"{index_type} documents added", len(added.data), len(batch))
    return created.id


async def trained_memory(engine: LocalRagEngine, collection: str, index_type: str) -> float:
    """Memory per vector of the collection's index, once the engine has trained it."""
    store = engine.store
    require(isinstance(store, SqliteStore), "the labelled run needs the embedded store")
    assert isinstance(store, SqliteStore)
    index = store.index_of(store.collection("default", "documents", collection))
    deadline = time.monotonic() + TRAIN_DEADLINE_S
    while not index.is_trained and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        index = store.index_of(store.collection("default", "documents", collection))
    require(index.is_trained, f"the {index_type} collection was not trained")
    return index.memory_bytes / index.size


# -- (b) synthetic vectors on the index alone --------------------------------------------------


def clustered(count: int, seed: int) -> Vectors:
    """Unit vectors around 1,000 random centres: two of a cluster have a cosine of about 0.6."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIMENSION), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = centres[rng.integers(0, 1000, count)]
    rows += rng.standard_normal((count, DIMENSION), dtype=np.float32) * (0.8 / DIMENSION**0.5)
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)


def perturbed(vectors: Vectors, seed: int) -> Vectors:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(vectors.shape, dtype=np.float32) * (0.3 / DIMENSION**0.5)
    moved = vectors + noise
    return np.asarray(moved / np.linalg.norm(moved, axis=1, keepdims=True), dtype=np.float32)


def built(index_type: str, ids: Ids, vectors: Vectors) -> tuple[VectorIndex, float]:
    """The index the store would hold: vectors added in batches, then the training rebuild it
    asks for (default parameters)."""
    started = time.perf_counter()
    index = VectorIndex(DIMENSION, index_type, IndexParams())
    for start in range(0, ids.size, 4096):
        index.add(ids[start : start + 4096], vectors[start : start + 4096])
    if index.wants_rebuild():
        index.replace_with(index.rebuilt([(ids, vectors)], ids.size))
    require_count(f"{index_type} vectors indexed", index.size, ids.size)
    require(index.is_trained, f"the {index_type} index was not trained")
    return index, time.perf_counter() - started


def searched(index: VectorIndex, queries: Vectors, k: int) -> tuple[list[list[int]], Timings]:
    rankings, timings = [], Timings()
    for query in queries:
        with timings.measure():
            _, ids = index.search(query[None, :], k)
        require_count("hits of a search", ids.size, k)
        rankings.append([int(i) for i in ids])
    return rankings, timings


def synthetic(size: int) -> tuple[VectorIndex, Vectors, Vectors]:
    vectors = clustered(size, seed=1)
    ids = np.arange(1, size + 1, dtype=np.int64)
    rng = np.random.default_rng(2)
    queries = perturbed(vectors[rng.choice(size, QUERIES, replace=False)], seed=3)
    print(f"(b) {size:,} clustered unit vectors, {DIMENSION} dimensions, {QUERIES} queries")
    exact: list[list[int]] = []
    flat: VectorIndex | None = None
    for index_type in TYPES:
        index, build_s = built(index_type, ids, vectors)
        rankings, timings = searched(index, queries, 10)
        if index_type == "flat":
            flat, exact = index, rankings
        print(
            f"    {index_type:6s} recall@10 vs flat {overlap_at_10(rankings, exact):.3f}"
            f"  memory {index.memory_bytes / index.size:7.1f} B/vector"
            f"  search {timings.p50()}"
            f"  build {build_s:5.1f} s"
        )
        if index_type == "ivfpq":
            rescored = [rescore(index, vectors, query) for query in queries]
            print(
                f"           ivfpq with 40 candidates re-scored exactly: recall@10 vs flat "
                f"{overlap_at_10(rescored, exact):.3f}"
            )
        del index
    assert flat is not None
    return flat, vectors, queries


def rescore(index: VectorIndex, vectors: Vectors, query: Vectors) -> list[int]:
    """The 10 best of ivfpq's 40 best by exact similarity (the store keeps the vectors)."""
    _, candidates = index.search(query[None, :], 40)
    require_count("ivfpq candidates", candidates.size, 40)
    exact = vectors[candidates - 1] @ query  # id n is row n - 1
    return [int(i) for i in candidates[np.argsort(-exact)[:10]]]


# -- (c) filtered flat search ------------------------------------------------------------------


def filtered(flat: VectorIndex, vectors: Vectors, queries: Vectors) -> None:
    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    ids = np.arange(1, vectors.shape[0] + 1, dtype=np.int64)
    raw.add_with_ids(vectors, ids)
    sample = queries[:50]
    _, unfiltered = searched(flat, sample, 10)
    print(f"(c) filtered flat search, {vectors.shape[0]:,} vectors, {len(sample)} queries")
    print(f"    unfiltered: {unfiltered.p50()}")
    rng = np.random.default_rng(4)
    for share in (0.01, 0.1, 0.5):
        allowed = np.sort(rng.choice(ids, int(share * ids.size), replace=False))
        members = set(allowed.tolist())
        ours, timings = [], Timings()
        for query in sample:
            with timings.measure():
                _, found = flat.search(query[None, :], 10, allowed)
            require(set(found.tolist()) <= members, "a filtered search left the allowed ids")
            require_count("filtered hits", found.size, 10)
            ours.append(found.tolist())
        print(
            f"    {share:4.0%} allowed: index (bitmap) {timings.p50()}, "
            f"CPU {timings.cpu_p50 / unfiltered.cpu_p50:.2f}x unfiltered"
        )
        for name, make, count in (
            ("IDSelectorBatch", faiss.IDSelectorBatch, len(sample)),
            ("IDSelectorArray", faiss.IDSelectorArray, 3),
        ):
            times, same = raw_filtered(raw, sample[:count], allowed, make, ours[:count])
            require(same, f"{name} found other hits than the index's filtered search")
            print(f"          {name} per query ({count} queries): {times.p50()}")


def raw_filtered(
    raw: Any,
    queries: Vectors,
    allowed: Any,
    make: Callable[[Any], Any],
    expected: list[list[int]],
) -> tuple[Timings, bool]:
    """Searches of the bare FAISS index through ``make(allowed)``, built per query."""
    times, same = Timings(), True
    for query, wanted in zip(queries, expected, strict=True):
        with times.measure():
            params = faiss.SearchParameters()
            params.sel = make(allowed)
            _, found = raw.search(query[None, :], 10, params=params)
        same = same and found[0].tolist() == wanted
    return times, same


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--fillers", type=int, default=IndexParams().sq_min_train)
    parser.add_argument("--skip-labelled", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    if not args.skip_labelled:
        await labelled(args.fillers)
    if not args.skip_synthetic:
        flat, vectors, queries = synthetic(args.size)
        filtered(flat, vectors, queries)


if __name__ == "__main__":
    run_bench(lambda: asyncio.run(main()))
