"""An engine that owns the engines it calls: a pod serving only RAG still needs an embeddings
engine, which nobody else starts, so the RAG engine starts and stops it with itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any, Self, TypeVar

import msgspec

from aiplatform.api.health import EngineStatus
from aiplatform.api.openai import ModelCard
from aiplatform.engines.base import Engine, EngineKind, EngineMode, Operation

__all__ = ["OwningEngine"]

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)


class OwningEngine:
    """``engine``, entered after (and left before) the ``owned`` engines it calls."""

    def __init__(self, engine: Engine, owned: Sequence[Engine]) -> None:
        self._engine = engine
        self._owned = tuple(owned)
        self._stack: AsyncExitStack | None = None

    @property
    def inner(self) -> Engine:
        return self._engine

    @property
    def kind(self) -> EngineKind[Any]:
        return self._engine.kind

    @property
    def mode(self) -> EngineMode:
        return self._engine.mode

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            for engine in (*self._owned, self._engine):
                await stack.enter_async_context(engine)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def status(self) -> EngineStatus:
        status = await self._engine.status()
        for engine in self._owned:
            owned = await engine.status()
            if not owned.ready:
                detail = f"{engine.kind.name} engine not ready: {owned.detail}"
                return EngineStatus(mode=status.mode, ready=False, detail=detail)
        return status

    async def list_models(self) -> list[ModelCard]:
        return await self._engine.list_models()

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        return await self._engine.invoke(op, request)

    def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        return self._engine.stream(op, request)
