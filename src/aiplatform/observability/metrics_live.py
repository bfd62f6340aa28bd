"""What the process holds now, read when ``/metrics`` is scraped: queues, models, jobs.

Nothing here is updated per call. In-process engines are watched from the moment they start
until they stop, job files while they are open (:func:`watch_engine`, :func:`watch_jobs`), and
:class:`LiveCollector` reads their state at scrape time: each engine's waiting and running
calls, the LLM models it holds in memory, the jobs in each file by state. Watching is by weak
reference, so nothing is kept alive by it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aiplatform.observability.metrics_models import memory_bytes

if TYPE_CHECKING:
    from aiplatform.engines.base import EngineKind
    from aiplatform.engines.llm.generation import LLMModel

__all__ = [
    "JobCounts",
    "LiveCollector",
    "QueueSource",
    "ServesModels",
    "unwatch_engine",
    "unwatch_jobs",
    "watch_engine",
    "watch_jobs",
]

logger = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")


class QueueSource(Protocol):
    """An in-process engine: its kind, and its calls waiting and running now."""

    @property
    def kind(self) -> EngineKind[Any]: ...

    def queue_depth(self) -> tuple[int, int]: ...


@runtime_checkable
class ServesModels(Protocol):
    """An engine that loads and unloads models (the LLM engine): each with whether it is in
    memory now."""

    def model_residency(self) -> Iterable[tuple[LLMModel, bool]]: ...


class JobCounts(Protocol):
    """A job file: how many jobs it holds, by ``(type, status)``."""

    def counts(self) -> Mapping[tuple[str, str], int]: ...


class _Watched:
    """A thread-safe weak set (scrapes read it from a worker thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, item: object) -> None:
        with self._lock:
            self._items.add(item)

    def discard(self, item: object) -> None:
        with self._lock:
            self._items.discard(item)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self._items)


_engines = _Watched()
_job_files = _Watched()


def watch_engine(engine: QueueSource) -> None:
    """Report ``engine``'s queues (and models) until :func:`unwatch_engine`."""
    _engines.add(engine)


def unwatch_engine(engine: QueueSource) -> None:
    _engines.discard(engine)


def watch_jobs(jobs: JobCounts) -> None:
    """Report the jobs of ``jobs`` until :func:`unwatch_jobs`."""
    _job_files.add(jobs)


def unwatch_jobs(jobs: JobCounts) -> None:
    _job_files.discard(jobs)


class LiveCollector(Collector):
    """The gauges of what the process holds now."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engines: list[QueueSource] = _engines.snapshot()
        yield from _queues(engines)
        yield from _models([engine for engine in engines if isinstance(engine, ServesModels)])
        yield _jobs(_job_files.snapshot())

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families, without reading anything (the registry asks when it is built)."""
        yield from _queues([])
        yield from _models([])
        yield _jobs([])


def _queues(engines: list[QueueSource]) -> Iterator[GaugeMetricFamily]:
    queued = GaugeMetricFamily(
        "aiplatform_engine_queue_depth",
        "Requests waiting in an in-process engine's bounded queues (past max_queue: 429).",
        labels=["engine"],
    )
    running = GaugeMetricFamily(
        "aiplatform_engine_running",
        "Calls an in-process engine is running now (model calls, worker processes, LLM slots).",
        labels=["engine"],
    )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for engine in engines:
        depth = _read(engine, lambda e: e.queue_depth())
        if depth is not None:
            total = totals[engine.kind.name]
            total[0] += depth[0]
            total[1] += depth[1]
    for name, (waiting, busy) in sorted(totals.items()):
        queued.add_metric([name], waiting)
        running.add_metric([name], busy)
    yield queued
    yield running


def _models(engines: list[ServesModels]) -> Iterator[GaugeMetricFamily]:
    loaded = GaugeMetricFamily(
        "aiplatform_llm_model_loaded",
        "1 while an LLM model is in memory, 0 while it is not (on demand, or unloaded).",
        labels=["model"],
    )
    memory = GaugeMetricFamily(
        "aiplatform_llm_model_memory_bytes",
        "Memory a loaded LLM model holds: what its backend reports, else the resident memory "
        "its load added to the process (approximate).",
        labels=["model"],
    )
    for engine in engines:
        for model, in_memory in _read(engine, lambda e: list(e.model_residency())) or []:
            loaded.add_metric([model.name], 1 if in_memory else 0)
            size = memory_bytes(model) if in_memory else None
            if size is not None:
                memory.add_metric([model.name], size)
    yield loaded
    yield memory


def _jobs(files: list[JobCounts]) -> GaugeMetricFamily:
    jobs = GaugeMetricFamily(
        "aiplatform_jobs",
        "Background jobs (RAG ingests, analytic runs) in their job files, by type and state; "
        "finished ones are kept for a while, then purged.",
        labels=["type", "status"],
    )
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for job_file in files:
        for key, count in (_read(job_file, lambda f: dict(f.counts())) or {}).items():
            totals[key] += count
    for (job_type, status), count in sorted(totals.items()):
        jobs.add_metric([job_type, status], count)
    return jobs


def _read(source: S, read: Callable[[S], T]) -> T | None:
    """``read(source)``, or None when the source cannot answer now (it is stopping)."""
    try:
        return read(source)
    except Exception:
        logger.debug("metrics: %r could not be read", source, exc_info=True)
        return None
