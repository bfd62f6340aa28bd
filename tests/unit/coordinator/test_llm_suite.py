"""The LLM engine's own tests pass with the memory coordinator on in-process, too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LLM_TESTS = [
    "tests/unit/engines/test_llm_residency.py",
    "tests/unit/engines/test_llm_unload_races.py",
    "tests/unit/engines/test_llm_slots.py",
    "tests/unit/engines/test_llm_pieces.py",
    "tests/unit/engines/test_llm_templates.py",
    "tests/contract/test_llm.py",
]


def test_llm_tests_pass_with_the_coordinator_on() -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "tests.unit.coordinator.coordinator_on", "-m", "not slow", *LLM_TESTS,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " 0 left" in done.stdout
    assert "passed" in done.stdout
