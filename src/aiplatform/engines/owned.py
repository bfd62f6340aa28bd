"""An engine that owns the engines it calls: a pod serving only RAG still needs an embeddings
engine, which nobody else starts, so the RAG engine starts and stops it with itself."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Self

from aiplatform.api.health import EngineStatus
from aiplatform.engines.base import Engine
from aiplatform.engines.wrapped import WrappedEngine

__all__ = ["OwningEngine"]


class OwningEngine(WrappedEngine):
    """``engine``, entered after (and left before) the ``owned`` engines it calls."""

    def __init__(self, engine: Engine, owned: Sequence[Engine]) -> None:
        super().__init__(engine)
        self._owned = tuple(owned)
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            for engine in (*self._owned, self._inner):
                await stack.enter_async_context(engine)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def status(self) -> EngineStatus:
        """The engine's own readiness, and that of the owned engines it runs in-process.

        An owned engine forwarded to another service is not asked: that service reports its
        own readiness, and a pod taken out of service because a service it calls is down (or
        slow to answer a probe) would spread one outage to every pod that calls it.
        """
        status = await self._inner.status()
        for engine in self._owned:
            if engine.mode == "remote":
                continue
            owned = await engine.status()
            if not owned.ready:
                detail = f"{engine.kind.name} engine not ready: {owned.detail}"
                return EngineStatus(mode=status.mode, ready=False, detail=detail)
        return status
