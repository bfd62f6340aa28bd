"""Whether a model is in memory: load on demand, explicit load/unload, unload when idle.

One lock orders every change of residency against the start of a generation: ``acquire``
counts a generation only under it, and an unload checks that none is counted (and that no
generation thread is still winding down) and frees the model while holding it. So a
generation never starts on a model being freed; one that arrives during an unload waits for
it and loads the model again.

With the memory coordinator on (:class:`Memory`), a load first leases the model's memory: its
declared size (``memory_mib``), else what its last load measured, else an estimate from its
weights' files; the lease takes the measured size once the model has loaded, and is released
after every unload. When the coordinator needs the memory, the model *drains*: no generation
starts on it (new ones wait for the unload, then load it again under a new lease), the running
ones finish, and it unloads. With the coordinator off, none of this happens.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import anyio.abc

from aiplatform.coordinator.core import Claim, MemoryUnavailableError
from aiplatform.coordinator.footprint import CudaReading, file_bytes, measured_load, measured_unload
from aiplatform.coordinator.leases import Lease, Leaser
from aiplatform.coordinator.releases import Releases
from aiplatform.engines.llm.generation import LLMModel
from aiplatform.engines.llm.settings import LLMModelSettings
from aiplatform.errors import AIPlatformError, ConflictError

__all__ = ["Footprint", "Memory", "Resident", "footprint_of"]

logger = logging.getLogger(__name__)

#: How long an unload waits for generation threads that were told to stop (a client left)
#: to finish their current token; they check between tokens, so this is ample.
_WIND_DOWN_S = 10.0
_WIND_DOWN_POLL_S = 0.01


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a model's lease asks for."""

    #: ``cpu`` or ``cuda:N``
    device: str
    priority: int
    #: Bytes the settings declare (``memory_mib``); they replace estimate and measurement.
    declared: int | None
    #: Blocking: the bytes of the model's weights on disk.
    estimate: Callable[[], int]
    #: How a load on a CUDA device is measured.
    cuda: CudaReading = "allocated"


def footprint_of(settings: LLMModelSettings) -> Footprint:
    """The footprint of a configured model."""
    declared = settings.memory_mib * 2**20 if settings.memory_mib is not None else None
    return Footprint(
        device=_device_of(settings),
        priority=settings.priority,
        declared=declared,
        estimate=partial(_weights_bytes, settings),
        # torch allocates a transformers model; llama.cpp allocates by itself
        cuda="allocated" if settings.backend == "transformers" else "used",
    )


def _device_of(settings: LLMModelSettings) -> str:
    if settings.backend == "transformers" and settings.device.startswith("cuda"):
        return "cuda:0" if settings.device == "cuda" else settings.device
    if settings.backend == "llama_cpp" and settings.gpu_layers != 0:
        return "cuda:0"  # llama.cpp's main GPU
    return "cpu"


def _weights_bytes(settings: LLMModelSettings) -> int:
    if settings.backend == "fake" or not settings.path:
        return 0
    try:
        if settings.backend == "llama_cpp":
            from aiplatform.engines.llm.gguf import resolve_model_path

            return file_bytes(resolve_model_path(settings.path))
        return file_bytes(Path(settings.path))
    except (OSError, ValueError):  # the load reports what is wrong with the path
        return 0


class Memory:
    """An engine's part in the memory coordinator: its leaser, the unloads the coordinator
    asks for, and the loads at startup."""

    def __init__(self, leaser: Leaser) -> None:
        self.leaser = leaser
        self.releases = Releases()
        self._warm = threading.Event()
        self._failure: BaseException | None = None

    async def run(self, task_group: anyio.abc.TaskGroup, startup: Sequence[Resident]) -> None:
        """Serve unload requests in ``task_group``, and load the ``startup`` models (as
        memory allows: one that cannot get it loads on demand later)."""
        task_group.start_soon(self.releases.serve, task_group)
        task_group.start_soon(self._warm_up, startup)

    def wait_warm(self, models: int) -> None:
        """Blocking: until the startup loads are done (each waits for memory at most the
        coordinator's deadline); raises what made one fail, as a load at startup does."""
        self._warm.wait(timeout=(models + 1) * (self.leaser.wait_timeout_s + 60.0))
        if self._failure is not None:
            raise self._failure

    async def _warm_up(self, startup: Sequence[Resident]) -> None:
        try:
            for resident in startup:
                try:
                    await resident.acquire()
                    resident.release()
                except AIPlatformError as exc:
                    if exc.status_code not in (429, 503):
                        raise
                    logger.warning(
                        "model %s did not load at startup, it loads on demand: %s",
                        resident.model.name,
                        exc.message,
                    )
        except Exception as exc:
            self._failure = exc
        finally:
            self._warm.set()


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
        memory: Memory | None = None,
        footprint: Footprint | None = None,
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
        #: the coordinator's part: only for models managed here that have a footprint
        self._memory = memory if manage and footprint is not None else None
        self._footprint = footprint
        self._lease: Lease | None = None
        #: bytes measured at the largest load so far
        self._measured: int | None = None
        self._estimate: int | None = None
        #: set while the model drains for an unload the coordinator asked for
        self._draining: anyio.Event | None = None
        self._idle: anyio.Event | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def leased(self) -> bool:
        return self._lease is not None

    def load_now(self) -> None:
        """Blocking load, for the engine's startup."""
        if self._manage and not self.loaded:
            self.model.load()
            self.loaded = True

    def unload_now(self) -> None:
        """Blocking unload, for the engine's shutdown."""
        if self._manage and self.loaded:
            self.loaded = False
            if self._memory is not None and self._footprint is not None:
                measured_unload(self._footprint.device, self.model.unload)
            else:
                self.model.unload()

    async def acquire(self) -> bool:
        """Make sure the model is loaded and count one more generation on it; waits for an
        unload under way. True when this call loaded the model."""
        deadline = time.monotonic() + (
            self._memory.leaser.wait_timeout_s if self._memory is not None else math.inf
        )
        while True:
            async with self._guard():
                if self._draining is None:
                    loaded_here = False
                    if not self.loaded:
                        await self._load()
                        loaded_here = True
                    self.active += 1
                    self.last_used = time.monotonic()
                    self._touch()
                    return loaded_here
                draining = self._draining
            await self._wait_drained(draining, deadline)

    def release(self) -> None:
        self.active -= 1
        self.last_used = time.monotonic()
        self._touch()
        if not self.active and self._idle is not None:
            self._idle.set()

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
        if not self._idle_for_long():
            return False
        async with self._guard():
            if not self._idle_for_long() or self._running():  # busy again, or still finishing
                return False
            await self._unload_locked()
        return not self.loaded

    async def evict(self) -> None:
        """Unload at the next safe point, as the coordinator asked: no generation starts on the
        model meanwhile; once the running ones have finished it unloads."""
        async with self._guard():
            if not self.loaded or self._lease is None or self._draining is not None:
                return
            draining = self._draining = anyio.Event()
            idle = self._idle = anyio.Event()
            if not self.active:
                idle.set()
        try:
            await idle.wait()
            async with self._guard():
                await self._unload_locked()
        finally:
            self._draining = self._idle = None
            draining.set()
        logger.info("unloaded model %s to free memory for another", self.model.name)

    async def release_lease(self) -> None:
        """Release the lease of a model that has unloaded (the engine's shutdown)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            with anyio.CancelScope(shield=True):
                await lease.release()

    def _idle_for_long(self) -> bool:
        return (
            self.idle_unload_s is not None
            and self.loaded
            and not self.active
            and time.monotonic() - self.last_used >= self.idle_unload_s
        )

    async def _load(self) -> None:
        """Load the model (under the lock): with the coordinator on, within a lease."""
        memory, footprint = self._memory, self._footprint
        if memory is None or footprint is None:
            await self._blocking(self.load_now)
            return
        claim = await self._claim(memory, footprint)
        await self.release_lease()  # whatever an earlier failure left held
        lease = self._lease = await memory.leaser.lease(
            claim, on_release=partial(memory.releases.ask, self)
        )
        measured: list[int | None] = []

        def load() -> None:
            measured.append(measured_load(footprint.device, self.load_now, cuda=footprint.cuda))

        try:
            await self._blocking(load)
        finally:
            if not self.loaded:  # the load failed: its memory is not held
                await self.release_lease()
            elif measured and measured[0] is not None and footprint.declared is None:
                self._measured = max(measured[0], self._measured or 0)
                lease.resize(self._measured)

    async def _claim(self, memory: Memory, footprint: Footprint) -> Claim:
        if footprint.declared is not None:
            size, measured = footprint.declared, True
        elif self._measured is not None:
            size, measured = self._measured, True
        else:
            if self._estimate is None:
                loop = asyncio.get_running_loop()
                self._estimate = await loop.run_in_executor(self._executor, footprint.estimate)
            size, measured = self._estimate, False
        return Claim(
            holder=memory.leaser.holder,
            model=self.model.name,
            device=footprint.device,
            size=size,
            measured=measured,
            priority=footprint.priority,
        )

    def _touch(self) -> None:
        if self._lease is not None:
            self._lease.touch(self.active)

    async def _wait_drained(self, draining: anyio.Event, deadline: float) -> None:
        with anyio.move_on_after(max(deadline - time.monotonic(), 0.0)):
            await draining.wait()
            return
        raise MemoryUnavailableError(
            f"Model '{self.model.name}' is being unloaded to free memory for another, and "
            "its running requests did not finish in time; try again later."
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
        try:
            await self._blocking(self.unload_now)
        finally:  # a failed unload has marked the model unloaded: its memory is not held
            await self.release_lease()

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
