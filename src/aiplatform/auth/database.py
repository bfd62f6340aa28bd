"""Where the identities are kept: a SQLite file of the server's own, or a PostgreSQL database
every gateway replica and pod shares (``[auth] database_url``).

The store writes one SQL dialect both accept (``?`` placeholders, ``ON CONFLICT DO NOTHING``,
``RETURNING``); the PostgreSQL side turns the placeholders into psycopg's. Both sides are
blocking and thread-safe: the auth service calls them from worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from aiplatform.errors import ServiceUnavailableError
from aiplatform.storage.sqlite import connect, write_transaction

__all__ = ["Database", "Executor", "PostgresDatabase", "SqliteDatabase", "open_database"]

Params = Sequence[object]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Executor(Protocol):
    """What a transaction runs its statements on."""

    def execute(self, sql: str, params: Params = (), /) -> Cursor: ...


class Database(Protocol):
    def read(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (outside any write transaction)."""
        ...

    def transaction(self) -> AbstractContextManager[Executor]:
        """A write transaction: committed when the block ends, rolled back on an error."""
        ...

    def close(self) -> None: ...


def open_database(
    schema: str, *, folder: Path, url: str | None, storage_key: str | None, timeout_s: float
) -> Database:
    """The PostgreSQL database at ``url``, or the SQLite file ``auth.sqlite3`` in ``folder``
    (encrypted under ``storage_key`` when given), its tables created if missing."""
    if url is not None:
        return PostgresDatabase(url, schema, timeout_s=timeout_s)
    return SqliteDatabase(folder / "auth.sqlite3", schema, key=storage_key)


class SqliteDatabase:
    def __init__(self, path: Path, schema: str, *, key: str | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path, key=key, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(schema)
        self._lock = threading.Lock()

    def read(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    def transaction(self) -> AbstractContextManager[Executor]:
        return write_transaction(self._db, self._lock)

    def close(self) -> None:
        with self._lock:
            self._db.close()


#: Held while the tables are created, so replicas starting together do not race on them.
_SCHEMA_LOCK = 0x61697061  # "aipa"


class PostgresDatabase:
    """A small pool of connections to one PostgreSQL database (psycopg 3). A database that
    cannot be reached is a 503 for the request that needed it, not a hang: connecting and
    waiting for a pooled connection both have deadlines."""

    def __init__(
        self, url: str, schema: str, *, max_connections: int = 8, timeout_s: float = 10.0
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "[auth] database_url names a PostgreSQL database, but psycopg is not "
                "installed: pip install 'aiplatform[postgres]'"
            ) from exc
        self._errors: tuple[type[Exception], ...] = (psycopg.OperationalError, _pool_timeout())
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_s,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s))},
            check=ConnectionPool.check_connection,
            name="aiplatform-auth",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:
            self._pool.close()
            raise RuntimeError(
                f"cannot reach the auth database ([auth] database_url): {exc}"
            ) from exc
        with self.transaction() as db:
            db.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            for statement in filter(None, (part.strip() for part in schema.split(";"))):
                db.execute(statement)

    def read(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._unavailable_as_503(), self._pool.connection() as connection:
            return list(connection.execute(_placeholders(sql), params).fetchall())

    @contextmanager
    def transaction(self) -> Iterator[Executor]:
        with (
            self._unavailable_as_503(),
            self._pool.connection() as connection,
            connection.transaction(),
        ):
            yield _PostgresExecutor(connection)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _unavailable_as_503(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise ServiceUnavailableError(
                "The identity database cannot be reached; try again shortly.",
                code="auth_database_unavailable",
            ) from exc


class _PostgresExecutor:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Params = (), /) -> Cursor:
        cursor: Cursor = self._connection.execute(_placeholders(sql), params)
        return cursor


def _placeholders(sql: str) -> str:
    """psycopg's ``%s`` for each ``?`` (the store's SQL holds no other ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def _pool_timeout() -> type[Exception]:
    from psycopg_pool import PoolTimeout

    return PoolTimeout
