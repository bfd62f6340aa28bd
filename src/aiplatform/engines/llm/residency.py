"""Whether a model is in memory: load on demand, explicit load/unload, unload when idle.

One lock orders every change of residency against the start of a generation: ``acquire``
counts a generation only under it, and an unload checks that none is counted (and that no
generation thread is still winding down) and frees the model while holding it. So a
generation never starts on a model being freed; one that arrives during an unload waits for
it and loads the model again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor

import anyio

from aiplatform.engines.llm.generation import LLMModel
from aiplatform.errors import ConflictError

__all__ = ["Resident"]

#: How long an unload waits for generation threads that were told to stop (a client left)
#: to finish their current token; they check between tokens, so this is ample.
_WIND_DOWN_S = 10.0
_WIND_DOWN_POLL_S = 0.01


class Resident:
    """One model's residency. ``acquire``/``release`` bracket every generation."""

    def __init__(
        self,
        model: LLMModel,
        executor: Executor,
        *,
        idle_unload_s: float | None,
        manage: bool,
        running: Callable[[], int] = lambda: 0,
    ) -> None:
        self.model = model
        self.idle_unload_s = idle_unload_s
        #: models handed in by a caller stay loaded and are never unloaded here
        self._manage = manage
        self._executor = executor
        #: generation threads still at work on the model (one told to stop ends at its next
        #: token, after its request has already released the model)
        self._running = running
        self._lock: asyncio.Lock | None = None
        self.loaded = not manage
        self.active = 0
        self.last_used = time.monotonic()

    def load_now(self) -> None:
        """Blocking load, for the engine's startup."""
        if self._manage and not self.loaded:
            self.model.load()
            self.loaded = True

    def unload_now(self) -> None:
        """Blocking unload, for the engine's shutdown."""
        if self._manage and self.loaded:
            self.loaded = False
            self.model.unload()

    async def acquire(self) -> bool:
        """Make sure the model is loaded and count one more generation on it; waits for an
        unload under way. True when this call loaded the model."""
        async with self._guard():
            loaded_here = False
            if not self.loaded:
                await self._blocking(self.load_now)
                loaded_here = True
            self.active += 1
            self.last_used = time.monotonic()
        return loaded_here

    def release(self) -> None:
        self.active -= 1
        self.last_used = time.monotonic()

    async def unload(self) -> None:
        """Release the model's memory; refused (409) while generations run on it."""
        async with self._guard():
            if self.active:
                raise ConflictError(
                    f"Model '{self.model.name}' has {self.active} generation(s) running; "
                    "unload it when they finish.",
                    param="model",
                )
            await self._unload_locked()

    async def unload_if_idle(self) -> bool:
        """Unload the model when nothing has used it for ``idle_unload_s``; never raises for a
        model that became busy meanwhile. True when it was unloaded."""
        if not self._idle():
            return False
        async with self._guard():
            if not self._idle() or self._running():  # busy again, or threads still finishing
                return False
            await self._unload_locked()
        return not self.loaded

    def _idle(self) -> bool:
        return (
            self.idle_unload_s is not None
            and self.loaded
            and not self.active
            and time.monotonic() - self.last_used >= self.idle_unload_s
        )

    async def _unload_locked(self) -> None:
        if not (self.loaded and self._manage):
            return
        with anyio.move_on_after(_WIND_DOWN_S) as waiting:
            while self._running():  # noqa: ASYNC110 (threads signal no event to the loop)
                await anyio.sleep(_WIND_DOWN_POLL_S)
        if waiting.cancelled_caught:
            raise ConflictError(
                f"Model '{self.model.name}' still has generations finishing; unload it later.",
                param="model",
            )
        await self._blocking(self.unload_now)

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _blocking(self, fn: Callable[[], None]) -> None:
        """``fn`` on the model's threads, finished even when the caller is cancelled (``fn``
        records the new state itself, so a cancelled caller cannot leave ``loaded`` wrong)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, fn)
        cancelled = False
        # Neither an anyio cancel scope nor a task's own cancel (a client that left) may end the
        # wait early: the lock is held until the step is done, so no second load can start.
        with anyio.CancelScope(shield=True):
            while not future.done():
                try:
                    await asyncio.shield(future)
                except asyncio.CancelledError:
                    if future.cancelled():
                        raise
                    cancelled = True
        future.result()
        if cancelled:
            raise asyncio.CancelledError
