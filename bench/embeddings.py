"""Embeddings benchmark: server throughput vs offline batching, and the cost of remote mode.

(a) Requests/s with 1, 8 and 32 concurrent clients, each sending one sentence per request, to
    ``aiplatform serve`` on the real model, against offline ``SentenceTransformer.encode`` of the
    same sentences in batches (sentences/s) measured in the same run. Target: >= 0.8 at 32.
(b) Latency added by remote mode: the same single-sentence requests sent to a pod
    (``--engines embeddings``, engine in-process) and to a gateway forwarding to that pod,
    interleaved. Target: <= 1 ms added at p50. Measured on the real model and on the fake
    backend (which isolates the forwarding cost).

Load comes from :mod:`bench.loadgen`, a raw keep-alive HTTP/1.1 client that leaves nearly all
of the machine to the server. Run: ``python -m bench.embeddings`` (after ``make install-test``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from tests.support import ServerProcess

from bench.loadgen import post_json_requests, run_load


def sentences(count: int) -> list[str]:
    subjects = ["The cat", "A scientist", "Our team", "The market", "My neighbour", "The river"]
    verbs = ["watched", "measured", "built", "predicted", "painted", "crossed"]
    objects = [
        "the old bridge",
        "a quiet garden",
        "the new model",
        "seven red boxes",
        "the morning train",
        "a long report",
    ]
    return [
        f"{subjects[i % 6]} {verbs[(i // 6) % 6]} {objects[(i // 36) % 6]} on day {i}."
        for i in range(count)
    ]


def offline_rate(texts: list[str], batch_size: int) -> float:
    from sentence_transformers import SentenceTransformer

    from aiplatform.engines.embeddings.sbert import shipped_model_path

    model = SentenceTransformer(str(shipped_model_path()), device="cpu", local_files_only=True)
    model.encode(texts[:64], batch_size=batch_size)  # warm up
    start = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - start)


def embedding_requests(url: str, texts: list[str]) -> list[bytes]:
    return post_json_requests(
        url, "/v1/embeddings", [json.dumps({"input": text}).encode() for text in texts]
    )


def served_rate(url: str, texts: list[str], concurrency: int) -> float:
    requests = embedding_requests(url, texts)
    asyncio.run(run_load(url, requests[: 4 * concurrency], concurrency))  # warm up
    rate, _ = asyncio.run(run_load(url, requests, concurrency))
    return rate


def latencies(urls: dict[str, str], count: int, block: int = 20) -> dict[str, list[float]]:
    """Sequential single-sentence latencies, alternating between the URLs in blocks."""
    texts = sentences(count)
    out: dict[str, list[float]] = {name: [] for name in urls}
    for url in urls.values():
        asyncio.run(run_load(url, embedding_requests(url, texts[:block]), 1))  # warm up
    for start in range(0, count, block):
        for name, url in urls.items():
            requests = embedding_requests(url, texts[start : start + block])
            out[name].extend(asyncio.run(run_load(url, requests, 1))[1])
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report_latency(label: str, samples: dict[str, list[float]]) -> None:
    local, remote = samples["local"], samples["remote"]
    for q in (50, 99):
        lq, rq = percentile(local, q), percentile(remote, q)
        print(
            f"  {label:<22} p{q}: local {lq:7.2f} ms  remote {rq:7.2f} ms  added {rq - lq:+.2f} ms"
        )


def throughput(texts: list[str], levels: list[int], batch_size: int) -> None:
    print(f"(a) throughput, {len(texts)} single-sentence requests, all-MiniLM-L6-v2 on CPU")
    baseline = offline_rate(texts, batch_size)
    print(f"  offline encode(batch_size={batch_size}): {baseline:8.1f} sentences/s")
    server = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__MAX_BATCH_SIZE": str(batch_size)})
    server.start()
    try:
        for level in levels:
            rate = served_rate(server.url, texts, level)
            ratio = rate / baseline
            print(f"  server, {level:>2} clients:          {rate:8.1f} req/s   ratio {ratio:.2f}")
    finally:
        server.stop()


def remote_overhead(count: int) -> None:
    print(f"(b) latency added by remote mode, {count} sequential requests")
    for label, env in (
        ("all-MiniLM-L6-v2", {}),
        ("fake backend", {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake"}),
    ):
        pod = ServerProcess(["--engines", "embeddings"], env)
        pod.start()
        gateway = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url})
        gateway.start()
        try:
            report_latency(label, latencies({"local": pod.url, "remote": gateway.url}, count))
        finally:
            gateway.stop()
            pod.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=768)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--skip-throughput", action="store_true", help="run part (b) only")
    args = parser.parse_args()
    if not args.skip_throughput:
        levels = [int(level) for level in args.concurrency.split(",")]
        throughput(sentences(args.sentences), levels, args.batch_size)
    remote_overhead(args.latency_requests)


if __name__ == "__main__":
    main()
