"""Wire types of ``/v1/coordinator``: leases, heartbeats and the coordinator's state."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "CoordinatorState",
    "DeviceState",
    "Heartbeat",
    "HeartbeatReply",
    "LeaseDeleted",
    "LeaseGrant",
    "LeaseRequest",
    "LeaseState",
    "WaiterState",
]

#: A device: ``cpu`` (RAM) or ``cuda:N``.
Device = Annotated[str, msgspec.Meta(pattern=r"^(cpu|cuda:[0-9]{1,3})$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Bytes = Annotated[int, msgspec.Meta(ge=0)]
Priority = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]


class LeaseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Memory for one model, before it loads."""

    #: Who holds the lease (a pod's name); shown in the coordinator's state.
    holder: Label
    model: Label
    device: Device = "cpu"
    size_bytes: Bytes
    #: False: ``size_bytes`` is an estimate (the weights' file size), granted with headroom.
    measured: bool = False
    #: Higher goes first, and may evict a lower one at its next safe point.
    priority: Priority = 0
    #: Seconds the caller waits for memory (at most the coordinator's ``wait_timeout_s``).
    wait_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None


class LeaseGrant(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["coordinator.lease"] = "coordinator.lease"
    holder: str
    model: str
    device: str
    #: What was granted (an estimate's headroom included).
    size_bytes: int
    priority: int
    #: The lease ends this many seconds after the last heartbeat.
    ttl_s: float
    #: Send a heartbeat at least this often.
    heartbeat_s: float


class Heartbeat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The holder is alive; what its model uses now."""

    #: The model's measured size, once it has loaded (replaces the grant's).
    size_bytes: Bytes | None = None
    #: Requests running on the model now.
    active: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: Seconds since the model was last used.
    idle_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class HeartbeatReply(msgspec.Struct, kw_only=True):
    id: str
    #: The coordinator needs the memory: unload the model at its next safe point (when its
    #: running requests finish), then delete the lease.
    release: bool
    ttl_s: float


class LeaseDeleted(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["coordinator.lease.deleted"] = "coordinator.lease.deleted"
    deleted: bool = True


class DeviceState(msgspec.Struct, kw_only=True):
    device: str
    #: None: no budget (leases are recorded, never refused).
    budget_bytes: int | None
    used_bytes: int
    free_bytes: int | None


class LeaseState(msgspec.Struct, kw_only=True):
    id: str
    holder: str
    model: str
    device: str
    size_bytes: int
    #: False while the size is still the estimate's.
    measured: bool
    priority: int
    #: Unix time the lease was granted.
    since: float
    #: Unix time the model was last used.
    last_used: float
    active: int
    #: The coordinator asked the holder to unload the model.
    releasing: bool
    #: Seconds until the lease expires without a heartbeat (None: held in this process).
    expires_in_s: float | None


class WaiterState(msgspec.Struct, kw_only=True):
    holder: str
    model: str
    device: str
    size_bytes: int
    priority: int
    waiting_s: float


class CoordinatorState(msgspec.Struct, kw_only=True):
    object: Literal["coordinator"] = "coordinator"
    devices: list[DeviceState]
    leases: list[LeaseState]
    #: The models that hold a lease (loaded, or loading), by name.
    loaded_models: list[str]
    waiting: list[WaiterState]
