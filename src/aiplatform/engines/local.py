"""The in-process adapter: the base class every local engine builds on.

It loads the model in the background (so ``/health`` answers while a large model loads), runs
blocking model calls off the event loop on the engine's own worker threads (``max_concurrency``
of them), and dispatches :meth:`invoke` / :meth:`stream` through a table of handlers bound to
operations.

Model calls run on dedicated, long-lived threads rather than a shared pool: the number of calls
in flight is bounded per engine, and libraries with per-thread state (torch's intra-op thread
pools, CUDA streams) see the same few threads every time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import msgspec

from aiplatform.api.health import EngineStatus
from aiplatform.engines.base import EngineKind, EngineMode, Operation
from aiplatform.engines.threads import iterate_in_thread
from aiplatform.errors import EngineUnavailableError, NotFoundError

__all__ = ["LocalEngine"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)
T = TypeVar("T")


class LocalEngine(ABC):
    """Base of in-process engines. Subclasses implement :meth:`load` and bind their handlers."""

    def __init__(self, kind: EngineKind[Any], *, max_concurrency: int = 1) -> None:
        self._kind = kind
        self._max_concurrency = max_concurrency
        self._executor: ThreadPoolExecutor | None = None
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

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking model call on one of this engine's worker threads.

        A caller that is cancelled before its call starts takes the call off the queue; one that
        is cancelled while it runs leaves it to finish and drops the result.
        """
        if self._executor is None:
            raise EngineUnavailableError(f"Engine '{self._kind.name}' has not been started.")
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    def iterate_blocking(
        self, make_iterator: Callable[[threading.Event], Iterator[T]]
    ) -> AsyncIterator[T]:
        """Run a blocking iterator on one of this engine's worker threads, yielding its items;
        the event it receives is set when the consumer stops early."""
        if self._executor is None:
            raise EngineUnavailableError(f"Engine '{self._kind.name}' has not been started.")
        return iterate_in_thread(self._executor, make_iterator)

    # -- the Engine protocol -------------------------------------------------------------------

    @property
    def kind(self) -> EngineKind[Any]:
        return self._kind

    @property
    def mode(self) -> EngineMode:
        return "local"

    async def __aenter__(self) -> Self:
        self._loaded = anyio.Event()
        self._load_error = None
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_concurrency, thread_name_prefix=f"engine-{self._kind.name}"
        )
        stack = AsyncExitStack()
        task_group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(task_group.cancel_scope.cancel)
        self._stack = stack
        task_group.start_soon(self._load_in_background)
        await self.start_background(task_group)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._loaded is not None and self._loaded.is_set() and self._load_error is None:
            await asyncio.wrap_future(executor.submit(self.unload))
        executor.shutdown(wait=False, cancel_futures=True)

    async def status(self) -> EngineStatus:
        if self._loaded is None:
            return EngineStatus(mode="local", ready=False, detail="not started")
        if not self._loaded.is_set():
            return EngineStatus(mode="local", ready=False, detail="loading")
        if self._load_error is not None:
            return EngineStatus(
                mode="local", ready=False, detail=f"failed to load: {self._load_error}"
            )
        return EngineStatus(mode="local", ready=True)

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        handler = self._handlers.get(op.name)
        if handler is None:
            raise NotFoundError(f"Engine '{self._kind.name}' does not serve '{op.name}'.")
        await self.wait_loaded()
        result: Resp = await handler(request)
        return result

    async def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        handler = self._stream_handlers.get(op.name)
        if handler is None:
            raise NotFoundError(f"Engine '{self._kind.name}' does not stream '{op.name}'.")
        await self.wait_loaded()
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
