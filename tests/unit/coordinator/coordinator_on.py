"""A pytest plugin (``-p tests.unit.coordinator.coordinator_on``): every LLM engine the tests
build leases its models' memory from one in-process coordinator, with its checker on.

The budget is ample, so the tests see the same behaviour as with the coordinator off; what the
run proves is that leasing, measuring and releasing change nothing they check. At the end, the
run fails unless the coordinator granted leases and every one of them was released.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from aiplatform.coordinator.context import leasing_from
from aiplatform.coordinator.core import Coordinator
from aiplatform.coordinator.leases import LocalLeaser

COORDINATOR = Coordinator({"cpu": 64 * 2**30}, check=True)
_installed = ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    _installed.enter_context(leasing_from(LocalLeaser(COORDINATOR, holder="suite")))


def pytest_unconfigure(config: pytest.Config) -> None:
    _installed.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = [lease.claim.model for lease in COORDINATOR.leases()]
    print(f"\ncoordinator: {COORDINATOR.granted} leases granted, {len(left)} left: {left}")
    if COORDINATOR.granted == 0 or left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
