"""Observability benchmark: what metrics, tracing and the JSON access log cost in throughput.

The same single-sentence ``/v1/embeddings`` requests, from 8 concurrent clients, to
``aiplatform serve --engines embeddings`` processes that differ only in their observability
settings, measured in the same run:

- ``off`` (the baseline): ``[metrics] enabled = false``, no ``[tracing] otlp_endpoint``, no
  access log;
- ``metrics``: ``GET /metrics`` and its request counters;
- ``metrics+tracing``: and a span per request and per engine call, every trace sampled, sent
  over OTLP/HTTP to a collector in a process of its own (:func:`sink`, which decodes what it is
  sent and counts the spans);
- ``metrics+tracing 10 %``: the same with ``[tracing] sample_ratio = 0.1``;
- ``+ json access log``: ``metrics+tracing`` with one JSON access log line per request.

The servers run side by side and are loaded in turn, in short rounds, so that a drift of the
machine falls on all of them alike; each figure is the median of the rounds. Beside each rate,
the server's CPU time per request (all its threads, the span exporter's included), which other
load on the machine disturbs less than a rate. The ratio is a configuration's rate over
``off``'s; the target is an overhead under 3 % (ratio above 0.97) for ``metrics+tracing``.
Every response is checked (200, one vector), the collector must have received the spans of
every fully traced request, and ``/metrics`` must count the calls, before a figure is printed.
Without a ``[metrics]`` section in the server, tracing alone is compared. On the fake backend
(nothing but the server's own work, where the overhead weighs most) and with ``--real`` on
all-MiniLM-L6-v2 as well. Run: ``python -m bench.observability`` (quick: ``--rounds 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from tests.support import ServerProcess

from aiplatform.settings import Settings
from aiplatform.testing import free_port
from bench.checks import require, run_bench
from bench.embeddings import embedding_requests, one_vector, sentences
from bench.loadgen import run_load

OVERHEAD_TARGET = 0.03
CONCURRENCY = 8


def has_metrics() -> bool:
    """Whether the server has the ``[metrics]`` section to switch."""
    return "metrics" in Settings.__struct_fields__


def configurations(collector: str) -> dict[str, dict[str, str]]:
    """The settings of each server compared, by name (``off`` is the baseline)."""
    metrics = "metrics+" if has_metrics() else ""
    metrics_on = {"AIPLATFORM_METRICS__ENABLED": "true"} if has_metrics() else {}
    traced = {**metrics_on, "AIPLATFORM_TRACING__OTLP_ENDPOINT": collector}
    return {
        "off": {"AIPLATFORM_METRICS__ENABLED": "false"} if has_metrics() else {},
        **({"metrics": metrics_on} if has_metrics() else {}),
        f"{metrics}tracing": traced,
        f"{metrics}tracing 10 %": {**traced, "AIPLATFORM_TRACING__SAMPLE_RATIO": "0.1"},
        "+ json access log": {
            **traced,
            "AIPLATFORM_SERVER__ACCESS_LOG": "true",
            "AIPLATFORM_SERVER__LOG_FORMAT": "json",
        },
    }


#: The configuration the target is for: everything on, every trace sampled.
TARGETED = ("metrics+tracing", "tracing")
#: Configurations whose every request must reach the collector as spans.
FULLY_TRACED = ("metrics+tracing", "tracing", "+ json access log")


# -- the collector --------------------------------------------------------------------------


def sink(port: int) -> None:
    """An OTLP/HTTP trace receiver: decodes each export and counts its spans (``GET /spans``
    tells how many so far)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    received = [0]
    answer = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = ExportTraceServiceRequest.FromString(body)
            received[0] += sum(
                len(scope.spans) for spans in request.resource_spans for scope in spans.scope_spans
            )
            self._reply(answer, "application/x-protobuf")

        def do_GET(self) -> None:
            self._reply(str(received[0]).encode(), "text/plain")

        def _reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class Collector:
    """:func:`sink` in a process of its own."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "bench.observability", "--sink", port]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.spans()
                return
            except httpx.HTTPError:
                require(time.monotonic() < deadline, "the collector did not start")
                time.sleep(0.1)

    def spans(self) -> int:
        return int(httpx.get(f"{self.url}/spans", timeout=5).text)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


# -- the run --------------------------------------------------------------------------------


@dataclass
class Run:
    """One configuration's load in one round: requests/s, and the CPU seconds the server spent
    on the round's requests (all its threads: the span exporter's too), which other load on the
    machine does not change as much as it changes a rate."""

    requests: int
    rate: float
    cpu_s: float


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of every thread of process ``pid`` so far (Linux)."""
    ticks = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def load(server: ServerProcess, requests: list[bytes]) -> Run:
    before = cpu_seconds(server.pid)
    measured, _ = asyncio.run(run_load(server.url, requests, CONCURRENCY, one_vector))
    return Run(len(requests), measured, cpu_seconds(server.pid) - before)


def compare(label: str, backend: dict[str, str], rounds: int, count: int) -> None:
    collector = Collector()
    try:
        runs = measure(collector, backend, rounds, count)
        traced = (rounds * count + 4 * CONCURRENCY) * sum(name in FULLY_TRACED for name in runs)
        spans = collector.spans()
    finally:
        collector.stop()
    # a server span and an engine span per request (and more: the readiness probes')
    require(spans >= 2 * traced, f"the collector got {spans} spans for {traced} requests")
    report(label, runs, rounds, count)


def measure(
    collector: Collector, backend: dict[str, str], rounds: int, count: int
) -> dict[str, list[Run]]:
    """Each configuration's runs, one a round."""
    servers: dict[str, ServerProcess] = {}
    try:
        for name, env in configurations(collector.url).items():
            servers[name] = ServerProcess(["--engines", "embeddings"], {**backend, **env})
            servers[name].start()
        texts = sentences(count)
        for server in servers.values():
            load(server, embedding_requests(server.url, texts[: 4 * CONCURRENCY]))  # warm up
        runs: dict[str, list[Run]] = {name: [] for name in servers}
        names = list(servers)
        for index in range(rounds):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                server = servers[name]
                runs[name].append(load(server, embedding_requests(server.url, texts)))
        check_metrics(servers)
    finally:
        for server in servers.values():
            server.stop()  # a traced server sends its last spans as it stops
    return runs


def check_metrics(servers: dict[str, ServerProcess]) -> None:
    if not has_metrics():
        return
    for name, server in servers.items():
        response = httpx.get(f"{server.url}/metrics", timeout=10)
        if name == "off":
            require(response.status_code == 404, f"/metrics is served with metrics off: {name}")
        else:
            require(response.status_code == 200, f"/metrics answered {response.status_code}")
            require('engine="embeddings"' in response.text, "/metrics counts no embeddings call")


def report(label: str, runs: dict[str, list[Run]], rounds: int, count: int) -> None:
    print(f"{label}: {rounds} rounds of {count} requests, {CONCURRENCY} clients, median of rounds")
    rate = {name: statistics.median(run.rate for run in runs[name]) for name in runs}
    # CPU time is counted in clock ticks (10 ms): per request, over every round at once
    cpu = {
        name: sum(r.cpu_s for r in runs[name]) / sum(r.requests for r in runs[name])
        for name in runs
    }
    for name, measured in runs.items():
        rates = [run.rate for run in measured]
        line = (
            f"  {name:<22} {rate[name]:8.1f} req/s (rounds {min(rates):7.1f}..{max(rates):7.1f})"
            f"  server CPU {cpu[name] * 1e6:7.0f} us/request"
        )
        if name != "off":
            ratio = rate[name] / rate["off"]
            line += (
                f"  ratio {ratio:.3f}: overhead {100 * (1 - ratio):+.1f} %"
                f" (CPU {100 * (cpu[name] / cpu['off'] - 1):+.1f} %)"
            )
            if name in TARGETED:
                verdict = "PASS" if 1 - ratio < OVERHEAD_TARGET else "FAIL"
                line += f", target < {100 * OVERHEAD_TARGET:g} %: {verdict}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--real", action="store_true", help="all-MiniLM-L6-v2 as well")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink)
        return
    if not has_metrics():
        print("no [metrics] section in this server: tracing alone is compared")
    compare(
        "fake backend",
        {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake"},
        args.rounds,
        args.requests,
    )
    if args.real:
        compare("all-MiniLM-L6-v2", {}, args.rounds, args.requests // 4)


if __name__ == "__main__":
    run_bench(main)
