"""Tenants, users, API keys and login sessions, in SQLite or PostgreSQL
(:mod:`aiplatform.auth.database`; blocking: call from a thread).

Secrets are never stored: passwords as Argon2id hashes (made by the caller), API keys and
refresh tokens as SHA-256 digests of their random part (they are 256-bit random values, so a
fast hash is enough, as for any bearer token; compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from aiplatform.auth.database import open_database
from aiplatform.auth.identity import Role

__all__ = ["AuthStore", "KeyRow", "SessionRow", "UserRow", "digest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    engines TEXT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    refresh_digest TEXT NOT NULL UNIQUE,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
"""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class UserRow:
    username: str
    tenant: str
    role: Role
    password_hash: str
    failed_logins: int
    locked_until: float
    created_at: int


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    tenant: str
    name: str
    engines: tuple[str, ...] | None
    expires_at: int | None
    created_at: int
    created_by: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    username: str
    expires_at: float
    revoked: bool


class AuthStore:
    """The auth database: the PostgreSQL database at ``url``, or ``auth.sqlite3`` in
    ``folder`` (encrypted under ``key`` when given). Every method is blocking and
    thread-safe; with PostgreSQL, none waits longer than ``timeout_s`` for the database."""

    def __init__(
        self,
        folder: Path,
        *,
        key: str | None = None,
        url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.folder = folder
        self._db = open_database(
            _SCHEMA, folder=folder, url=url, storage_key=key, timeout_s=timeout_s
        )
        self._transaction = self._db.transaction

    def close(self) -> None:
        self._db.close()

    # -- tenants --------------------------------------------------------------------------------

    def add_tenant(self, name: str) -> bool:
        """Whether it was added (False: it exists)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, int(time.time())),
            )
            return cursor.rowcount == 1

    def tenants(self) -> list[tuple[str, int]]:
        rows = self._db.read("SELECT name, created_at FROM tenants ORDER BY name")
        return [(str(name), int(created)) for name, created in rows]

    def tenant_exists(self, name: str) -> bool:
        return bool(self._db.read("SELECT 1 FROM tenants WHERE name = ?", (name,)))

    def delete_tenant(self, name: str) -> str:
        """``deleted``, ``missing``, or ``in_use`` (users or keys still belong to it)."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)).fetchone() is None:
                return "missing"
            for table in ("users", "api_keys"):
                query = f"SELECT 1 FROM {table} WHERE tenant = ? LIMIT 1"
                if db.execute(query, (name,)).fetchone() is not None:
                    return "in_use"
            db.execute("DELETE FROM tenants WHERE name = ?", (name,))
            return "deleted"

    # -- users ----------------------------------------------------------------------------------

    def user_count(self) -> int:
        ((count,),) = self._db.read("SELECT COUNT(*) FROM users")
        return int(count)

    def add_user(self, username: str, tenant: str, role: Role, password_hash: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO users (username, tenant, role, password_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (username, tenant, role, password_hash, int(time.time())),
            )
            return cursor.rowcount == 1

    def user(self, username: str) -> UserRow | None:
        rows = self._db.read(
            "SELECT username, tenant, role, password_hash, failed_logins, locked_until, "
            "created_at FROM users WHERE username = ?",
            (username,),
        )
        return UserRow(*rows[0]) if rows else None

    def users(self) -> list[UserRow]:
        rows = self._db.read(
            "SELECT username, tenant, role, password_hash, failed_logins, locked_until, "
            "created_at FROM users ORDER BY username"
        )
        return [UserRow(*row) for row in rows]

    def update_user(
        self,
        username: str,
        *,
        tenant: str | None = None,
        role: Role | None = None,
        password_hash: str | None = None,
    ) -> bool:
        changes = {"tenant": tenant, "role": role, "password_hash": password_hash}
        fields = {key: value for key, value in changes.items() if value is not None}
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is None:
                return False
            for key, value in fields.items():
                db.execute(f"UPDATE users SET {key} = ? WHERE username = ?", (value, username))
            if password_hash is not None or tenant is not None or role is not None:
                # a changed identity ends every session made with the old one
                db.execute("UPDATE sessions SET revoked = 1 WHERE username = ?", (username,))
            if password_hash is not None:
                db.execute(
                    "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE username = ?",
                    (username,),
                )
            return True

    def delete_user(self, username: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))
            return db.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount == 1

    def record_login(self, username: str, *, ok: bool, max_failed: int, lockout_s: float) -> None:
        """Count a failed login (locking the account at ``max_failed``) or reset the count."""
        with self._transaction() as db:
            if ok:
                db.execute(
                    "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE username = ?",
                    (username,),
                )
                return
            db.execute(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE username = ?",
                (username,),
            )
            db.execute(
                "UPDATE users SET locked_until = ?, failed_logins = 0 "
                "WHERE username = ? AND failed_logins >= ?",
                (time.time() + lockout_s, username, max_failed),
            )

    # -- API keys -------------------------------------------------------------------------------

    def add_key(
        self,
        key_id: str,
        secret: str,
        *,
        tenant: str,
        name: str,
        engines: list[str] | None,
        expires_at: int | None,
        created_by: str,
    ) -> KeyRow:
        created_at = int(time.time())
        engines_text = msgspec.json.encode(engines).decode() if engines is not None else None
        with self._transaction() as db:
            db.execute(
                "INSERT INTO api_keys (id, tenant, name, digest, engines, expires_at, created_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, tenant, name, digest(secret), engines_text, expires_at, created_at,
                 created_by),
            )  # fmt: skip
        return KeyRow(
            key_id, tenant, name, tuple(engines) if engines is not None else None,
            expires_at, created_at, created_by,
        )  # fmt: skip

    def key_for(self, key_id: str, secret: str) -> KeyRow | None:
        """The key ``key_id`` when ``secret`` is its secret."""
        rows = self._db.read(
            "SELECT id, tenant, name, engines, expires_at, created_at, created_by, digest "
            "FROM api_keys WHERE id = ?",
            (key_id,),
        )
        if not rows or not hmac.compare_digest(str(rows[0][7]), digest(secret)):
            return None
        return _key_row(rows[0])

    def keys(self, tenant: str) -> list[KeyRow]:
        rows = self._db.read(
            "SELECT id, tenant, name, engines, expires_at, created_at, created_by "
            "FROM api_keys WHERE tenant = ? ORDER BY created_at, id",
            (tenant,),
        )
        return [_key_row(row) for row in rows]

    def delete_key(self, key_id: str, tenant: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM api_keys WHERE id = ? AND tenant = ?", (key_id, tenant)
            )
            return cursor.rowcount == 1

    # -- sessions -------------------------------------------------------------------------------

    def add_session(
        self, session_id: str, username: str, refresh_secret: str, expires_at: float
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sessions (id, username, refresh_digest, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (session_id, username, digest(refresh_secret), expires_at),
            )

    def session(self, session_id: str) -> SessionRow | None:
        rows = self._db.read(
            "SELECT id, username, expires_at, revoked FROM sessions WHERE id = ?", (session_id,)
        )
        if not rows:
            return None
        row = rows[0]
        return SessionRow(str(row[0]), str(row[1]), float(row[2]), bool(row[3]))

    def rotate_refresh(self, refresh_secret: str, new_secret: str, expires_at: float) -> str | None:
        """The session whose refresh token this was, now holding ``new_secret`` instead;
        None when no live session holds it."""
        # one conditional statement: of two replicas refreshing with the same token at once,
        # exactly one wins
        with self._transaction() as db:
            row = db.execute(
                "UPDATE sessions SET refresh_digest = ?, expires_at = ? "
                "WHERE refresh_digest = ? AND revoked = 0 AND expires_at >= ? RETURNING id",
                (digest(new_secret), expires_at, digest(refresh_secret), time.time()),
            ).fetchone()
            return str(row[0]) if row is not None else None

    def revoke_session(self, session_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE sessions SET revoked = 1 WHERE id = ?", (session_id,))


def _key_row(row: tuple[object, ...]) -> KeyRow:
    engines = row[3]
    decoded = msgspec.json.decode(engines, type=list[str]) if isinstance(engines, str) else None
    return KeyRow(
        id=str(row[0]),
        tenant=str(row[1]),
        name=str(row[2]),
        engines=tuple(decoded) if decoded is not None else None,
        expires_at=int(row[4]) if isinstance(row[4], int) else None,
        created_at=int(row[5]),  # type: ignore[call-overload]
        created_by=str(row[6]),
    )
