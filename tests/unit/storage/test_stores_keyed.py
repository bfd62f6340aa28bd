"""Every engine that keeps databases, built with the storage key as the server builds it: each
operation answers as it does without a key, every database it wrote is encrypted, and the same
files opened without the key, with another one, or written plain and opened with one, stop the
engine at start-up with an error that names the file."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aiplatform.engines.base import Engine
from aiplatform.engines.registry import engine_kind
from aiplatform.errors import EngineUnavailableError
from aiplatform.server.wiring import build_engine
from aiplatform.settings import Settings
from aiplatform.storage import StorageKeyError
from aiplatform.testing import fake_settings, normalized, run_examples

pytestmark = pytest.mark.anyio

KEY = "a storage key for the tests only"
#: The kinds whose in-process engines keep databases.
STORING = ["rag", "datasets", "speakers", "analytics"]
#: Those whose every operation is run with the key (the analytics engine's job queue is the
#: job store the RAG engine's ingest jobs use; its runs take seconds of worker processes).
RUN = ["rag", "datasets", "speakers"]


@asynccontextmanager
async def started(settings: Settings, name: str, key: str | None) -> AsyncIterator[Engine]:
    """Engine ``name`` built and started with ``key``, with the engines it needs."""
    kind = engine_kind(name)
    section = settings.engine(name)
    async with AsyncExitStack() as stack:
        needs: dict[str, Engine] = {}
        for needed in kind.needs(section):
            built = build_engine(engine_kind(needed), settings.engine(needed), storage_key=key)
            needs[needed] = await stack.enter_async_context(built)
        yield await stack.enter_async_context(
            build_engine(kind, section, needs=needs, storage_key=key)
        )


def databases(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.sqlite3"))


def plain_sqlite_error(path: Path) -> str | None:
    """What SQLite itself says when asked to read ``path`` (None: it reads it)."""
    db = sqlite3.connect(path)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    return None


async def examples(settings: Settings, name: str, key: str | None) -> Any:
    """Each operation's example, by operation (ids and timestamps normalised); none fails."""
    async with started(settings, name, key) as engine:
        outcomes = await run_examples(engine)
    answers = {o.operation: {"answer": o.answer, "error": o.error} for o in outcomes}
    assert {op: got["error"] for op, got in answers.items() if got["error"]} == {}
    return normalized(answers)


@pytest.mark.parametrize("name", RUN)
async def test_with_the_key_every_operation_answers_as_without_it(
    tmp_path: Path, name: str
) -> None:
    plain = await examples(fake_settings(tmp_path / "plain"), name, None)
    keyed = await examples(fake_settings(tmp_path / "keyed"), name, KEY)
    assert keyed == plain
    written = databases(tmp_path / "keyed" / name)
    assert written, f"the {name} engine wrote no database"
    assert {path.name: plain_sqlite_error(path) for path in written} == {
        path.name: "file is not a database" for path in written
    }
    plain_files = databases(tmp_path / "plain" / name)
    assert [plain_sqlite_error(path) for path in plain_files] == [None] * len(written)


async def start_and_stop(settings: Settings, name: str, key: str | None) -> None:
    """Start the engine (which creates its databases) and stop it."""
    async with started(settings, name, key) as engine:
        await engine.wait_loaded()  # type: ignore[attr-defined]
    assert databases(settings_folder(settings, name))


def settings_folder(settings: Settings, name: str) -> Path:
    return Path(getattr(settings.engine(name), "data_dir"))  # noqa: B009 (every storing kind has one)


async def load_error(settings: Settings, name: str, key: str | None) -> str:
    """Why the engine did not start: it refused to (its job queue opens before it serves), or
    it started but its load failed, which readiness and every request report."""
    try:
        async with started(settings, name, key) as engine:
            with pytest.raises(EngineUnavailableError) as caught:
                await engine.wait_loaded()  # type: ignore[attr-defined]
    except StorageKeyError as refused:
        return str(refused)
    return caught.value.message


@pytest.mark.parametrize("name", STORING)
async def test_the_wrong_key_or_none_stops_the_engine_naming_the_file(
    tmp_path: Path, name: str
) -> None:
    settings = fake_settings(tmp_path)
    await start_and_stop(settings, name, KEY)
    without = await load_error(settings, name, None)
    assert "cannot be opened without a storage key" in without
    assert str(tmp_path / name) in without
    wrong = await load_error(settings, name, "not the key these files were written with")
    assert "cannot be opened with the configured storage key" in wrong
    assert str(tmp_path / name) in wrong


@pytest.mark.parametrize("name", STORING)
async def test_plain_files_are_refused_once_a_key_is_configured(tmp_path: Path, name: str) -> None:
    settings = fake_settings(tmp_path)
    await start_and_stop(settings, name, None)
    message = await load_error(settings, name, KEY)
    assert "cannot be opened with the configured storage key (wrong key, or the file is not " in (
        message
    )
    assert str(tmp_path / name) in message
