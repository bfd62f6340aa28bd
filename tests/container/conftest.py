"""The container tests build the image (minutes) and run it with podman, so they run only under
``make container-test``, which sets AIPLATFORM_CONTAINER_TESTS=1; a plain ``pytest`` or
``make test`` does not collect them."""

from __future__ import annotations

import json
import os
import time

import pytest

from aiplatform import __version__
from tests.container import podman

ENABLED = os.environ.get("AIPLATFORM_CONTAINER_TESTS") == "1"
collect_ignore_glob = [] if ENABLED else ["test_*.py"]

_BEGAN = time.monotonic()


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built on a local Debian base (no registry is reachable)."""
    missing = podman.missing_tools()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: make container-test installs them")
    return podman.build_image(podman.base_image(), __version__)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every measured step and figure, also written to .container/timings.json."""
    if not podman.TIMINGS:
        return
    total = time.monotonic() - _BEGAN
    terminalreporter.section("container timings")
    for step, seconds in podman.TIMINGS.items():
        terminalreporter.write_line(f"{step:<58} {seconds:8.1f} s")
    terminalreporter.write_line(f"{'total (session)':<58} {total:8.1f} s")
    for name, value in podman.FIGURES.items():
        terminalreporter.write_line(f"{name:<58} {value}")
    record = {"seconds": podman.TIMINGS, "total_s": total, "figures": podman.FIGURES}
    (podman.BUILD_DIR / "timings.json").write_text(json.dumps(record, indent=2) + "\n")
