"""An engine that wraps another: every call passes through to ``inner`` unless the subclass
takes it (the pipelines that compose engines, the engine that owns its dependencies)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self, TypeVar

import msgspec

from aiplatform.api.health import EngineStatus
from aiplatform.api.openai import ModelCard
from aiplatform.engines.base import Engine, EngineKind, EngineMode, Operation

__all__ = ["WrappedEngine"]

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)


class WrappedEngine:
    """Passes the whole :class:`~aiplatform.engines.base.Engine` protocol through to
    ``inner``."""

    def __init__(self, inner: Engine) -> None:
        self._inner = inner

    @property
    def inner(self) -> Engine:
        return self._inner

    @property
    def kind(self) -> EngineKind[Any]:
        return self._inner.kind

    @property
    def mode(self) -> EngineMode:
        return self._inner.mode

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._inner.__aexit__(*exc_info)

    async def status(self) -> EngineStatus:
        return await self._inner.status()

    async def list_models(self) -> list[ModelCard]:
        return await self._inner.list_models()

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        return await self._inner.invoke(op, request)

    def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        return self._inner.stream(op, request)
