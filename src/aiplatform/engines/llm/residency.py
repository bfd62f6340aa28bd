"""Whether a model is in memory: load on demand, explicit load/unload, unload when idle."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

from aiplatform.engines.llm.generation import LLMModel
from aiplatform.errors import ConflictError

__all__ = ["Resident"]


class Resident:
    """One model's residency. ``acquire``/``release`` bracket every generation."""

    def __init__(
        self,
        model: LLMModel,
        executor: Executor,
        *,
        idle_unload_s: float | None,
        manage: bool,
    ) -> None:
        self.model = model
        self.idle_unload_s = idle_unload_s
        #: models handed in by a caller stay loaded and are never unloaded here
        self._manage = manage
        self._executor = executor
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

    async def acquire(self) -> None:
        """Make sure the model is loaded and count one more generation on it."""
        if not self.loaded:
            async with self._guard():
                if not self.loaded:
                    await self._blocking(self.model.load)
                    self.loaded = True
        self.active += 1
        self.last_used = time.monotonic()

    def release(self) -> None:
        self.active -= 1
        self.last_used = time.monotonic()

    async def unload(self) -> None:
        """Release the model's memory; refused while generations run on it."""
        async with self._guard():
            if self.active:
                raise ConflictError(
                    f"Model '{self.model.name}' has {self.active} generation(s) running; "
                    "unload it when they finish.",
                    param="model",
                )
            if self.loaded and self._manage:
                await self._blocking(self.model.unload)
                self.loaded = False

    async def unload_if_idle(self) -> bool:
        if (
            self.idle_unload_s is None
            or not self.loaded
            or self.active
            or time.monotonic() - self.last_used < self.idle_unload_s
        ):
            return False
        await self.unload()
        return not self.loaded

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _blocking(self, fn: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, fn)  # type: ignore[arg-type]
