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
machine falls on all of them alike. The ratio of a configuration is the median over rounds of
its rate over ``off``'s rate in the same round (with the quartiles of those ratios: the run's
own noise), beside the server's CPU time per request (all its threads, the span sender's
included). Every response is checked (200, one vector), the collector must have received the
spans of every fully traced request, and ``/metrics`` must count the calls, before a figure is
printed. Without a ``[metrics]`` section in the server, tracing alone is compared.

The target, an overhead under 3 % (ratio above 0.97) for ``metrics+tracing``, is for the
embeddings throughput of a real model (``--real``: all-MiniLM-L6-v2), in a run of its own with
many rounds: ``off``, ``off again`` (the same settings: their ratio is what the machine's own
noise makes of no difference at all) and ``metrics+tracing``. Then every configuration, on
the fake backend (no target: it does no work per request, so what it shows is the server's
own cost per request, where any fixed cost weighs most) and on the model. Run:
``python -m bench.observability --real`` (quick: ``--rounds 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
#: Seconds of quiet before each load: the threads of the server loaded before (a model's
#: OpenMP threads spin a while after their work) stop competing with the next one.
SETTLE_S = 0.3


def has_metrics() -> bool:
    """Whether the server has the ``[metrics]`` section to switch."""
    return "metrics" in Settings.__struct_fields__


def configurations(
    collector: str, names: tuple[str, ...] | None = None
) -> dict[str, dict[str, str]]:
    """The settings of each server compared, by name (``off`` is the baseline; ``off again``
    is the same, to show the run's own noise); all but ``off again`` unless ``names``."""
    every = _configurations(collector)
    return {name: every[name] for name in names or every if name != "off again" or names}


def _configurations(collector: str) -> dict[str, dict[str, str]]:
    metrics = "metrics+" if has_metrics() else ""
    metrics_on = {"AIPLATFORM_METRICS__ENABLED": "true"} if has_metrics() else {}
    traced = {**metrics_on, "AIPLATFORM_TRACING__OTLP_ENDPOINT": collector}
    return {
        "off": {"AIPLATFORM_METRICS__ENABLED": "false"} if has_metrics() else {},
        "off again": {"AIPLATFORM_METRICS__ENABLED": "false"} if has_metrics() else {},
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
#: The servers of the targeted comparison: the baseline twice (their ratio is the run's noise)
#: and the targeted configuration.
TARGET_RUN = ("off", "off again", "metrics+tracing")


# -- the collector --------------------------------------------------------------------------


def sink(port: int) -> None:
    """An OTLP/HTTP trace receiver: reads each export (OTLP's JSON encoding) and counts its
    spans (``GET /spans`` tells how many so far)."""
    received = [0]
    answer = b"{}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = json.loads(body)
            received[0] += sum(
                len(scope["spans"])
                for spans in request["resourceSpans"]
                for scope in spans["scopeSpans"]
            )
            self._reply(answer, "application/json")

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
    #: None when the configurations share one process (in-process runs)
    cpu_s: float | None


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


def compare(
    label: str,
    backend: dict[str, str],
    rounds: int,
    count: int,
    *,
    targeted: bool,
    names: tuple[str, ...] | None = None,
) -> bool:
    collector = Collector()
    try:
        runs = measure(collector, backend, rounds, count, names)
        traced = (rounds * count + 4 * CONCURRENCY) * sum(name in FULLY_TRACED for name in runs)
        spans = collector.spans()
    finally:
        collector.stop()
    # a server span and an engine span per request (and more: the readiness probes')
    require(spans >= 2 * traced, f"the collector got {spans} spans for {traced} requests")
    return report(label, runs, rounds, count, targeted=targeted)


def measure(
    collector: Collector,
    backend: dict[str, str],
    rounds: int,
    count: int,
    names: tuple[str, ...] | None,
) -> dict[str, list[Run]]:
    """Each configuration's runs, one a round."""
    servers: dict[str, ServerProcess] = {}
    try:
        for name, env in configurations(collector.url, names).items():
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
                time.sleep(SETTLE_S)
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
        if name.startswith("off"):
            require(response.status_code == 404, f"/metrics is served with metrics off: {name}")
        else:
            require(response.status_code == 200, f"/metrics answered {response.status_code}")
            require('engine="embeddings"' in response.text, "/metrics counts no embeddings call")


def paired_ratios(runs: dict[str, list[Run]], name: str) -> list[float]:
    """``name``'s rate over ``off``'s in each round: the two ran back to back, so a drift of
    the machine between rounds falls on both."""
    return [run.rate / base.rate for run, base in zip(runs[name], runs["off"], strict=True)]


def report(
    label: str, runs: dict[str, list[Run]], rounds: int, count: int, *, targeted: bool
) -> bool:
    """Print each configuration's figures; whether the targeted one met the target (True
    when there is none here)."""
    print(f"{label}: {rounds} rounds of {count} requests, {CONCURRENCY} clients")
    # CPU time is counted in clock ticks (10 ms): per request, over every round at once
    cpu = {
        name: sum(r.cpu_s or 0.0 for r in runs[name]) / sum(r.requests for r in runs[name])
        for name in runs
    }
    has_cpu = all(r.cpu_s is not None for measured in runs.values() for r in measured)
    met = True
    for name, measured in runs.items():
        rate = statistics.median(run.rate for run in measured)
        line = f"  {name:<22} {rate:8.1f} req/s"
        if has_cpu:
            line += f"  server CPU {cpu[name] * 1e6:7.0f} us/request"
        if name != "off":
            ratios = sorted(paired_ratios(runs, name))
            ratio = statistics.median(ratios)
            low, high = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
            line += (
                f"  ratio {ratio:.3f} (quartiles {low:.3f}..{high:.3f}):"
                f" overhead {100 * (1 - ratio):+.1f} %"
            )
            if has_cpu:
                line += f", CPU {100 * (cpu[name] / cpu['off'] - 1):+.1f} %"
            if name in TARGETED and targeted:
                passed = 1 - ratio < OVERHEAD_TARGET
                met = met and passed
                line += f", target < {100 * OVERHEAD_TARGET:g} %: {'PASS' if passed else 'FAIL'}"
        print(line)
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--real", action="store_true", help="all-MiniLM-L6-v2 as well")
    parser.add_argument(
        "--real-requests", type=int, default=150, help="requests per round on all-MiniLM-L6-v2"
    )
    parser.add_argument(
        "--target-rounds", type=int, default=60, help="rounds of the targeted comparison"
    )
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink)
        return
    if not has_metrics():
        print("no [metrics] section in this server: tracing alone is compared")
    if args.real:
        compare(
            "target, all-MiniLM-L6-v2 (off against off again: the run's own noise)",
            {},
            args.target_rounds,
            args.real_requests,
            targeted=True,
            names=TARGET_RUN,
        )
    compare(
        "fake backend (the server's own work only: no target)",
        {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake"},
        args.rounds,
        args.requests,
        targeted=False,
    )
    if args.real:
        compare("all-MiniLM-L6-v2", {}, args.rounds, args.real_requests, targeted=False)


if __name__ == "__main__":
    run_bench(main)
