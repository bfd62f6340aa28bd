"""Embeddings benchmark: server throughput vs offline batching, and the cost of remote mode.

(a) Requests/s with 1, 8 and 32 concurrent clients, each sending one sentence per request, to
    ``aiplatform serve`` on the real model, against offline ``SentenceTransformer.encode`` of the
    same sentences in batches (sentences/s) measured in the same run. Target: >= 0.8 at 32.
(b) Latency added by remote mode: the same single-sentence requests sent to a pod
    (``--engines embeddings``, engine in-process) and to a gateway forwarding to that pod,
    interleaved. Target: <= 1 ms added at p50. Measured on the real model and on the fake
    backend (which isolates the forwarding cost).

Run: ``python -m bench.embeddings`` (after ``make install``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from tests.support import ServerProcess


def sentences(count: int) -> list[str]:
    subjects = ["The cat", "A scientist", "Our team", "The market", "My neighbour", "The river"]
    verbs = ["watched", "measured", "built", "predicted", "painted", "crossed"]
    objects = ["the old bridge", "a quiet garden", "the new model", "seven red boxes",
               "the morning train", "a long report"]
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


async def served_rate(url: str, texts: list[str], concurrency: int) -> float:
    queue = list(reversed(texts))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await client.post("/v1/embeddings", json={"input": "warm up"})

        async def worker() -> None:
            while queue:
                text = queue.pop()
                response = await client.post("/v1/embeddings", json={"input": text})
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(texts) / (time.perf_counter() - start)


async def latencies(urls: dict[str, str], text_count: int) -> dict[str, list[float]]:
    texts = sentences(text_count)
    out: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.AsyncClient(base_url=url, timeout=60) for name, url in urls.items()}
    try:
        for client in clients.values():
            for _ in range(20):
                await client.post("/v1/embeddings", json={"input": "warm up"})
        for text in texts:
            for name, client in clients.items():
                start = time.perf_counter()
                response = await client.post("/v1/embeddings", json={"input": text})
                out[name].append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
    finally:
        for client in clients.values():
            await client.aclose()
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report_latency(label: str, samples: dict[str, list[float]]) -> None:
    local, remote = samples["local"], samples["remote"]
    for q in (50, 99):
        lq, rq = percentile(local, q), percentile(remote, q)
        print(f"  {label:<22} p{q}: local {lq:7.2f} ms  remote {rq:7.2f} ms  added {rq - lq:+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=768)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--latency-requests", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    texts = sentences(args.sentences)
    levels = [int(level) for level in args.concurrency.split(",")]

    print(f"(a) throughput, {len(texts)} single-sentence requests, all-MiniLM-L6-v2 on CPU")
    baseline = offline_rate(texts, args.batch_size)
    print(f"  offline encode(batch_size={args.batch_size}): {baseline:8.1f} sentences/s")
    server = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__MAX_BATCH_SIZE": str(args.batch_size)})
    server.start()
    try:
        for level in levels:
            rate = asyncio.run(served_rate(server.url, texts, level))
            print(f"  server, {level:>2} clients:          {rate:8.1f} req/s   ratio {rate / baseline:.2f}")
    finally:
        server.stop()

    print(f"(b) latency added by remote mode, {args.latency_requests} sequential requests")
    for label, env in (
        ("all-MiniLM-L6-v2", {}),
        ("fake backend", {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake"}),
    ):
        pod = ServerProcess(["--engines", "embeddings"], env)
        pod.start()
        gateway = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url})
        gateway.start()
        try:
            samples = asyncio.run(
                latencies({"local": pod.url, "remote": gateway.url}, args.latency_requests)
            )
            report_latency(label, samples)
        finally:
            gateway.stop()
            pod.stop()


if __name__ == "__main__":
    main()
