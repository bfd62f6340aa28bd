"""Deployment sizing: each engine kind as its own pod, measured, against the bare gateway.

For the gateway (every engine forwarded, nothing loaded: the baseline) and then for each engine
kind, one at a time: ``aiplatform serve --engines KIND`` on the shipped models is started and
timed to ``/ready`` (the cold start), one request of its kind is answered (checked: a 200 with
the work done), and then the memory of its process tree is read from ``/proc`` — resident now
and at its peak (``VmHWM``, which includes loading) — with the CPU seconds it spent starting
and answering. Printed: a table per kind with its memory as a ratio to the gateway's, and the
memory request and limit its manifests ask for (``aiplatform.deploy.profiles``); a kind whose
measured peak exceeds its limit fails the run, so the manifests cannot fall behind the models.
With every kind measured, the monolith is measured too: every engine in one process, each kind's
request in turn.

Run: ``python -m bench.deploy [--engines llm,asr]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.speech import SENTENCES, speak
from tests.support import ServerProcess

from aiplatform.deploy.profiles import GATEWAY, MONOLITH, engine_profiles
from aiplatform.engines.analytics.docs import example_body
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.registry import ENGINE_KINDS
from bench.checks import fail, require, require_status, run_bench

#: The shipped models, as the pods of a deployment load them by default.
MODELS = {
    "AIPLATFORM_ENGINES__LLM__MODELS": (
        '[{"name": "smollm2", "path": "shipped:smollm2-135m-instruct"}]'
    ),
    "AIPLATFORM_ENGINES__ASR__BACKEND": "faster_whisper",
    "AIPLATFORM_ENGINES__SPEAKERS__BACKEND": "resemblyzer",
    "AIPLATFORM_ENGINES__DIARIZATION__BACKEND": "resemblyzer",
}

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Usage:
    rss_mib: float
    peak_mib: float
    cpu_s: float


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it (worker processes count toward a pod's size)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def usage(pid: int) -> Usage:
    rss = peak = cpu = 0.0
    for member in tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            stat = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(values["VmRSS"].split()[0]) / 1024
        peak += int(values["VmHWM"].split()[0]) / 1024
        cpu += (int(stat[11]) + int(stat[12])) / _TICKS
    return Usage(rss, peak, cpu)


def post(url: str, path: str, **kwargs: object) -> httpx.Response:
    response = httpx.post(f"{url}{path}", timeout=300, **kwargs)  # type: ignore[arg-type]
    require_status(path, response.status_code, response.content)
    return response


def _wav(text: str) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("speech.wav", speak(text), "audio/wav")}


def _statistical() -> dict[str, object]:
    return example_body(METHODS["statistical"])


def _json(url: str, path: str, **kwargs: object) -> dict[str, Any]:
    body: dict[str, Any] = post(url, path, **kwargs).json()
    return body


def _embeddings(url: str) -> None:
    vectors = _json(url, "/v1/embeddings", json={"input": SENTENCES})["data"]
    require(len(vectors) == len(SENTENCES), "a vector per sentence")


def _llm(url: str) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}
    tokens = _json(url, "/v1/chat/completions", json=chat)["usage"]["completion_tokens"]
    require(tokens > 0, "tokens generated")


def _asr(url: str) -> None:
    text = _json(url, "/v1/audio/transcriptions", files=_wav(SENTENCES[1]))["text"]
    require("fox" in text.lower(), f"the fox in the transcript {text!r}")


def _speakers(url: str) -> None:
    embedding = _json(url, "/v1/speakers/embeddings", files=_wav(SENTENCES[0]))["embedding"]
    require(len(embedding) > 0, "a voice embedding")


def _diarization(url: str) -> None:
    turns = _json(url, "/v1/audio/diarizations", files=_wav(SENTENCES[0]))["turns"]
    require(len(turns) > 0, "speaker turns")


def _emotion(url: str) -> None:
    labels = _json(url, "/v1/emotion", json={"input": SENTENCES})["data"]
    require(len(labels) == len(SENTENCES), "a label per sentence")


def _rag(url: str) -> None:
    post(url, "/v1/rag/collections", json={"name": "sizing"})
    documents = [{"text": text} for text in SENTENCES]
    post(url, "/v1/rag/collections/sizing/documents", json={"documents": documents})
    hits = _json(url, "/v1/rag/collections/sizing/search", json={"query": "fox"})["data"]
    require(len(hits) > 0, "search hits")


def _rerank(url: str) -> None:
    results = _json(url, "/v1/rerank", json={"query": "fox", "documents": SENTENCES})["results"]
    require(len(results) == len(SENTENCES), "a score per document")


def _datasets(url: str) -> None:
    table = {"file": ("t.csv", b"a,b\n1,2\n3,4\n", "text/csv")}
    require(_json(url, "/v1/datasets", files=table)["rows"] == 2, "two rows stored")


def _analytics(url: str) -> None:
    require("result" in _json(url, "/v1/analytics/statistical", json=_statistical()), "a result")


#: One request per kind, checked to have done its work.
WORK: dict[str, Callable[[str], None]] = {
    "embeddings": _embeddings,
    "llm": _llm,
    "asr": _asr,
    "speakers": _speakers,
    "diarization": _diarization,
    "emotion": _emotion,
    "rag": _rag,
    "rerank": _rerank,
    "datasets": _datasets,
    "analytics": _analytics,
}


def measure(
    args: list[str], env: dict[str, str], work: list[Callable[[str], None]]
) -> tuple[float, Usage, Usage]:
    server = ServerProcess(args, env)
    began = time.monotonic()
    server.start(timeout_s=600)
    cold_start_s = time.monotonic() - began
    try:
        started = usage(server.pid)
        for request in work:
            request(server.url)
        return cold_start_s, started, usage(server.pid)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default=",".join(ENGINE_KINDS))
    kinds = [name for name in parser.parse_args().engines.split(",") if name]
    if unknown := set(kinds) - set(ENGINE_KINDS):
        fail(f"unknown engines {sorted(unknown)}")
    missing = set(ENGINE_KINDS) - set(WORK)
    require(not missing, f"no sizing request for {sorted(missing)}")
    print(
        f"# deployment sizing — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    nowhere = {f"AIPLATFORM_ENGINES__{k.upper()}__URL": "http://127.0.0.1:9" for k in ENGINE_KINDS}
    gateway_start, _, gateway = _gateway(nowhere)
    print(
        f"gateway (baseline): cold start {gateway_start:.1f}s, RSS {gateway.rss_mib:.0f} MiB, "
        f"peak {gateway.peak_mib:.0f} MiB; manifests ask {GATEWAY.memory_mib} MiB, "
        f"limit {GATEWAY.memory_limit_mib} MiB"
    )
    profiles = engine_profiles()
    header = (
        f"{'engine':<12}{'cold start s':>13}{'RSS MiB':>9}{'peak MiB':>10}{'x gateway':>10}"
        f"{'CPU s start':>12}{'CPU s call':>11}{'request':>9}{'limit':>7}"
    )
    print(header)
    too_small = []
    runs = [(kind, ["--engines", kind], [WORK[kind]], profiles[kind].resources) for kind in kinds]
    if len(kinds) == len(ENGINE_KINDS):  # and every engine in one process, each request in turn
        runs.append(("monolith", [], list(WORK.values()), MONOLITH))
    for name, args, work, resources in runs:
        cold, started, done = measure(args, MODELS, work)
        print(
            f"{name:<12}{cold:>13.1f}{done.rss_mib:>9.0f}{done.peak_mib:>10.0f}"
            f"{done.peak_mib / gateway.peak_mib:>10.1f}{started.cpu_s:>12.1f}"
            f"{done.cpu_s - started.cpu_s:>11.2f}{resources.memory_mib:>9}"
            f"{resources.memory_limit_mib:>7}"
        )
        if done.peak_mib > resources.memory_limit_mib:
            too_small.append(f"{name} peaked at {done.peak_mib:.0f} MiB")
    require(not too_small, "memory limits below the measured peak: " + "; ".join(too_small))


def _gateway(env: dict[str, str]) -> tuple[float, Usage, Usage]:
    server = ServerProcess([], env)
    began = time.monotonic()
    server.start(timeout_s=120, wait_ready=False)
    cold_start_s = time.monotonic() - began
    try:
        return cold_start_s, usage(server.pid), usage(server.pid)
    finally:
        server.stop()


if __name__ == "__main__":
    run_bench(main)
