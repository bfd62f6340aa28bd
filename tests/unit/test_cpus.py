"""The default thread count follows a container's CPU limit, not the machine's core count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiplatform.engines.cpus import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),  # no quota
        ("100000 100000\n", 1),  # limits.cpu: 1
        ("150000 100000\n", min(2, AFFINITY)),  # 1.5 CPUs: two threads, never fewer than 1
        ("50000 100000\n", 1),  # half a CPU
        ("garbage\n", AFFINITY),
    ],
)
def test_a_cgroup_quota_caps_the_affinity(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cpus(path) == expected


def test_without_a_cgroup_file_the_affinity_counts(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "missing") == AFFINITY
