"""Every operation of every registered kind, run from the example it declares on the fake
backends, answers the same in-process, through an ASGI pod and through a real
``aiplatform serve --engines KIND`` process. A kind is covered the day it is registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.testing import MODES, Mode, engine_in_mode, fake_settings, normalized, run_examples

pytestmark = pytest.mark.anyio


async def outcomes(mode: Mode, kind: str, folder: Path) -> dict[str, Any]:
    """Each operation's example (and each streaming operation's, streamed) on a fresh engine,
    by operation, with ids and timestamps normalised."""
    async with engine_in_mode(mode, kind, fake_settings(folder)) as engine:
        answers = await run_examples(engine)
        streamed = await run_examples(engine, stream=True)
    by_name = {outcome.operation: outcome for outcome in answers}
    by_name |= {f"{outcome.operation} (streamed)": outcome for outcome in streamed}
    result: dict[str, Any] = normalized(
        {name: {"answer": o.answer, "error": o.error} for name, o in by_name.items()}
    )
    return result


def test_every_operation_declares_an_example() -> None:
    missing = [
        f"{kind.name}.{op.name}"
        for kind in ENGINE_KINDS.values()
        for op in kind.operations
        if op.example is None
    ]
    assert missing == []


@pytest.mark.parametrize("kind", list(ENGINE_KINDS))
async def test_every_example_is_answered_in_process(kind: str, tmp_path: Path) -> None:
    got = await outcomes("local", kind, tmp_path)
    assert got
    failed = {name: outcome["error"] for name, outcome in got.items() if outcome["error"]}
    assert failed == {}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(ENGINE_KINDS))
async def test_every_operation_answers_as_in_process(kind: str, mode: Mode, tmp_path: Path) -> None:
    want = await outcomes("local", kind, tmp_path / "reference")
    got = await outcomes(mode, kind, tmp_path / "under-test")
    assert got == want
