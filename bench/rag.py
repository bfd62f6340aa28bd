"""RAG benchmark: retrieval quality, and the engine's cost over raw FAISS at scale, for each
store (the embedded SQLite one, and PostgreSQL + pgvector on a throwaway ``pgserver``).

(a) Quality on the labelled town set (tests/retrieval.py) with all-MiniLM-L6-v2: recall@5 and
    MRR of vector-only, lexical (BM25) and hybrid (RRF) search; the floor is hybrid recall@5
    0.958 and MRR 0.915.
(b) Scale, for one-chunk documents embedded by the fake backend (so the numbers measure the
    store, not a model): ingest throughput in chunks per second (durable batches of 256 through
    the engine; target >= 5,000), and the p50/p99 latency through the engine (query embedding,
    search, reading the hits) of vector, hybrid and filtered searches (a filter matching 10 %
    and one matching 1 % of the chunks), each against a bare FAISS flat search of the same
    vectors with the same query vectors, measured in the same run. Targets: hybrid p50 <= 1.5x
    raw FAISS, filtered p50 <= 2x.

Every step is checked to have done its work (documents stored, each search returning its
``top_k`` hits, filtered hits matching the filter) before a figure is printed; a failed check
exits 1. Run: ``python -m bench.rag [--sizes 100000,1000000] [--postgres-sizes 100000,1000000]
[--stores sqlite,postgres] [--index flat|hnsw|ivf|sq8|ivfpq] [--skip-quality]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faiss
import numpy as np
from tests.retrieval import labelled_set, mrr, recall_at
from tests.unit.auth_store.postgres_server import postgres_server

from aiplatform.api.rag import (
    CollectionCreateRequest,
    CollectionRef,
    DocumentAddRequest,
    DocumentInput,
    SearchRequest,
)
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.index import IndexParams
from aiplatform.engines.rag.postgres_store import PostgresStore
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.tenant import current_tenant
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


QUALITY_FLOOR = (0.958, 0.915)
#: Targets: ingest chunks/s, hybrid and filtered p50 over raw FAISS.
INGEST_TARGET = 5000
HYBRID_TARGET = 1.5
FILTERED_TARGET = 2.0


@contextmanager
def rag_settings(
    store: str, folder: str, index_memory_mb: int | None = 4096
) -> Iterator[RagSettings]:
    """The engine's settings for ``store``: files under ``folder``, or a fresh PostgreSQL."""
    if store == "sqlite":
        yield RagSettings(data_dir=folder, index_memory_mb=index_memory_mb)
        return
    with postgres_server() as url:
        yield RagSettings(data_dir=folder, store="postgres", database_url=url)


async def quality(store: str) -> None:
    labelled = labelled_set()
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings())
    with tempfile.TemporaryDirectory() as folder, rag_settings(store, folder) as settings:
        engine = LocalRagEngine(settings, embeddings=embeddings)
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
            print(f"(a) {store}: retrieval quality: {len(labelled.documents)} documents, "
                  f"{len(labelled.queries)} queries, all-MiniLM-L6-v2")  # fmt: skip
            for mode in ("vector", "lexical", "hybrid"):
                rankings = []
                for query, _ in labelled.queries:
                    request = SearchRequest(collection_id=created.id, query=query, top_k=10)
                    request.mode = mode  # type: ignore[assignment]
                    found = await engine.invoke(rag.SEARCH, request)
                    # words may match nothing (the miss counts against lexical recall)
                    require(
                        bool(found.data) or mode == "lexical",
                        f"{mode} search for {query!r} found nothing",
                    )
                    rankings.append([hit.document_id for hit in found.data])
                recall, rank = recall_at(rankings, relevant, 5), mrr(rankings, relevant)
                line = f"    {mode:8s} all: recall@5 {recall:.3f} MRR {rank:.3f}"
                for kind in ("name", "paraphrase", "code"):
                    chosen = [i for i, k in enumerate(labelled.kinds) if k == kind]
                    picked = [rankings[i] for i in chosen]
                    wanted = [relevant[i] for i in chosen]
                    line += (
                        f" | {kind}: R@5 {recall_at(picked, wanted, 5):.2f} "
                        f"MRR {mrr(picked, wanted):.2f}"
                    )
                print(line)
                if mode == "hybrid":
                    # compared as printed: the floor is today's figures to three places
                    floor = (
                        round(recall, 3) >= QUALITY_FLOOR[0] and round(rank, 3) >= QUALITY_FLOOR[1]
                    )
                    print(
                        f"    target: hybrid recall@5 >= {QUALITY_FLOOR[0]} and MRR >= "
                        f"{QUALITY_FLOOR[1]}: {_verdict(floor)}"
                    )


def words(rng: np.random.Generator, count: int) -> str:
    return " ".join(WORDS[i] for i in np.searchsorted(_ZIPF, rng.random(count)))


def corpus(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"item{n} {words(rng, int(rng.integers(12, 40)))}" for n in range(count)]


#: Filters of the scale runs: the label, the filter, and what each hit's metadata must hold.
FILTERS: list[tuple[str, dict[str, Any], str, set[int]]] = [
    ("filter 10%", {"shard": 3}, "shard", {3}),
    ("filter 1%", {"rank": {"$lt": 1}}, "rank", {0}),
]


async def scale(store: str, size: int, index: str) -> None:
    texts = corpus(size, seed=size)
    settings = EmbeddingsSettings(backend="fake")
    backend = make_backend(settings)
    backend.load()
    embeddings = LocalEmbeddingsEngine(settings, backend=backend)
    rng = np.random.default_rng(7)
    queries = [words(rng, 4) for _ in range(QUERIES)]
    latencies: dict[str, list[float]] = {"vector": [], "hybrid": [], **{f[0]: [] for f in FILTERS}}
    with tempfile.TemporaryDirectory() as folder, rag_settings(store, folder, None) as rag_setup:
        engine = LocalRagEngine(rag_setup, embeddings=embeddings)
        async with embeddings, engine:
            created = await engine.invoke(
                rag.CREATE_COLLECTION,
                CollectionCreateRequest(name="scale", index=index),  # type: ignore[arg-type]
            )
            started = time.perf_counter()
            for start in range(0, size, BATCH):
                batch = [
                    DocumentInput(text=text, metadata={"shard": n % 10, "rank": n % 100})
                    for n, text in enumerate(texts[start : start + BATCH], start)
                ]
                added = await engine.invoke(
                    rag.ADD_DOCUMENTS,
                    DocumentAddRequest(collection_id=created.id, documents=batch),
                )
                require_count("documents added in a batch", len(added.data), len(batch))
            ingest_s = time.perf_counter() - started
            listed = await engine.invoke(
                rag.GET_COLLECTION, CollectionRef(collection_id=created.id)
            )
            require_count("chunks stored", listed.chunk_count, size)
            if rag_setup.database_url is not None:
                await another_replica(engine, rag_setup.database_url, created.id, size)
            raw_index, raw_ingest_s = raw_faiss(texts, backend)
            query_vectors = _unit(np.asarray(backend.encode(queries).vectors))
            raw_search: list[float] = []
            # raw and engine searches interleaved, so that both see the same machine
            for query, vector in zip(queries, query_vectors, strict=True):
                began = time.perf_counter()
                _, found_ids = raw_index.search(vector[None, :], 10)
                raw_search.append(time.perf_counter() - began)
                require(bool((found_ids >= 0).all()), "raw FAISS returned fewer than 10 hits")
                for label, request, wanted in _requests(query):
                    request.collection_id = created.id
                    began = time.perf_counter()
                    found = await engine.invoke(rag.SEARCH, request)
                    latencies[label].append(time.perf_counter() - began)
                    require_count(f"{label} search hits", len(found.data), 10)
                    if wanted is not None:
                        key, values = wanted
                        seen = {hit.metadata.get(key) for hit in found.data}
                        require(seen <= values, f"{label} search returned {key} {seen}")
    chunks_per_s = size / ingest_s
    print(f"(b) {store}: {size:,} chunks, index {index}, dimension {backend.dimension}")
    print(
        f"    ingest: engine {chunks_per_s:,.0f} chunks/s (durable batches of {BATCH}), raw "
        f"FAISS add {size / raw_ingest_s:,.0f} chunks/s; target >= {INGEST_TARGET:,}: "
        f"{_verdict(chunks_per_s >= INGEST_TARGET)}"
    )
    raw_p50, raw_p99 = percentile(raw_search, 0.5), percentile(raw_search, 0.99)
    print(f"    raw FAISS flat search p50 {raw_p50 * 1e3:.2f} ms, p99 {raw_p99 * 1e3:.2f} ms")
    for label, values in latencies.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        target = (
            HYBRID_TARGET if label == "hybrid" else FILTERED_TARGET if "filter" in label else None
        )
        verdict = f"; target <= {target}: {_verdict(p50 / raw_p50 <= target)}" if target else ""
        print(
            f"    search {label:10s} p50 {p50 * 1e3:7.2f} ms  p99 {p99 * 1e3:7.2f} ms   "
            f"ratio to raw FAISS p50 {p50 / raw_p50:.2f}, p99 {p99 / raw_p99:.2f}{verdict}"
        )
    mean_overhead = statistics.fmean(latencies["vector"]) - statistics.fmean(raw_search)
    print(f"    mean added latency of a vector search: {mean_overhead * 1e3:.2f} ms")


async def another_replica(
    engine: LocalRagEngine, database_url: str, collection_id: str, size: int
) -> None:
    """PostgreSQL: what a second replica pays for the collection the engine just filled — its
    first search builds its indexes from the database; after a batch written through the
    engine, its next search catches them up from the change log."""
    replica = PostgresStore(database_url, IndexParams())
    replica.open()
    try:
        row = replica.collection(current_tenant(), "documents", collection_id)
        started = time.perf_counter()
        built = replica.indexes.current(row)
        build_s = time.perf_counter() - started
        require_count("chunks the second replica indexed", built.index.size, size)
        batch = [DocumentInput(text=text) for text in corpus(BATCH, seed=-1 % 2**32)]
        await engine.invoke(
            rag.ADD_DOCUMENTS, DocumentAddRequest(collection_id=collection_id, documents=batch)
        )
        started = time.perf_counter()
        caught_up = replica.indexes.current(row)
        catch_up_s = time.perf_counter() - started
        require_count("chunks after catching up", caught_up.index.size, size + BATCH)
        started = time.perf_counter()
        replica.indexes.current(row)
        check_s = time.perf_counter() - started
    finally:
        replica.close()
    print(
        f"    second replica: indexes built from the database in {build_s:.1f} s "
        f"({size / build_s:,.0f} chunks/s); caught up with a batch of {BATCH} written "
        f"through the first in {catch_up_s * 1e3:.1f} ms; the version check of a search "
        f"with nothing to catch up {check_s * 1e3:.2f} ms"
    )


def _requests(query: str) -> list[tuple[str, SearchRequest, tuple[str, set[int]] | None]]:
    requests: list[tuple[str, SearchRequest, tuple[str, set[int]] | None]] = [
        ("vector", SearchRequest(query=query, mode="vector", top_k=10), None),
        ("hybrid", SearchRequest(query=query, mode="hybrid", top_k=10), None),
    ]
    for label, spec, key, values in FILTERS:
        request = SearchRequest(query=query, mode="vector", top_k=10, filter=spec)
        requests.append((label, request, (key, values)))
    return requests


def raw_faiss(texts: list[str], backend: EmbeddingBackend) -> tuple[Any, float]:
    """The same vectors (embedded by the same backend, unit length as the engine stores them)
    in a bare FAISS flat index, and the seconds adding them took."""
    vectors = _unit(
        np.concatenate(
            [
                backend.encode(texts[start : start + 4096]).vectors
                for start in range(0, len(texts), 4096)
            ]
        )
    )
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    started = time.perf_counter()
    for start in range(0, vectors.shape[0], BATCH):
        index.add_with_ids(vectors[start : start + BATCH], ids[start : start + BATCH])
    return index, time.perf_counter() - started


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="chunks, SQLite store")
    parser.add_argument(
        "--postgres-sizes", default="100000,1000000", help="chunks, PostgreSQL store"
    )
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--index", default="flat", choices=["flat", "hnsw", "ivf", "sq8", "ivfpq"])
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    for store in args.stores.split(","):
        if not args.skip_quality:
            await quality(store)
        sizes = args.sizes if store == "sqlite" else args.postgres_sizes
        for size in (int(value) for value in sizes.split(",") if value):
            await scale(store, size, args.index)


if __name__ == "__main__":
    run_bench(lambda: asyncio.run(main()))
