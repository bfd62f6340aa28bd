"""RAG benchmark: retrieval quality, and the engine's cost over raw FAISS at scale.

(a) Quality on the labelled town set (tests/retrieval.py) with all-MiniLM-L6-v2: recall@5 and
    MRR of vector-only, lexical (BM25) and hybrid (RRF) search.
(b) Scale, for 10k and 100k one-chunk documents embedded by the fake backend (so the numbers
    measure the store, not a model): ingest throughput in documents per second (durable
    batches of 256 through the engine) against adding the same vectors to a bare FAISS index,
    and vector-search latency p50/p99 through the engine (query embedding, index search, reading
    the hits from SQLite) against a bare FAISS search with the same query vectors. Also hybrid
    and filtered search latency. Ratios are engine / raw, measured in the same run.

Every step is checked to have done its work (documents stored, vectors indexed, each search
returning its ``top_k`` hits, filtered hits matching the filter) before a figure is printed; a
failed check exits 1. Run:
``python -m bench.rag [--sizes 10000,100000] [--index flat|hnsw|ivf] [--skip-quality]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import faiss
import numpy as np
from tests.retrieval import labelled_set, mrr, recall_at

from aiplatform.api.rag import (
    CollectionCreateRequest,
    DocumentAddRequest,
    DocumentInput,
    SearchRequest,
)
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from bench.checks import require, require_count, run_bench

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tas",
    "vo",
    "del",
    "ur",
    "sen",
    "pri",
    "nol",
    "ba",
    "fe",
    "gor",
    "il",
    "quin",
    "sta",
    "mu",
]
#: A 5,000-word vocabulary of made-up words, drawn with Zipf frequencies as text is.
WORDS = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES][:5000]
_ZIPF = np.cumsum(1.0 / np.arange(1, len(WORDS) + 1))
_ZIPF /= _ZIPF[-1]
BATCH = 256
QUERIES = 200


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def quality() -> None:
    labelled = labelled_set()
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings())
    with tempfile.TemporaryDirectory() as folder:
        engine = LocalRagEngine(RagSettings(data_dir=folder), embeddings=embeddings)
        async with embeddings, engine:
            created = await engine.invoke(
                rag.CREATE_COLLECTION, CollectionCreateRequest(name="towns")
            )
            added = await engine.invoke(
                rag.ADD_DOCUMENTS,
                DocumentAddRequest(
                    collection_id=created.id,
                    documents=[DocumentInput(id=k, text=t) for k, t in labelled.documents],
                ),
            )
            require_count("labelled documents added", len(added.data), len(labelled.documents))
            relevant = [key for _, key in labelled.queries]
            print(f"(a) retrieval quality: {len(labelled.documents)} documents, "
                  f"{len(labelled.queries)} queries, all-MiniLM-L6-v2")  # fmt: skip
            for mode in ("vector", "lexical", "hybrid"):
                rankings = []
                for query, _ in labelled.queries:
                    request = SearchRequest(collection_id=created.id, query=query, top_k=10)
                    request.mode = mode  # type: ignore[assignment]
                    found = await engine.invoke(rag.SEARCH, request)
                    require(bool(found.data), f"{mode} search for {query!r} found nothing")
                    rankings.append([hit.document_id for hit in found.data])
                line = (
                    f"    {mode:8s} all: recall@5 {recall_at(rankings, relevant, 5):.3f} "
                    f"MRR {mrr(rankings, relevant):.3f}"
                )
                for kind in ("name", "paraphrase", "code"):
                    chosen = [i for i, k in enumerate(labelled.kinds) if k == kind]
                    picked = [rankings[i] for i in chosen]
                    wanted = [relevant[i] for i in chosen]
                    line += (
                        f" | {kind}: R@5 {recall_at(picked, wanted, 5):.2f} "
                        f"MRR {mrr(picked, wanted):.2f}"
                    )
                print(line)


def words(rng: np.random.Generator, count: int) -> str:
    return " ".join(WORDS[i] for i in np.searchsorted(_ZIPF, rng.random(count)))


def corpus(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"item{n} {words(rng, int(rng.integers(12, 40)))}" for n in range(count)]


async def scale(size: int, index: str) -> None:
    texts = corpus(size, seed=size)
    settings = EmbeddingsSettings(backend="fake")
    backend = make_backend(settings)
    backend.load()
    embeddings = LocalEmbeddingsEngine(settings, backend=backend)
    rng = np.random.default_rng(7)
    queries = [words(rng, 4) for _ in range(QUERIES)]
    with tempfile.TemporaryDirectory() as folder:
        engine = LocalRagEngine(RagSettings(data_dir=folder), embeddings=embeddings)
        async with embeddings, engine:
            created = await engine.invoke(
                rag.CREATE_COLLECTION,
                CollectionCreateRequest(name="scale", index=index),  # type: ignore[arg-type]
            )
            started = time.perf_counter()
            for start in range(0, size, BATCH):
                batch = [
                    DocumentInput(text=text, metadata={"shard": n % 10})
                    for n, text in enumerate(texts[start : start + BATCH], start)
                ]
                added = await engine.invoke(
                    rag.ADD_DOCUMENTS,
                    DocumentAddRequest(collection_id=created.id, documents=batch),
                )
                require_count("documents added in a batch", len(added.data), len(batch))
            ingest_s = time.perf_counter() - started
            stored = engine.store
            row = stored.collection("default", "documents", created.id)
            vectors = np.stack(
                list(stored.chunk_vectors(row, stored.matching_chunk_ids(row, {})).values())
            )
            require_count("chunk vectors stored", vectors.shape[0], size)
            latencies: dict[str, list[float]] = {"vector": [], "hybrid": [], "filtered": []}
            for query in queries:
                for label, request in (
                    ("vector", SearchRequest(query=query, mode="vector", top_k=10)),
                    ("hybrid", SearchRequest(query=query, mode="hybrid", top_k=10)),
                    (
                        "filtered",
                        SearchRequest(query=query, mode="vector", top_k=10, filter={"shard": 3}),
                    ),
                ):
                    request.collection_id = created.id
                    began = time.perf_counter()
                    found = await engine.invoke(rag.SEARCH, request)
                    latencies[label].append(time.perf_counter() - began)
                    require_count(f"{label} search hits", len(found.data), 10)
                    if label == "filtered":
                        shards = {hit.metadata.get("shard") for hit in found.data}
                        require(shards == {3}, f"filtered search returned shards {shards}")
    raw_ingest_s, raw_search = raw_faiss(vectors, backend, queries, index)
    docs_per_s = size / ingest_s
    raw_docs_per_s = size / raw_ingest_s
    print(f"(b) {size} chunks, index {index}, dimension {vectors.shape[1]}")
    print(
        f"    ingest: engine {docs_per_s:,.0f} docs/s (durable batches of {BATCH}), "
        f"raw FAISS add {raw_docs_per_s:,.0f} docs/s -> raw is {raw_docs_per_s / docs_per_s:.0f}x"
    )
    raw_p50, raw_p99 = percentile(raw_search, 0.5), percentile(raw_search, 0.99)
    for label, values in latencies.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(
            f"    search {label:8s} p50 {p50 * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms   "
            f"(raw FAISS p50 {raw_p50 * 1e3:.2f} ms, p99 {raw_p99 * 1e3:.2f} ms; "
            f"ratio p50 {p50 / raw_p50:.2f}, p99 {p99 / raw_p99:.2f})"
        )
    mean_overhead = statistics.fmean(latencies["vector"]) - statistics.fmean(raw_search)
    print(f"    mean added latency of a vector search: {mean_overhead * 1e3:.2f} ms")


def raw_faiss(
    vectors: np.ndarray, backend: EmbeddingBackend, queries: list[str], index_type: str
) -> tuple[float, list[float]]:
    """The same vectors in a bare FAISS index of the same type; query vectors from the same
    embedding backend (embedding them is left out of the timing, as FAISS never does it)."""
    dimension = vectors.shape[1]
    if index_type == "hnsw":
        index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT))
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    started = time.perf_counter()
    for start in range(0, vectors.shape[0], BATCH):
        index.add_with_ids(vectors[start : start + BATCH], ids[start : start + BATCH])
    ingest_s = time.perf_counter() - started
    query_vectors = np.asarray(backend.encode(queries).vectors, dtype=np.float32)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    latencies = []
    for row in query_vectors:
        began = time.perf_counter()
        _, found = index.search(row[None, :], 10)
        latencies.append(time.perf_counter() - began)
        require(bool((found >= 0).all()), "raw FAISS returned fewer than 10 hits")
    return ingest_s, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--index", default="flat", choices=["flat", "hnsw", "ivf"])
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    if not args.skip_quality:
        await quality()
    for size in (int(value) for value in args.sizes.split(",")):
        await scale(size, args.index)


if __name__ == "__main__":
    run_bench(lambda: asyncio.run(main()))
