"""An engine's side of eviction: requests to unload, served in the engine's own tasks.

The coordinator (or a remote lease's heartbeat) asks synchronously, from whatever task it runs
in; :class:`Releases` takes the request and unloads the model in a task of the engine's task
group, which waits for the model's running requests first. An unload that fails (a generation
that does not wind down) is tried again while the model still holds its lease.
"""

from __future__ import annotations

import logging
from typing import Protocol

import anyio
import anyio.abc

from aiplatform.errors import AIPlatformError

__all__ = ["Evictable", "Releases"]

logger = logging.getLogger(__name__)

#: Seconds between tries of an unload that failed.
_RETRY_S = 1.0


class Evictable(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def leased(self) -> bool:
        """Whether it still holds a lease (an unload that failed is tried again while so)."""
        ...

    async def evict(self) -> None:
        """Unload once the running requests end, then release the lease."""


class Releases:
    def __init__(self) -> None:
        self._asked: list[Evictable] = []
        self._busy: set[Evictable] = set()
        self._wake: anyio.Event | None = None

    def ask(self, holder: Evictable) -> None:
        """Unload ``holder`` at its next safe point (called by the coordinator)."""
        self._asked.append(holder)
        if self._wake is not None:
            self._wake.set()

    async def serve(self, task_group: anyio.abc.TaskGroup) -> None:
        """Serve requests until cancelled, each unload as a task of ``task_group``."""
        while True:
            while self._asked:
                holder = self._asked.pop(0)
                if holder not in self._busy:
                    self._busy.add(holder)
                    task_group.start_soon(self._evict, holder)
            self._wake = anyio.Event()
            if not self._asked:
                await self._wake.wait()

    async def _evict(self, holder: Evictable) -> None:
        try:
            while True:
                try:
                    await holder.evict()
                    return
                except AIPlatformError as exc:
                    if not holder.leased:
                        return
                    logger.warning("could not unload model %s yet: %s", holder.name, exc.message)
                await anyio.sleep(_RETRY_S)
        finally:
            self._busy.discard(holder)
