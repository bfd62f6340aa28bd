"""The ``[coordinator]`` section: memory budgets per device, and where leases come from."""

from __future__ import annotations

from typing import Annotated

import msgspec

from aiplatform.engines.settings import PositiveFloat, PositiveInt

__all__ = ["CoordinatorSettings"]

#: A CUDA device's index, as ``cuda_budget_mib`` names it.
DeviceIndex = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,3}$")]


class CoordinatorSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Off unless a budget is set, ``serve`` is on, or ``url`` names a coordinator: then every
    model load first leases its memory (see ``docs/coordinator.md``)."""

    #: RAM in MiB that the models loaded on this machine may hold together; unset: no limit.
    cpu_budget_mib: PositiveInt | None = None
    #: GPU memory in MiB per CUDA device, by index (``{0 = 70000}``, or
    #: ``AIPLATFORM_COORDINATOR__CUDA_BUDGET_MIB__0=70000``); a device not named has no limit.
    cuda_budget_mib: dict[DeviceIndex, PositiveInt] = msgspec.field(default_factory=dict)
    #: Serve the lease routes (``/v1/coordinator/leases``) so that engine pods on this machine
    #: lease their memory from this server.
    serve: bool = False
    #: Lease memory from the coordinator at this URL (a pod of a split deployment) instead of
    #: keeping budgets here; the pod presents ``[auth] service_token``.
    url: str | None = None
    #: Seconds a lease taken over HTTP lives without a heartbeat: a pod that died (or cannot
    #: reach the coordinator) frees its device after this long.
    lease_ttl_s: PositiveFloat = 15.0
    #: Seconds a model load may wait for memory; past it the request is refused with 503
    #: ``memory_unavailable`` and a ``Retry-After`` header.
    wait_timeout_s: PositiveFloat = 30.0
    #: Loads that may wait for memory at once; one more is refused at once with 429
    #: ``memory_queue_full``.
    max_waiting: PositiveInt = 64
    #: A model not measured yet is granted this multiple of its weights' file size (at most
    #: the whole budget): room for the contexts and buffers a load adds. Its measured size
    #: replaces the estimate once it has loaded.
    estimate_headroom: Annotated[float, msgspec.Meta(ge=1.0)] = 2.0
    #: The name this server's leases are listed under; unset: its host name and process id.
    holder: str | None = None
    #: Seconds a call to ``url`` may take to connect; a lease request also waits up to
    #: ``wait_timeout_s`` for memory.
    connect_timeout_s: PositiveFloat = 3.0

    @property
    def budgets_mib(self) -> dict[str, int | None]:
        """The budget of each device named: ``cpu`` and ``cuda:N``."""
        budgets: dict[str, int | None] = {"cpu": self.cpu_budget_mib}
        budgets.update({f"cuda:{index}": mib for index, mib in self.cuda_budget_mib.items()})
        return budgets

    @property
    def in_process(self) -> bool:
        """Whether this server keeps a coordinator of its own."""
        return self.serve or self.cpu_budget_mib is not None or bool(self.cuda_budget_mib)
