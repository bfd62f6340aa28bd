"""The in-process adapter: the base class every local engine builds on.

It loads the model in the background (so ``/health`` answers while a large model loads), runs
blocking model calls off the event loop on the engine's own worker threads (``max_concurrency``
of them) or, for CPU-bound pure Python that holds the GIL, in a pool of worker processes, and
dispatches :meth:`invoke` / :meth:`stream` through a table of handlers bound to operations.

Model calls run on dedicated, long-lived threads rather than a shared pool: the number of calls
in flight is bounded per engine, and libraries with per-thread state (torch's intra-op thread
pools, CUDA streams) see the same few threads every time.

Every queue a request can wait in is bounded (``max_queue``: past it, 429 with ``Retry-After``
at once) and has a deadline (``queue_timeout_s``); see :mod:`aiplatform.engines.backlog`. The
engine's own background work (``start_background``, the model load) is never refused.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any, Literal, Protocol, Self, TypeVar

import anyio
import anyio.abc
import msgspec

from aiplatform.api.health import EngineStatus
from aiplatform.api.openai import ModelCard
from aiplatform.engines.backlog import Backlog, background_work
from aiplatform.engines.base import EngineKind, EngineMode, Operation
from aiplatform.engines.settings import EngineSettings
from aiplatform.engines.threads import ThreadPool
from aiplatform.engines.workers import ProgressHandler, WorkerPool
from aiplatform.errors import EngineUnavailableError, NotFoundError
from aiplatform.observability.metrics_live import unwatch_engine, watch_engine

__all__ = ["CallGauge", "ExecutorKind", "LocalEngine", "QueueGauge"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)
T = TypeVar("T")
CallIn = TypeVar("CallIn")
CallOut = TypeVar("CallOut")

#: Where :meth:`LocalEngine.call` runs: the engine's threads, or its worker processes.
ExecutorKind = Literal["threads", "processes"]


class QueueGauge(Protocol):
    """A queue whose depth an engine's status reports."""

    @property
    def queued(self) -> int: ...


class CallGauge(QueueGauge, Protocol):
    """A queue that also runs the calls it admits (threads, processes, an LLM model's slots)."""

    @property
    def running(self) -> int: ...


class LocalEngine(ABC):
    """Base of in-process engines. Subclasses implement :meth:`load` and bind their handlers."""

    def __init__(
        self,
        kind: EngineKind[Any],
        *,
        settings: EngineSettings | None = None,
        max_concurrency: int | None = None,
        executor: ExecutorKind = "threads",
    ) -> None:
        """``settings`` give the queue bounds (``max_queue``, ``queue_timeout_s``) and
        ``max_concurrency``; without them, the settings' defaults. ``executor="processes"``
        runs :meth:`call` in ``max_concurrency`` worker processes."""
        limits = settings if settings is not None else EngineSettings()
        self._kind = kind
        self._max_concurrency = max_concurrency or limits.max_concurrency
        self._max_queue = limits.max_queue
        self._queue_timeout_s = limits.queue_timeout_s
        self._executor_kind: ExecutorKind = executor
        self._threads: ThreadPool | None = None
        self._workers: WorkerPool | None = None
        #: requests waiting for the model load (bounded, no deadline: the load is finite)
        self._load_waiters = Backlog(
            f"Engine '{kind.name}'", workers=0, max_queue=limits.max_queue, queue_timeout_s=None
        )
        self._gauges: list[QueueGauge] = [self._load_waiters]
        self._call_gauges: list[CallGauge] = []
        self._handlers: dict[str, Callable[[Any], Awaitable[Any]]] = {}
        self._stream_handlers: dict[str, Callable[[Any], AsyncIterator[Any]]] = {}
        self._loaded: anyio.Event | None = None
        self._load_error: BaseException | None = None
        self._stack: AsyncExitStack | None = None

    # -- what subclasses provide ---------------------------------------------------------------

    @abstractmethod
    def load(self) -> None:
        """Load the model. Blocking; runs in a worker thread."""

    def unload(self) -> None:
        """Release the model. Blocking; runs in a worker thread on exit."""

    async def start_background(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start long-lived tasks (a micro-batcher, say) in the engine's task group."""

    def bind(
        self, op: Operation[Req, Resp, Any], handler: Callable[[Req], Awaitable[Resp]]
    ) -> None:
        """Serve ``op`` with ``handler``; the types tie the handler to the operation."""
        self._handlers[op.name] = handler

    def bind_stream(
        self, op: Operation[Req, Any, Chunk], handler: Callable[[Req], AsyncIterator[Chunk]]
    ) -> None:
        """Serve the streamed form of ``op`` with ``handler``."""
        self._stream_handlers[op.name] = handler

    def track(self, queue: QueueGauge) -> None:
        """Count ``queue``'s waiting requests in :meth:`status` (a micro-batcher, say)."""
        self._gauges.append(queue)

    def track_calls(self, pool: CallGauge) -> None:
        """Count the waiting and the running calls of a pool of the engine's own (an LLM
        model's slots) in :meth:`status`."""
        self._call_gauges.append(pool)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking model call on one of this engine's worker threads.

        Refused at once (429) when ``max_queue`` calls already wait, dropped (429) when it
        waited ``queue_timeout_s`` without starting. A caller that is cancelled before its call
        starts takes the call off the queue; one that is cancelled while it runs leaves it to
        finish and drops the result.
        """
        return await self._thread_pool().run(fn, *args)

    def iterate_blocking(
        self, make_iterator: Callable[[threading.Event], Iterator[T]]
    ) -> AsyncIterator[T]:
        """Run a blocking iterator on one of this engine's worker threads, yielding its items;
        the event it receives is set when the consumer stops early."""
        return self._thread_pool().iterate(make_iterator)

    async def call(
        self,
        fn: Callable[[CallIn], CallOut] | Callable[[CallIn, ProgressHandler], CallOut],
        request: CallIn,
        *,
        progress: ProgressHandler | None = None,
    ) -> CallOut:
        """Run ``fn(request)`` where this engine's executor says: on its threads, or in a
        worker process (``fn`` a module-level function over msgspec types; the request and the
        result cross the process boundary as msgspec bytes, and a cancelled call's worker is
        stopped). A function that takes a second parameter gets a ``(fraction, stage)``
        progress callback whose reports reach ``progress`` on the event loop."""
        if self._executor_kind == "processes":
            if self._workers is None:
                raise self._not_started()
            return await self._workers.call(fn, request, progress=progress)
        if _takes_progress(fn):
            report = _threadsafe(progress)
            return await self._thread_pool().run(fn, request, report)
        return await self._thread_pool().run(fn, request)

    def _thread_pool(self) -> ThreadPool:
        if self._threads is None:
            raise self._not_started()
        return self._threads

    def _not_started(self) -> EngineUnavailableError:
        return EngineUnavailableError(f"Engine '{self._kind.name}' has not been started.")

    # -- the Engine protocol -------------------------------------------------------------------

    @property
    def kind(self) -> EngineKind[Any]:
        return self._kind

    @property
    def mode(self) -> EngineMode:
        return "local"

    async def __aenter__(self) -> Self:
        self._check_bindings()
        self._loaded = anyio.Event()
        self._load_error = None
        label = f"Engine '{self._kind.name}'"
        self._threads = ThreadPool(
            label,
            workers=self._max_concurrency,
            max_queue=self._max_queue,
            queue_timeout_s=self._queue_timeout_s,
            thread_name_prefix=f"engine-{self._kind.name}",
        )
        stack = AsyncExitStack()
        try:
            if self._executor_kind == "processes":
                workers = WorkerPool(
                    label,
                    workers=self._max_concurrency,
                    max_queue=self._max_queue,
                    queue_timeout_s=self._queue_timeout_s,
                )
                stack.push_async_callback(workers.close)  # also when the start fails halfway
                await workers.start()
                self._workers = workers
            task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(task_group.cancel_scope.cancel)
            # Background tasks (and the load) are the engine's own work: never refused.
            with background_work():
                task_group.start_soon(self._load_in_background)
                await self.start_background(task_group)
        except BaseException:
            await stack.aclose()
            self._threads.shutdown()
            self._threads = self._workers = None
            raise
        self._stack = stack
        watch_engine(self)  # its queues are reported at /metrics while it runs
        return self

    def _check_bindings(self) -> None:
        """Refuse to start an engine that leaves an operation of its kind unserved, so the gap
        shows at start-up rather than as a 404 on the first request."""
        missing = [op.name for op in self._kind.operations if op.name not in self._handlers]
        missing += [
            f"{op.name} (streamed)"
            for op in self._kind.operations
            if op.chunk is not None and op.name not in self._stream_handlers
        ]
        if missing:
            raise TypeError(
                f"{type(self).__name__} does not bind every operation of kind "
                f"'{self._kind.name}': {', '.join(missing)}"
            )

    async def __aexit__(self, *exc_info: object) -> None:
        unwatch_engine(self)
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._workers = None
        threads, self._threads = self._threads, None
        if threads is None:
            return
        if self._loaded is not None and self._loaded.is_set() and self._load_error is None:
            await asyncio.wrap_future(threads.executor.submit(self.unload))
        threads.shutdown()

    def queue_depth(self) -> tuple[int, int]:
        """Requests waiting in the engine's queues, and calls running now."""
        queued = sum(gauge.queued for gauge in self._all_gauges())
        running = sum(gauge.running for gauge in self._all_call_gauges())
        return queued, running

    async def status(self) -> EngineStatus:
        queued, running = self.queue_depth()

        def status(ready: bool, detail: str = "") -> EngineStatus:
            return EngineStatus(
                mode="local", ready=ready, detail=detail, queued=queued, running=running
            )

        if self._loaded is None:
            return status(False, "not started")
        if not self._loaded.is_set():
            return status(False, "loading")
        if self._load_error is not None:
            return status(False, f"failed to load: {self._load_error}")
        return status(True)

    def _all_call_gauges(self) -> list[CallGauge]:
        pools: list[CallGauge] = [
            pool for pool in (self._threads, self._workers) if pool is not None
        ]
        return [*pools, *self._call_gauges]

    def _all_gauges(self) -> list[QueueGauge]:
        return [*self._gauges, *self._all_call_gauges()]

    async def list_models(self) -> list[ModelCard]:
        """The models ``/v1/models`` lists for this engine: none, unless it serves models."""
        return []

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        handler = self._handlers.get(op.name)
        if handler is None:
            raise NotFoundError(f"Engine '{self._kind.name}' does not serve '{op.name}'.")
        await self._wait_loaded_bounded()
        result: Resp = await handler(request)
        return result

    async def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        handler = self._stream_handlers.get(op.name)
        if handler is None:
            raise NotFoundError(f"Engine '{self._kind.name}' does not stream '{op.name}'.")
        await self._wait_loaded_bounded()
        async for chunk in handler(request):
            yield chunk

    # -- loading -------------------------------------------------------------------------------

    async def wait_loaded(self) -> None:
        """Wait for the background load; a failed load is a 503 with its reason."""
        if self._loaded is None:
            raise EngineUnavailableError(f"Engine '{self._kind.name}' has not been started.")
        await self._loaded.wait()
        if self._load_error is not None:
            raise EngineUnavailableError(
                f"Engine '{self._kind.name}' failed to load: {self._load_error}"
            )

    async def _wait_loaded_bounded(self) -> None:
        """:meth:`wait_loaded` for a request: at most ``max_queue`` wait for the load, each for
        at most ``queue_timeout_s`` (then a 503: the engine is still loading)."""
        if self._loaded is None or self._loaded.is_set():
            return await self.wait_loaded()
        ticket = self._load_waiters.admit()
        try:
            with anyio.move_on_after(self._queue_timeout_s or math.inf) as waited:
                await self.wait_loaded()
            if waited.cancelled_caught:
                raise EngineUnavailableError(
                    f"Engine '{self._kind.name}' is still loading after "
                    f"{self._queue_timeout_s:g}s; try again shortly.",
                    code="engine_loading",
                    retry_after_s=5.0,
                )
        finally:
            self._load_waiters.drop(ticket)

    async def _load_in_background(self) -> None:
        assert self._loaded is not None
        try:
            # On the model thread, so per-thread settings made while loading hold for every call.
            # A shutdown during the load stops waiting for it; the thread finishes on its own.
            await self.run_blocking(self.load)
            logger.info("engine %s loaded", self._kind.name)
        except Exception as exc:
            self._load_error = exc
            logger.exception("engine %s failed to load", self._kind.name)
        finally:
            self._loaded.set()


def _takes_progress(fn: Callable[..., Any]) -> bool:
    return len(inspect.signature(fn).parameters) == 2


def _threadsafe(progress: ProgressHandler | None) -> ProgressHandler:
    """``progress`` called on the event loop from a worker thread (or nothing)."""
    if progress is None:
        return lambda fraction, stage: None
    loop = asyncio.get_running_loop()

    def report(fraction: float, stage: str) -> None:
        loop.call_soon_threadsafe(progress, min(max(float(fraction), 0.0), 1.0), stage)

    return report
