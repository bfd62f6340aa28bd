"""The coordinator: a memory budget per device, and leases granted within it.

A model's memory is leased before it loads and released after it unloads. A load that does not
fit waits (bounded: ``max_waiting`` waiters, each until its deadline) while the coordinator asks
the holders of other models to unload them (:mod:`aiplatform.coordinator.policy`). Waiters are
served by priority, then in arrival order, one device at a time: a later or lower-priority load
never takes memory that an earlier or higher-priority one is waiting for.

A holder in this process is asked through its ``on_release`` callback; one in another process
(a pod, over HTTP) learns it from the answer to its next heartbeat. Either unloads at its next
safe point and then releases the lease. A lease taken over HTTP expires when its heartbeats stop
for ``ttl_s``, so a pod that died frees its device.

The coordinator lives on one event loop; its state changes only in synchronous steps, so it
needs no lock. With ``check`` it verifies after every step that no device holds more than its
budget (tests run it so).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import anyio

from aiplatform.coordinator.api import (
    CoordinatorState,
    DeviceState,
    LeaseState,
    WaiterState,
)
from aiplatform.coordinator.policy import Candidate, choose_victims
from aiplatform.errors import EngineOverloadedError, NotFoundError, ServiceUnavailableError

__all__ = [
    "BudgetExceededError",
    "Claim",
    "Coordinator",
    "Decision",
    "InvariantError",
    "LeaseRecord",
    "MemoryUnavailableError",
]

logger = logging.getLogger(__name__)

#: What a refused load is told to wait before it tries again.
RETRY_AFTER_S = 5.0


class MemoryUnavailableError(ServiceUnavailableError):
    """No memory came free for a load within its deadline (503 with ``Retry-After``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="memory_unavailable", retry_after_s=RETRY_AFTER_S)


class BudgetExceededError(ServiceUnavailableError):
    """The model is larger than its device's whole budget: it can never load (503)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="memory_budget_exceeded")


class InvariantError(AssertionError):
    """A device holds more than its budget (raised only by a coordinator made with ``check``)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What a load asks for."""

    holder: str
    model: str
    device: str
    #: Bytes: measured at an earlier load, or (``measured=False``) an estimate.
    size: int
    measured: bool
    priority: int = 0


@dataclass(slots=True, eq=False)
class LeaseRecord:
    """A lease as the coordinator keeps it."""

    id: str
    claim: Claim
    size: int
    measured: bool
    since: float
    last_used: float
    active: int = 0
    releasing: bool = False
    #: Set for a lease taken over HTTP: it ends ``ttl_s`` after the last heartbeat.
    ttl_s: float | None = None
    expires: float | None = None
    on_release: Callable[[], None] | None = None

    def candidate(self) -> Candidate:
        return Candidate(
            id=self.id,
            model=self.claim.model,
            size=self.size,
            priority=self.claim.priority,
            active=self.active,
            last_used=self.last_used,
        )


@dataclass(slots=True, eq=False)
class _Waiter:
    claim: Claim
    size: int
    seq: int
    since: float
    deadline: float

    @property
    def order(self) -> tuple[int, int]:
        return (-self.claim.priority, self.seq)


@dataclass(frozen=True, slots=True)
class Decision:
    """What an observer sees: a grant, or holders asked to unload for a waiting load.

    ``candidates`` are the leases of the device the choice was made among (for an eviction:
    those not already asked to unload) and ``waiting`` every other load waiting for the device,
    so an observer can check the choice independently.
    """

    kind: Literal["grant", "evict"]
    claim: Claim
    size: int
    chosen: tuple[Candidate, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    waiting: tuple[Claim, ...] = ()
    used: int = 0
    budget: int | None = None


@dataclass(slots=True)
class _Device:
    budget: int | None
    #: A measured load came out larger than its grant and pushed the device over its budget;
    #: nothing is granted on it until releases bring it back under.
    overdrawn: bool = False
    leases: dict[str, LeaseRecord] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return sum(lease.size for lease in self.leases.values())


class Coordinator:
    """Budgets per device (bytes; None: no limit) and the leases granted within them."""

    def __init__(
        self,
        budgets: Mapping[str, int | None],
        *,
        wait_timeout_s: float = 30.0,
        max_waiting: int = 64,
        estimate_headroom: float = 2.0,
        lease_ttl_s: float = 15.0,
        check: bool = False,
        observer: Callable[[Decision], None] | None = None,
    ) -> None:
        self._devices = {name: _Device(budget) for name, budget in budgets.items()}
        self.wait_timeout_s = wait_timeout_s
        self._max_waiting = max_waiting
        self._headroom = estimate_headroom
        self.lease_ttl_s = lease_ttl_s
        self._check_enabled = check
        self._observer = observer
        self._waiters: list[_Waiter] = []
        self._seq = 0
        self._changed: anyio.Event | None = None
        #: leases granted so far
        self.granted = 0

    # -- leasing -----------------------------------------------------------------------------

    async def acquire(
        self,
        claim: Claim,
        *,
        on_release: Callable[[], None] | None = None,
        ttl_s: float | None = None,
        wait_s: float | None = None,
    ) -> LeaseRecord:
        """A lease for ``claim``, once its memory is free; waits at most ``wait_s`` (and never
        longer than ``wait_timeout_s``). ``on_release`` is how this process's holder is asked to
        unload; a lease with ``ttl_s`` (taken over HTTP) expires without heartbeats."""
        self._expire()
        device = self._device(claim.device)
        size = self._grant_size(claim, device)
        if device.budget is None:
            return self._grant(claim, size, device, on_release, ttl_s)
        if len(self._waiters) >= self._max_waiting:
            raise EngineOverloadedError(
                f"{len(self._waiters)} model loads already wait for memory; try again shortly.",
                retry_after_s=1.0,
                code="memory_queue_full",
            )
        wait = min(wait_s if wait_s is not None else math.inf, self.wait_timeout_s)
        now = time.monotonic()
        self._seq += 1
        waiter = _Waiter(claim, size, self._seq, now, now + wait)
        self._waiters.append(waiter)
        try:
            while True:
                self._expire()
                if self._first_in_line(waiter):
                    if not device.overdrawn and device.used + size <= (device.budget or 0):
                        return self._grant(claim, size, device, on_release, ttl_s)
                    self._make_room(device, claim, size)
                if time.monotonic() >= waiter.deadline:
                    raise MemoryUnavailableError(
                        f"No memory came free on {claim.device} for model '{claim.model}' "
                        f"({_mib(size)} MiB) within {wait:g}s; try again later."
                    )
                await self._wait_for_change(self._wake_at(device, waiter.deadline))
        finally:
            self._waiters.remove(waiter)
            self._notify()

    def release(self, lease_id: str) -> bool:
        """End a lease (its model has unloaded); False when there is none of that id."""
        for device in self._devices.values():
            lease = device.leases.pop(lease_id, None)
            if lease is not None:
                self._settle(device)
                self._notify()
                self._check()
                return True
        return False

    def touch(self, lease_id: str, *, active: int, idle_s: float = 0.0) -> None:
        """The holder's model runs ``active`` requests now, and was last used ``idle_s`` ago."""
        lease = self._lease(lease_id)
        was_busy = lease.active > 0
        lease.active = active
        lease.last_used = time.monotonic() - idle_s
        if was_busy and not active:
            self._notify()  # an idle model may now make room for a waiter

    def resize(self, lease_id: str, size: int) -> None:
        """The model's measured size replaces what was granted."""
        lease = self._lease(lease_id)
        device = self._devices[lease.claim.device]
        grown = size > lease.size
        lease.size, lease.measured = size, True
        if device.budget is not None and device.used > device.budget:
            if grown:
                device.overdrawn = True
                logger.warning(
                    "model %s measured %d MiB, more than its grant: %s is over its budget "
                    "until other models unload",
                    lease.claim.model,
                    _mib(size),
                    lease.claim.device,
                )
                self._make_room(device, lease.claim, 0, exclude=lease.id)
        else:
            device.overdrawn = False
        self._notify()
        self._check()

    def heartbeat(
        self, lease_id: str, *, size: int | None, active: int, idle_s: float
    ) -> LeaseRecord:
        """A remote holder is alive: its lease lives ``ttl_s`` longer. The record's
        ``releasing`` tells it to unload."""
        self._expire()
        lease = self._lease(lease_id)
        if lease.ttl_s is not None:
            lease.expires = time.monotonic() + lease.ttl_s
        self.touch(lease_id, active=active, idle_s=idle_s)
        if size is not None and (size != lease.size or not lease.measured):
            self.resize(lease_id, size)
        return lease

    # -- state -------------------------------------------------------------------------------

    def state(self) -> CoordinatorState:
        self._expire()
        now, wall = time.monotonic(), time.time()
        devices: list[DeviceState] = []
        leases: list[LeaseState] = []
        for name, device in sorted(self._devices.items()):
            used = device.used
            free = None if device.budget is None else device.budget - used
            devices.append(
                DeviceState(
                    device=name, budget_bytes=device.budget, used_bytes=used, free_bytes=free
                )
            )
            leases.extend(_lease_state(lease, now, wall) for lease in device.leases.values())
        waiting = [
            WaiterState(
                holder=w.claim.holder,
                model=w.claim.model,
                device=w.claim.device,
                size_bytes=w.size,
                priority=w.claim.priority,
                waiting_s=round(now - w.since, 3),
            )
            for w in sorted(self._waiters, key=lambda w: w.order)
        ]
        loaded = sorted({lease.model for lease in leases})
        return CoordinatorState(
            devices=devices, leases=leases, loaded_models=loaded, waiting=waiting
        )

    def leases(self) -> list[LeaseRecord]:
        self._expire()
        return [lease for device in self._devices.values() for lease in device.leases.values()]

    def find(self, lease_id: str) -> LeaseRecord | None:
        """The lease of that id, if it still exists."""
        self._expire()
        for device in self._devices.values():
            lease = device.leases.get(lease_id)
            if lease is not None:
                return lease
        return None

    # -- inside ------------------------------------------------------------------------------

    def _device(self, name: str) -> _Device:
        device = self._devices.get(name)
        if device is None:  # a device without a budget: recorded, never refused
            device = self._devices[name] = _Device(None)
        return device

    def _lease(self, lease_id: str) -> LeaseRecord:
        lease = self.find(lease_id)
        if lease is not None:
            return lease
        raise NotFoundError(
            f"There is no lease '{lease_id}' (it was released, or it expired).",
            code="lease_not_found",
        )

    def _grant_size(self, claim: Claim, device: _Device) -> int:
        """What to grant: a measured size as it is, an estimate with headroom (at most the
        whole budget). A model larger than the budget is refused at once."""
        if device.budget is not None and claim.size > device.budget:
            raise BudgetExceededError(
                f"Model '{claim.model}' needs {_mib(claim.size)} MiB, more than the whole "
                f"budget of {claim.device} ({_mib(device.budget)} MiB)."
            )
        if claim.measured:
            return claim.size
        size = math.ceil(claim.size * self._headroom)
        return size if device.budget is None else min(size, device.budget)

    def _grant(
        self,
        claim: Claim,
        size: int,
        device: _Device,
        on_release: Callable[[], None] | None,
        ttl_s: float | None,
    ) -> LeaseRecord:
        now = time.monotonic()
        lease = LeaseRecord(
            id="lease_" + secrets.token_urlsafe(16),
            claim=claim,
            size=size,
            measured=claim.measured,
            since=now,
            last_used=now,
            ttl_s=ttl_s,
            expires=None if ttl_s is None else now + ttl_s,
            on_release=on_release,
        )
        if self._observer is not None:
            self._observe("grant", claim, size, device)
        device.leases[lease.id] = lease
        self.granted += 1
        self._check()
        return lease

    def _first_in_line(self, waiter: _Waiter) -> bool:
        """No earlier or higher-priority load waits for the same device."""
        device = waiter.claim.device
        return all(
            other.order >= waiter.order for other in self._waiters if other.claim.device == device
        )

    def _make_room(
        self, device: _Device, claim: Claim, size: int, *, exclude: str | None = None
    ) -> None:
        """Ask holders (policy order) to unload until ``size`` more fits, counting what those
        already asked will free."""
        budget = device.budget or 0
        leaving = sum(lease.size for lease in device.leases.values() if lease.releasing)
        need = device.used - leaving + size - budget
        others = [
            lease.candidate()
            for lease in device.leases.values()
            if not lease.releasing and lease.id != exclude
        ]
        chosen = choose_victims(others, need=need, priority=claim.priority)
        if not chosen:
            return
        if self._observer is not None:
            self._observe("evict", claim, size, device, chosen=tuple(chosen), considered=others)
        for victim in chosen:
            self._ask_to_release(device.leases[victim.id])

    def _ask_to_release(self, lease: LeaseRecord) -> None:
        lease.releasing = True
        logger.info(
            "asking %s to unload model %s (%d MiB) to make room",
            lease.claim.holder,
            lease.claim.model,
            _mib(lease.size),
        )
        if lease.on_release is not None:
            try:
                lease.on_release()
            except Exception:
                logger.exception(
                    "the holder of model %s failed to take the request to unload",
                    lease.claim.model,
                )
                lease.releasing = False

    def _settle(self, device: _Device) -> None:
        if device.budget is None or device.used <= device.budget:
            device.overdrawn = False

    def _expire(self) -> None:
        now = time.monotonic()
        for device in self._devices.values():
            expired = [
                lease
                for lease in device.leases.values()
                if lease.expires is not None and lease.expires <= now
            ]
            for lease in expired:
                logger.warning(
                    "lease of %s for model %s expired (no heartbeat for %gs): its %d MiB are free",
                    lease.claim.holder,
                    lease.claim.model,
                    lease.ttl_s,
                    _mib(lease.size),
                )
                del device.leases[lease.id]
            if expired:
                self._settle(device)
                self._notify()
                self._check()

    def _wake_at(self, device: _Device, deadline: float) -> float:
        """When a waiter must look again without being told: its deadline, or the first
        expiry of a lease on its device."""
        expiries = [lease.expires for lease in device.leases.values() if lease.expires is not None]
        return min([deadline, *expiries])

    async def _wait_for_change(self, until: float) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        changed = self._changed
        with anyio.move_on_after(max(until - time.monotonic(), 0.0)):
            await changed.wait()

    def _notify(self) -> None:
        """Wake every waiter to look again."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _observe(
        self,
        kind: Literal["grant", "evict"],
        claim: Claim,
        size: int,
        device: _Device,
        *,
        chosen: tuple[Candidate, ...] = (),
        considered: list[Candidate] | None = None,
    ) -> None:
        assert self._observer is not None
        if considered is None:
            considered = [lease.candidate() for lease in device.leases.values()]
        self._observer(
            Decision(
                kind=kind,
                claim=claim,
                size=size,
                chosen=chosen,
                candidates=tuple(considered),
                waiting=tuple(
                    w.claim
                    for w in self._waiters
                    if w.claim.device == claim.device and w.claim is not claim
                ),
                used=device.used,
                budget=device.budget,
            )
        )

    def _check(self) -> None:
        if not self._check_enabled:
            return
        for name, device in self._devices.items():
            if device.budget is None or device.overdrawn:
                continue
            if device.used > device.budget:
                raise InvariantError(
                    f"{name} holds {device.used} bytes, over its budget of {device.budget}"
                )
        if len(self._waiters) > self._max_waiting:
            raise InvariantError(f"{len(self._waiters)} waiters, over {self._max_waiting}")


def _lease_state(lease: LeaseRecord, now: float, wall: float) -> LeaseState:
    claim = lease.claim
    return LeaseState(
        id=lease.id,
        holder=claim.holder,
        model=claim.model,
        device=claim.device,
        size_bytes=lease.size,
        measured=lease.measured,
        priority=claim.priority,
        since=round(wall - (now - lease.since), 3),
        last_used=round(wall - (now - lease.last_used), 3),
        active=lease.active,
        releasing=lease.releasing,
        expires_in_s=None if lease.expires is None else round(max(lease.expires - now, 0.0), 3),
    )


def _mib(size: int) -> int:
    return math.ceil(size / 2**20)
