"""``/v1/coordinator``: the coordinator's state, and the lease routes engine pods call.

Every route goes through authentication like any ``/v1`` route, and is for admins and for the
platform's own pods (the service credential) only: a lease holds memory that every tenant
shares, and the state names the models and the pods that hold them. With authentication off
(a development server) every caller is an admin.
"""

from __future__ import annotations

from litestar import Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from aiplatform.api.ids import check_id
from aiplatform.auth.scope import check_admin
from aiplatform.coordinator.api import (
    CoordinatorState,
    Heartbeat,
    HeartbeatReply,
    LeaseDeleted,
    LeaseGrant,
    LeaseRequest,
)
from aiplatform.coordinator.core import Claim, Coordinator, LeaseRecord
from aiplatform.errors import NotFoundError
from aiplatform.server.guard.json_body import require_json_body
from aiplatform.server.openapi import JSON_ONLY, error_response

__all__ = ["coordinator_routes"]

LEASES = "/v1/coordinator/leases"
#: Heartbeats per lease lifetime: a few may be lost before the lease expires.
_BEATS_PER_TTL = 4

_ERRORS = {
    status: error_response(description)
    for status, description in (
        (400, "Invalid request"),
        (401, "No valid credential"),
        (403, "For admins and the platform's pods only"),
        (404, "No such lease (released, or expired)"),
        (429, "Too many loads wait for memory: retry later"),
        (503, "No memory came free in time, or the model is larger than the whole budget"),
    )
}
_JSON_ERRORS = {**_ERRORS, 415: error_response(JSON_ONLY)}


def check_coordinator_access() -> None:
    """403 unless the caller is an admin or a pod of the platform (the service credential)."""
    check_admin("The memory coordinator is for admins and the platform's own pods.")


def coordinator_routes(coordinator: Coordinator, *, serve: bool) -> list[HTTPRouteHandler]:
    """``GET /v1/coordinator``; with ``serve`` also the lease routes for engine pods."""

    @get(
        "/v1/coordinator",
        tags=["coordinator"],
        summary="Memory budgets per device, leases and the loads waiting for memory",
        responses=_ERRORS,
    )
    async def coordinator_state() -> CoordinatorState:
        check_coordinator_access()
        return coordinator.state()

    if not serve:
        return [coordinator_state]

    @post(
        LEASES,
        tags=["coordinator"],
        summary="Lease memory for a model before it loads (waits for it, within a deadline)",
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def create_lease(data: JSONBody[LeaseRequest]) -> Response[LeaseGrant]:
        check_coordinator_access()
        claim = Claim(
            holder=data.holder,
            model=data.model,
            device=data.device,
            size=data.size_bytes,
            measured=data.measured,
            priority=data.priority,
        )
        lease = await coordinator.acquire(claim, ttl_s=coordinator.lease_ttl_s, wait_s=data.wait_s)
        return Response(_grant(lease), status_code=201)

    @post(
        LEASES + "/{lease_id:str}/heartbeat",
        tags=["coordinator"],
        summary="Keep a lease alive; the answer says whether to unload the model",
        status_code=200,
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def heartbeat(lease_id: FromPath[str], data: JSONBody[Heartbeat]) -> HeartbeatReply:
        check_coordinator_access()
        _remote(coordinator, lease_id)
        lease = coordinator.heartbeat(
            lease_id, size=data.size_bytes, active=data.active, idle_s=data.idle_s
        )
        return HeartbeatReply(id=lease.id, release=lease.releasing, ttl_s=lease.ttl_s or 0.0)

    @delete(
        LEASES + "/{lease_id:str}",
        tags=["coordinator"],
        summary="Release a lease: the model has unloaded",
        status_code=200,
        responses=_ERRORS,
    )
    async def delete_lease(lease_id: FromPath[str]) -> LeaseDeleted:
        check_coordinator_access()
        _remote(coordinator, lease_id)
        coordinator.release(lease_id)
        return LeaseDeleted(id=lease_id)

    return [coordinator_state, create_lease, heartbeat, delete_lease]


def _remote(coordinator: Coordinator, lease_id: str) -> LeaseRecord:
    """The lease taken over HTTP of that id (one held in this process is not the caller's)."""
    check_id("lease_id", lease_id)
    lease = coordinator.find(lease_id)
    if lease is None or lease.ttl_s is None:
        raise NotFoundError(
            f"There is no lease '{lease_id}' (it was released, or it expired).",
            code="lease_not_found",
        )
    return lease


def _grant(lease: LeaseRecord) -> LeaseGrant:
    ttl = lease.ttl_s or 0.0
    claim = lease.claim
    return LeaseGrant(
        id=lease.id,
        holder=claim.holder,
        model=claim.model,
        device=claim.device,
        size_bytes=lease.size,
        priority=claim.priority,
        ttl_s=ttl,
        heartbeat_s=ttl / _BEATS_PER_TTL,
    )
