"""A pytest plugin that runs any tests with every store's database encrypted:

    .venv/bin/pytest -p tests.unit.storage.keyed_stores tests/unit/rag tests/unit/test_jobs.py

Each store module's ``connect`` is replaced by one that opens its file under a test key when
the store was given none, and every file opened so is checked, after its test, to be
unreadable as plain SQLite. Tests that read a store's file with :mod:`sqlite3` themselves
cannot pass under it (they find an encrypted file); the rest run as they do without a key.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiplatform.storage.sqlite import connect

KEY = "the storage key of a keyed test run"
#: Every module that opens a database (each imports ``connect`` by name).
STORE_MODULES = (
    "aiplatform.engines.jobs.store",
    "aiplatform.engines.rag.database",
    "aiplatform.engines.datasets.store",
    "aiplatform.engines.speakers.store",
)


@pytest.fixture(autouse=True)
def _stores_encrypted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    opened: set[Path] = set()

    def keyed(path: str | os.PathLike[str], *, key: str | None, **options: Any) -> Any:
        opened.add(Path(path))
        return connect(path, key=key or KEY, **options)

    for name in STORE_MODULES:
        module = importlib.import_module(name)
        assert module.connect is connect, f"{name} does not open its database with connect()"
        monkeypatch.setattr(module, "connect", keyed)
    yield
    readable = [str(path) for path in sorted(opened) if path.exists() and _plain(path)]
    assert readable == [], "these databases were written unencrypted"


def _plain(path: Path) -> bool:
    db = sqlite3.connect(path)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()
    return True
