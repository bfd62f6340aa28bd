"""How many CPUs this process may really use: the default thread count of the model runtimes.

``os.cpu_count()`` is the machine's count. In a container with a CPU limit (a Kubernetes pod
with ``limits.cpu: 4`` on a 64-core node) the kernel lets the process run only as much as the
limit, so 64 threads would spend most of their time throttled. The limit is the cgroup's CPU
quota (``cpu.max``: quota and period, in microseconds).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cpus"]

_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = _CPU_MAX) -> int:
    """CPUs this process may run on (its affinity), capped by its cgroup's CPU quota; at
    least 1."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return max(1, count)
