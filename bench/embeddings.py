"""Embeddings benchmark: server throughput vs offline batching, and the cost of remote mode.

(a) Requests/s with 1, 8 and 32 concurrent clients, each sending one sentence per request, to
    ``aiplatform serve`` on the real model, against offline ``SentenceTransformer.encode`` of the
    same sentences in batches (sentences/s) measured in the same run. Target: >= 0.8 at 32.
(b) Latency added by remote mode: the same single-sentence requests sent to a pod
    (``--engines embeddings``, engine in-process) and to a gateway forwarding to that pod,
    interleaved with round trips of the bare hop -- an aiohttp client (the gateway's wire, on
    the gateway's event loop) to a trivial ASGI app on uvicorn (:mod:`bench.loopback`) -- in
    the same run. The added p50 (remote minus local) over the bare round trip's p50 is the
    figure; target: <= 3 (a gateway costs at most three bare hops). Measured on the real model
    and on the fake backend (which isolates the forwarding cost).

Every response is checked (200, one vector of the model's dimension) before a figure is
printed; a failed check exits 1. Load comes from :mod:`bench.loadgen`, a raw keep-alive
HTTP/1.1 client that leaves nearly all of the machine to the server. Run:
``python -m bench.embeddings`` (after ``make install-test``); quick:
``python -m bench.embeddings --skip-throughput --fake-only --latency-requests 300``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import msgspec
from tests.support import ServerProcess

from bench.checks import require, require_count, require_status, run_bench
from bench.loadgen import Connection, check_answers, post_json_requests, run_load
from bench.loopback import LoopbackServer, run_like_server

DIMENSION = 384  # all-MiniLM-L6-v2, and the fake backend's default
RATIO_TARGET = 3.0


class _Vector(msgspec.Struct):
    embedding: list[float]


class _Response(msgspec.Struct):
    data: list[_Vector]


_decode = msgspec.json.Decoder(_Response).decode


def one_vector(body: bytes) -> None:
    """The body must hold exactly one vector of :data:`DIMENSION` components."""
    data = _decode(body).data
    require_count("vectors in an embeddings response", len(data), 1)
    require_count("components of a vector", len(data[0].embedding), DIMENSION)


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
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    elapsed = time.perf_counter() - start
    require_count("offline vectors", vectors.shape[0], len(texts))
    require_count("offline vector components", vectors.shape[1], DIMENSION)
    return len(texts) / elapsed


def embedding_requests(url: str, texts: list[str]) -> list[bytes]:
    return post_json_requests(
        url, "/v1/embeddings", [json.dumps({"input": text}).encode() for text in texts]
    )


def served_rate(url: str, texts: list[str], concurrency: int) -> float:
    requests = embedding_requests(url, texts)
    asyncio.run(run_load(url, requests[: 4 * concurrency], concurrency, one_vector))  # warm up
    rate, _ = asyncio.run(run_load(url, requests, concurrency, one_vector))
    return rate


class _Timed:
    """Sequential round trips to one target, timed one by one; checked when the run ends."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.latencies: list[float] = []

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Close the connection and check every answer it got."""
        raise NotImplementedError

    async def block(self, texts: list[str], *, record: bool = True) -> None:
        raise NotImplementedError


class _Raw(_Timed):
    """The raw keep-alive client of :mod:`bench.loadgen` (pod and gateway). Each block gets a
    connection of its own, opened before the clock starts: uvicorn closes a keep-alive
    connection idle for 5 s, as one can be while the other targets run a slow model."""

    async def open(self) -> None:
        self._answers: list[tuple[int, bytes]] = []

    async def close(self) -> None:
        check_answers(self.url, self._answers, one_vector)

    async def block(self, texts: list[str], *, record: bool = True) -> None:
        connection = await Connection.open(self.url)
        try:
            for request in embedding_requests(self.url, texts):
                start = time.perf_counter()
                answer = await connection.send(request)
                elapsed = (time.perf_counter() - start) * 1000
                self._answers.append(answer)
                if record:
                    self.latencies.append(elapsed)
        finally:
            connection.close()


class _Bare(_Timed):
    """aiohttp (the gateway's wire) to the trivial app: one bare loopback hop. With
    ``delay_ms`` the app answers after sleeping that long, as a model computing for that long
    would; the time it slept is taken off each recorded time, which leaves the hop under the
    same idle pattern (a process that waited that long wakes more slowly than one kept busy)."""

    def __init__(self, name: str, url: str, delay_ms: float = 0.0) -> None:
        super().__init__(name, url)
        self.delay_ms = delay_ms

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        self._answers: list[tuple[int, bytes, bytes]] = []

    async def close(self) -> None:
        await self._session.close()
        for status, sent, body in self._answers:
            require_status("a bare round trip", status, body)
            require(body == sent, "the loopback app did not echo the request body")

    async def block(self, texts: list[str], *, record: bool = True) -> None:
        for text in texts:
            body = json.dumps({"input": text}).encode()
            start = time.perf_counter()
            async with self._session.post(
                f"{self.url}/echo?delay_ms={self.delay_ms:g}",
                data=body,
                headers={"content-type": "application/json"},
            ) as response:
                answer = await response.read()
                slept_ms = float(response.headers.get("x-slept-ms", "0"))
            elapsed = (time.perf_counter() - start) * 1000 - slept_ms
            self._answers.append((response.status, body, answer))
            if record:
                self.latencies.append(elapsed)


async def interleaved(targets: list[_Timed], count: int, block: int = 20) -> None:
    """Sequential single-sentence requests, alternating between the targets in blocks."""
    texts = sentences(count)
    for target in targets:
        await target.open()
    try:
        for target in targets:
            await target.block(texts[:block], record=False)  # warm up
        for start in range(0, count, block):
            for target in targets:
                await target.block(texts[start : start + block])
    finally:
        for target in targets:
            await target.close()
    for target in targets:
        require_count(f"timed requests to {target.name}", len(target.latencies), count)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report_latency(
    label: str, local: list[float], remote: list[float], bare: list[float], matched: _Bare
) -> None:
    for q in (50, 99):
        lq, rq = percentile(local, q), percentile(remote, q)
        print(
            f"  {label:<18} p{q}: local {lq:7.2f} ms  remote {rq:7.2f} ms  added {rq - lq:+.2f} ms"
        )
    added = percentile(remote, 50) - percentile(local, 50)
    hop, idle_hop = percentile(bare, 50), percentile(matched.latencies, 50)
    ratio = added / idle_hop
    verdict = "PASS" if ratio <= RATIO_TARGET else "FAIL"
    print(
        f"  {label:<18} remote-added p50 {added:.3f} ms; bare aiohttp->uvicorn round trip p50 "
        f"{hop:.3f} ms back to back (ratio {added / hop:.2f}), {idle_hop:.3f} ms answered after "
        f"{matched.delay_ms:.1f} ms like the model (ratio {ratio:.2f}; target <= "
        f"{RATIO_TARGET:g}: {verdict})"
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


def remote_overhead(count: int, *, fake_only: bool) -> None:
    print(f"(b) latency added by remote mode, {count} sequential requests to each target")
    backends: list[tuple[str, dict[str, str]]] = [
        ("fake backend", {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake"})
    ]
    if not fake_only:
        backends.insert(0, ("all-MiniLM-L6-v2", {}))
    with LoopbackServer() as loopback:
        for label, env in backends:
            pod = ServerProcess(["--engines", "embeddings"], env)
            pod.start()
            gateway = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url})
            try:
                gateway.start()
                local, remote = _Raw("the pod", pod.url), _Raw("the gateway", gateway.url)
                model_ms = run_like_server(_model_time(pod.url))
                bare = _Bare("the loopback app", loopback.url)
                matched = _Bare("the loopback app, delayed", loopback.url, delay_ms=model_ms)
                run_like_server(interleaved([local, remote, bare, matched], count))
            finally:
                gateway.stop()
                pod.stop()
            report_latency(label, local.latencies, remote.latencies, bare.latencies, matched)


#: Below this, a model's time leaves no process idle long enough to matter: the baseline is
#: the back-to-back hop.
MIN_IDLE_MS = 2.0


async def _model_time(url: str, count: int = 50) -> float:
    """The pod's p50 less a bare round trip's: about how long the model computes a request
    (0 when it is too short to matter)."""
    probe = _Raw("the pod", url)
    await probe.open()
    await probe.block(sentences(count))
    await probe.close()
    model_ms = statistics.median(probe.latencies) - 0.3
    return model_ms if model_ms >= MIN_IDLE_MS else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=768)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--skip-throughput", action="store_true", help="run part (b) only")
    parser.add_argument("--fake-only", action="store_true", help="part (b) on the fake backend")
    args = parser.parse_args()
    if not args.skip_throughput:
        levels = [int(level) for level in args.concurrency.split(",")]
        throughput(sentences(args.sentences), levels, args.batch_size)
    remote_overhead(args.latency_requests, fake_only=args.fake_only)


if __name__ == "__main__":
    run_bench(main)
