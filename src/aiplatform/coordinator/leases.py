"""How an engine leases memory: from the coordinator in this process, or from one over HTTP.

Both give a :class:`Lease` per loaded model. The engine reports on it how many requests run on
the model (:meth:`Lease.touch`) and, once loaded, its measured size (:meth:`Lease.resize`), and
releases it after the model unloads. When the coordinator needs the memory back, the engine's
``on_release`` callback is called (from the coordinator in this process; from the heartbeat
task for a remote one, whose answer says so): the engine then unloads the model at its next
safe point and releases the lease.

A remote lease is kept alive by heartbeats every ``heartbeat_s``. When they fail for the whole
``ttl_s`` (the coordinator is unreachable) or the coordinator no longer knows the lease (it
expired), the lease is as good as gone: the engine is asked to unload as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Protocol, Self

import anyio
import anyio.abc
import httpx
import msgspec

from aiplatform.api.openai import ErrorResponse
from aiplatform.coordinator.api import Heartbeat, HeartbeatReply, LeaseGrant, LeaseRequest
from aiplatform.coordinator.core import Claim, Coordinator, LeaseRecord
from aiplatform.errors import (
    AIPlatformError,
    EngineUnavailableError,
    ServiceUnavailableError,
    error_for_status,
)
from aiplatform.tenant import SERVICE_TOKEN_HEADER

__all__ = ["Lease", "Leaser", "LocalLeaser", "RemoteLeaser"]

logger = logging.getLogger(__name__)

LEASES_PATH = "/v1/coordinator/leases"
#: Seconds a heartbeat or a release may take, beyond the connect deadline.
_CALL_TIMEOUT_S = 10.0


class Lease(Protocol):
    """One model's memory, held from before its load until after its unload."""

    @property
    def size(self) -> int:
        """Bytes granted (or measured since)."""
        ...

    def touch(self, active: int) -> None:
        """The model runs ``active`` requests now (and was used just now)."""

    def resize(self, size: int) -> None:
        """The model's measured size, after its load."""

    async def release(self) -> None:
        """The model has unloaded: its memory is free."""


class Leaser(Protocol):
    """Where an engine's leases come from."""

    @property
    def holder(self) -> str: ...

    @property
    def wait_timeout_s(self) -> float: ...

    async def lease(self, claim: Claim, *, on_release: Callable[[], None]) -> Lease:
        """A lease for ``claim``: waits for memory (503 past the deadline, 429 when too many
        wait); ``on_release`` asks the caller to unload and release."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


# -- in this process -----------------------------------------------------------------------------


class LocalLeaser:
    """Leases from a :class:`Coordinator` in this process."""

    def __init__(self, coordinator: Coordinator, *, holder: str) -> None:
        self.coordinator = coordinator
        self._holder = holder

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def wait_timeout_s(self) -> float:
        return self.coordinator.wait_timeout_s

    async def lease(self, claim: Claim, *, on_release: Callable[[], None]) -> Lease:
        record = await self.coordinator.acquire(claim, on_release=on_release)
        return _LocalLease(self.coordinator, record)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _LocalLease:
    def __init__(self, coordinator: Coordinator, record: LeaseRecord) -> None:
        self._coordinator = coordinator
        self._record = record
        self._released = False

    @property
    def size(self) -> int:
        return self._record.size

    def touch(self, active: int) -> None:
        if not self._released:
            self._coordinator.touch(self._record.id, active=active)

    def resize(self, size: int) -> None:
        if not self._released:
            self._coordinator.resize(self._record.id, size)

    async def release(self) -> None:
        if not self._released:
            self._released = True
            self._coordinator.release(self._record.id)


# -- over HTTP ---------------------------------------------------------------------------------


class RemoteLeaser:
    """Leases from the coordinator service at ``url`` (``[coordinator] url``), presenting the
    service credential; enter it before the engines that use it (it runs their heartbeats)."""

    def __init__(
        self,
        url: str,
        *,
        holder: str,
        service_token: str | None,
        wait_timeout_s: float,
        connect_timeout_s: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self._holder = holder
        self._wait_timeout_s = wait_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._headers = {SERVICE_TOKEN_HEADER: service_token} if service_token else {}
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._leases: set[_RemoteLease] = set()

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def wait_timeout_s(self) -> float:
        return self._wait_timeout_s

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        self._client = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=self.url,
                headers=self._headers,
                transport=self._transport,
                timeout=httpx.Timeout(_CALL_TIMEOUT_S, connect=self._connect_timeout_s),
            )
        )
        self._tasks = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(self._tasks.cancel_scope.cancel)
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for lease in list(self._leases):  # leases of models still loaded at shutdown
            await lease.release()
        stack, self._stack = self._stack, None
        self._tasks = None
        if stack is not None:
            await stack.aclose()
        self._client = None

    async def lease(self, claim: Claim, *, on_release: Callable[[], None]) -> Lease:
        _, tasks = self._started()
        request = LeaseRequest(
            holder=claim.holder,
            model=claim.model,
            device=claim.device,
            size_bytes=claim.size,
            measured=claim.measured,
            priority=claim.priority,
            wait_s=self._wait_timeout_s,
        )
        timeout = httpx.Timeout(
            self._wait_timeout_s + _CALL_TIMEOUT_S, connect=self._connect_timeout_s
        )
        try:
            response = await self.call("POST", LEASES_PATH, request, deadlines=timeout)
        except AIPlatformError as exc:
            if exc.status_code in (429, 503):  # no memory now: the caller may retry
                raise
            # the coordinator refusing this pod (a wrong credential, a server that does not
            # coordinate) is no fault of the user's request, whose 4xx it must not become
            raise ServiceUnavailableError(
                f"The memory coordinator refused this pod ({exc.status_code}: {exc.message}).",
                code="coordinator_error",
            ) from exc
        grant = msgspec.json.decode(response.content, type=LeaseGrant)
        lease = _RemoteLease(self, grant, on_release)
        self._leases.add(lease)
        tasks.start_soon(lease.keep_alive)
        return lease

    async def call(
        self,
        method: str,
        path: str,
        body: msgspec.Struct | None = None,
        *,
        deadlines: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One call to the coordinator; its error answers raised as the platform's errors."""
        client, _ = self._started()
        content = msgspec.json.encode(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else {}
        try:
            response = await client.request(
                method,
                path,
                content=content,
                headers=headers,
                timeout=deadlines if deadlines is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(
                f"The memory coordinator at {self.url} cannot be reached: {exc!r}",
                code="coordinator_unreachable",
                retry_after_s=5.0,
            ) from exc
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    def forget(self, lease: _RemoteLease) -> None:
        self._leases.discard(lease)

    def _started(self) -> tuple[httpx.AsyncClient, anyio.abc.TaskGroup]:
        if self._client is None or self._tasks is None:
            raise EngineUnavailableError("The memory coordinator client has not been started.")
        return self._client, self._tasks


class _RemoteLease:
    def __init__(
        self, leaser: RemoteLeaser, grant: LeaseGrant, on_release: Callable[[], None]
    ) -> None:
        self._leaser = leaser
        self._grant = grant
        self._on_release = on_release
        self._size = grant.size_bytes
        self._measured: int | None = None
        self._active = 0
        self._last_used = time.monotonic()
        self._asked = False
        self._released = False
        self._scope = anyio.CancelScope()
        #: set when there is news to send before the next heartbeat is due
        self._news: anyio.Event | None = None

    @property
    def size(self) -> int:
        return self._size

    def touch(self, active: int) -> None:
        self._active = active
        self._last_used = time.monotonic()

    def resize(self, size: int) -> None:
        self._size = self._measured = size
        if self._news is not None:
            self._news.set()

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._scope.cancel()
        self._leaser.forget(self)
        try:
            await self._leaser.call("DELETE", f"{LEASES_PATH}/{self._grant.id}")
        except AIPlatformError as exc:  # it expires on its own after its ttl
            if exc.status_code != 404:
                logger.warning(
                    "could not release the lease of model %s: %s", self._grant.model, exc.message
                )

    async def keep_alive(self) -> None:
        """Heartbeats until the lease is released; asks the engine to unload when the
        coordinator says so, or when the lease is lost."""
        last_ok = time.monotonic()
        with self._scope:
            while True:
                self._news = anyio.Event()
                with anyio.move_on_after(self._grant.heartbeat_s):
                    await self._news.wait()
                try:
                    reply = await self._beat()
                except AIPlatformError as exc:
                    if exc.status_code == 404:
                        self._ask(f"the coordinator no longer knows its lease ({exc.message})")
                        return
                    if time.monotonic() - last_ok >= self._grant.ttl_s:
                        self._ask(f"no heartbeat went through for {self._grant.ttl_s:g}s")
                    continue
                last_ok = time.monotonic()
                if reply.release:
                    self._ask("the coordinator needs its memory")

    async def _beat(self) -> HeartbeatReply:
        beat = Heartbeat(
            size_bytes=self._measured,
            active=self._active,
            idle_s=0.0 if self._active else max(time.monotonic() - self._last_used, 0.0),
        )
        path = f"{LEASES_PATH}/{self._grant.id}/heartbeat"
        response = await self._leaser.call("POST", path, beat)
        return msgspec.json.decode(response.content, type=HeartbeatReply)

    def _ask(self, why: str) -> None:
        if self._asked:
            return
        self._asked = True
        logger.info("unloading model %s at its next safe point: %s", self._grant.model, why)
        self._on_release()


def _error_of(response: httpx.Response) -> AIPlatformError:
    try:
        body = msgspec.json.decode(response.content, type=ErrorResponse).error
        message, param, code = body.message, body.param, body.code
    except msgspec.DecodeError:
        message, param, code = response.text[:200] or response.reason_phrase, None, None
    error = error_for_status(response.status_code, message, param=param, code=code)
    retry_after = response.headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        error.retry_after_s = float(retry_after)
    return error
