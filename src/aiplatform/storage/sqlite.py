"""Every SQLite database the engines keep is opened here: plain SQLite, or SQLCipher under the
configured storage key.

With a key the file is opened with ``sqlcipher3`` (SQLite with SQLCipher 4 linked in): every
page, the write-ahead log's included, is encrypted with AES-256 and authenticated with
HMAC-SHA512. The key is stretched once per process (PBKDF2-HMAC-SHA512, the iterations
SQLCipher 4 applies to a passphrase) into 32 raw bytes, which SQLCipher receives as a hex blob
literal: no connection repeats the stretching (0.45 s each when SQLCipher is given the
passphrase), and no text of the key is ever spliced into SQL.

Each connection proves its key before it is handed out, by reading the schema: a wrong key, a
plain file opened with a key and an encrypted file opened without one all fail there, with a
:class:`StorageKeyError` naming the file, before a store reads or writes anything.

A SQLCipher connection has the interface of :class:`sqlite3.Connection` (the same module,
compiled with SQLCipher) but exception classes and a row type of its own: stores catch the
connection's own ``connection.IntegrityError`` and ask for rows by name with
``named_rows=True``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, cast

__all__ = [
    "StorageKeyError",
    "connect",
    "not_a_database",
    "raw_key",
    "sqlcipher",
    "write_transaction",
]

#: PBKDF2 salt: fixed, as every file is opened with the one derived key (SQLCipher still salts
#: each file's page authentication key with the file's own random salt).
_SALT = b"aiplatform.storage.sqlcipher"
_ITERATIONS = 256_000
_SQLITE_NOTADB = 26


class StorageKeyError(RuntimeError):
    """A database cannot be opened with the storage key as configured."""

    def __init__(self, path: str | os.PathLike[str], *, keyed: bool) -> None:
        self.path = Path(path)
        if keyed:
            message = (
                f"{path} cannot be opened with the configured storage key (wrong key, or the "
                "file is not encrypted)"
            )
        else:
            message = (
                f"{path} cannot be opened without a storage key (the file is encrypted, or it "
                "is not a database)"
            )
        super().__init__(message)


def connect(
    path: str | os.PathLike[str],
    *,
    key: str | None,
    named_rows: bool = False,
    **options: Any,
) -> sqlite3.Connection:
    """The database at ``path``, created if missing: encrypted under ``key`` (plain when None),
    its key checked. ``options`` are :func:`sqlite3.connect`'s; ``named_rows`` makes rows
    readable by column name as well as by position (the driver's ``Row``)."""
    driver = sqlite3 if key is None else sqlcipher()
    connection = cast(sqlite3.Connection, driver.connect(os.fspath(path), **options))
    try:
        if key is not None:
            connection.execute(f"PRAGMA key = \"x'{raw_key(key).hex()}'\"")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except connection.DatabaseError as exc:
        connection.close()
        if not_a_database(exc):
            raise StorageKeyError(path, keyed=key is not None) from exc
        raise
    except BaseException:
        connection.close()
        raise
    if named_rows:
        connection.row_factory = driver.Row
    return connection


def not_a_database(exc: Exception) -> bool:
    """Whether SQLite (or SQLCipher) refused a file as not a database: what a wrong or missing
    key looks like to it."""
    return getattr(exc, "sqlite_errorcode", None) == _SQLITE_NOTADB


@functools.lru_cache(maxsize=4)
def raw_key(key: str) -> bytes:
    """The 32 bytes SQLCipher encrypts with under ``key`` (``PRAGMA key = "x'<hex>'"`` opens a
    file by hand, in the ``sqlcipher`` shell or any SQLCipher 4 client)."""
    if not key:
        raise ValueError("the storage key is empty")
    return hashlib.pbkdf2_hmac("sha512", key.encode(), _SALT, _ITERATIONS, dklen=32)


def sqlcipher() -> ModuleType:
    """The SQLCipher driver, imported only when a key is configured."""
    try:
        return importlib.import_module("sqlcipher3")
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "a storage encryption key is configured, but SQLCipher is not installed: "
            "pip install 'aiplatform[storage]'"
        ) from exc


@contextmanager
def write_transaction(db: sqlite3.Connection, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction on ``db`` while holding ``lock``
    (rolled back on an error). ``db`` must be in autocommit mode (``isolation_level=None``)."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
