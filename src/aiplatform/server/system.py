"""Routes that belong to the server, not to one engine: models, liveness, readiness."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from aiplatform.api.health import EngineStatus, Health, Readiness
from aiplatform.api.openai import ModelCard, ModelList
from aiplatform.engines.base import Engine
from aiplatform.errors import AIPlatformError

__all__ = ["system_routes"]

logger = logging.getLogger(__name__)


def system_routes(engines: Mapping[str, Engine]) -> list[HTTPRouteHandler]:
    @get("/v1/models", tags=["models"], summary="List the models every engine serves")
    async def list_models() -> ModelList:
        found: dict[str, list[ModelCard]] = {}

        async def collect(name: str, engine: Engine) -> None:
            try:
                found[name] = await engine.list_models()
            except AIPlatformError as exc:
                logger.warning("cannot list models of engine %s: %s", name, exc.message)

        async with anyio.create_task_group() as task_group:
            for name, engine in engines.items():
                task_group.start_soon(collect, name, engine)
        cards: dict[str, ModelCard] = {}
        for name in engines:
            for card in found.get(name, []):
                cards.setdefault(card.id, card)
        return ModelList(data=list(cards.values()))

    @get("/health", tags=["health"], summary="Liveness: the process serves HTTP")
    async def health() -> Health:
        return Health()

    @get("/ready", tags=["health"], summary="Readiness: every engine loaded or reachable")
    async def ready() -> Response[Readiness]:
        statuses: dict[str, EngineStatus] = {}

        async def probe(name: str, engine: Engine) -> None:
            statuses[name] = await engine.status()

        async with anyio.create_task_group() as task_group:
            for name, engine in engines.items():
                task_group.start_soon(probe, name, engine)
        ordered = {name: statuses[name] for name in engines}
        is_ready = all(status.ready for status in ordered.values())
        body = Readiness(status="ready" if is_ready else "not_ready", engines=ordered)
        return Response(body, status_code=200 if is_ready else 503)

    return [list_models, health, ready]
