"""The accelerator-memory coordinator: a memory budget per device, leased to the engines' models.

Engines lease their models' memory before loading them (:mod:`aiplatform.coordinator.leases`)
from a :class:`~aiplatform.coordinator.core.Coordinator` in the same process, or from one that
another server runs (``[coordinator] url``); see ``docs/coordinator.md``.
"""

from aiplatform.coordinator.core import Claim, Coordinator
from aiplatform.coordinator.leases import Lease, Leaser, LocalLeaser, RemoteLeaser
from aiplatform.coordinator.settings import CoordinatorSettings

__all__ = [
    "Claim",
    "Coordinator",
    "CoordinatorSettings",
    "Lease",
    "Leaser",
    "LocalLeaser",
    "RemoteLeaser",
]
