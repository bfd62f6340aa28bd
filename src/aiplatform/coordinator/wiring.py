"""A server's memory coordination, from ``[coordinator]``: off, in-process, or a remote client.

- Off (no budget, ``serve`` off, no ``url``): nothing is leased; engines behave as without it.
- In-process (a budget, or ``serve``): this server keeps a :class:`Coordinator`; its own
  engines lease from it directly, ``GET /v1/coordinator`` shows it, and with ``serve`` engine
  pods lease from it over ``/v1/coordinator/leases``.
- Remote (``url``): this server's engines lease from the coordinator service at ``url`` (a pod
  of a split deployment), presenting the service credential.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Self

from litestar.handlers import HTTPRouteHandler

from aiplatform.coordinator.context import leasing_from
from aiplatform.coordinator.core import Coordinator
from aiplatform.coordinator.leases import Leaser, LocalLeaser, RemoteLeaser
from aiplatform.coordinator.routes import coordinator_routes
from aiplatform.coordinator.settings import CoordinatorSettings

if TYPE_CHECKING:
    from aiplatform.settings import Settings

__all__ = ["Coordination"]

MIB = 2**20


class Coordination:
    """The coordinator of one server, its engines' leaser, and its routes."""

    def __init__(self, settings: CoordinatorSettings, *, service_token: str | None = None) -> None:
        if settings.url and settings.in_process:
            raise ValueError(
                "[coordinator] url (lease from another server) excludes budgets and serve "
                "(keep the coordinator here)"
            )
        self.settings = settings
        holder = settings.holder or f"{socket.gethostname()}:{os.getpid()}"
        self.coordinator: Coordinator | None = None
        self.leaser: Leaser | None = None
        if settings.in_process:
            self.coordinator = Coordinator(
                {
                    device: None if mib is None else mib * MIB
                    for device, mib in settings.budgets_mib.items()
                },
                wait_timeout_s=settings.wait_timeout_s,
                max_waiting=settings.max_waiting,
                estimate_headroom=settings.estimate_headroom,
                lease_ttl_s=settings.lease_ttl_s,
            )
            self.leaser = LocalLeaser(self.coordinator, holder=holder)
        elif settings.url:
            self.leaser = RemoteLeaser(
                settings.url,
                holder=holder,
                service_token=service_token,
                wait_timeout_s=settings.wait_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
            )

    @classmethod
    def of(cls, settings: Settings) -> Coordination:
        return cls(settings.coordinator, service_token=settings.auth.service_token)

    @contextmanager
    def building(self) -> Iterator[None]:
        """Engines built inside the block lease from this server's coordination."""
        with leasing_from(self.leaser):
            yield

    def routes(self) -> list[HTTPRouteHandler]:
        if self.coordinator is None:
            return []
        return coordinator_routes(self.coordinator, serve=self.settings.serve)

    async def __aenter__(self) -> Self:
        """Start the heartbeats of a remote leaser (enter before the engines)."""
        if self.leaser is not None:
            await self.leaser.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.leaser is not None:
            await self.leaser.__aexit__(*exc_info)
