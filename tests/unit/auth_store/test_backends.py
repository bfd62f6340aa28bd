"""The identity store behaves the same on SQLite and on a shared PostgreSQL database, and holds
between several servers sharing one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiplatform.auth.store import AuthStore
from aiplatform.errors import ServiceUnavailableError
from aiplatform.storage.sqlite import StorageKeyError
from tests.unit.auth_store.postgres_server import postgres_server


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for SQLite in ``tmp_path``, or the URL of an emptied PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    store = AuthStore(tmp_path, url=url)
    with store._transaction() as db:  # a fresh database for the next test
        db.execute("DROP TABLE sessions, api_keys, users, tenants")
    store.close()


def open_store(tmp_path: Path, url: str | None) -> AuthStore:
    return AuthStore(tmp_path / "auth", url=url)


def test_tenants_users_keys_and_sessions_round_trip(tmp_path: Path, backend: str | None) -> None:
    store = open_store(tmp_path, backend)
    assert store.add_tenant("acme")
    assert not store.add_tenant("acme")
    assert store.tenants()[0][0] == "acme"
    assert store.add_user("ann", "acme", "member", "hash-1")
    assert not store.add_user("ann", "acme", "admin", "hash-2")
    user = store.user("ann")
    assert user is not None
    assert (user.tenant, user.role, user.password_hash) == (
        "acme",
        "member",
        "hash-1",
    )
    key = store.add_key(
        "k1", "secret", tenant="acme", name="ci", engines=["llm"], expires_at=2**40,
        created_by="ann",
    )  # fmt: skip
    assert store.key_for("k1", "secret") == key
    assert store.key_for("k1", "wrong") is None
    assert store.keys("acme") == [key]
    assert store.keys("other") == []
    assert store.delete_tenant("acme") == "in_use"
    assert not store.delete_key("k1", "other")
    assert store.delete_key("k1", "acme")
    store.add_session("s1", "ann", "refresh-1", time.time() + 60)
    assert store.rotate_refresh("refresh-1", "refresh-2", time.time() + 60) == "s1"
    assert store.rotate_refresh("refresh-1", "refresh-3", time.time() + 60) is None
    store.revoke_session("s1")
    session = store.session("s1")
    assert session is not None
    assert session.revoked
    assert store.rotate_refresh("refresh-2", "refresh-4", time.time() + 60) is None
    assert store.delete_user("ann")
    assert store.session("s1") is None
    assert store.delete_tenant("acme") == "deleted"
    store.close()


def test_lockout_is_counted_in_the_store(tmp_path: Path, backend: str | None) -> None:
    store = open_store(tmp_path, backend)
    store.add_tenant("acme")
    store.add_user("ann", "acme", "member", "hash")
    for _ in range(3):
        store.record_login("ann", ok=False, max_failed=3, lockout_s=60)
    user = store.user("ann")
    assert user is not None
    assert user.locked_until > time.time() + 50
    store.close()


def test_of_two_servers_refreshing_one_token_at_once_exactly_one_wins(
    tmp_path: Path, backend: str | None
) -> None:
    stores = [open_store(tmp_path, backend) for _ in range(2)]
    stores[0].add_tenant("acme")
    stores[0].add_user("ann", "acme", "member", "hash")
    wins: list[str | None] = []
    for round_ in range(20):
        stores[0].add_session(f"s{round_}", "ann", f"r{round_}", time.time() + 60)
        barrier = threading.Barrier(len(stores))

        def refresh(
            store: AuthStore, round_: int = round_, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            new = f"new-{round_}-{id(store)}"
            wins.append(store.rotate_refresh(f"r{round_}", new, time.time() + 60))

        threads = [threading.Thread(target=refresh, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sum(win is not None for win in wins) == 20
    for store in stores:
        store.close()


def test_what_one_server_changes_the_next_sees_at_once(postgres_url: str, tmp_path: Path) -> None:
    first, second = (
        AuthStore(tmp_path / "a", url=postgres_url),
        AuthStore(tmp_path / "b", url=postgres_url),
    )
    try:
        first.add_tenant("shared")
        first.add_key(
            "k9", "s", tenant="shared", name="n", engines=None, expires_at=None, created_by="x"
        )
        assert second.key_for("k9", "s") is not None
        assert second.delete_key("k9", "shared")
        assert first.key_for("k9", "s") is None
    finally:
        with first._transaction() as db:
            db.execute("DROP TABLE sessions, api_keys, users, tenants")
        first.close()
        second.close()


def test_an_unreachable_database_fails_fast_at_start(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot reach the auth database"):
        AuthStore(tmp_path, url=f"postgresql://nobody@/none?host={tmp_path}", timeout_s=1.0)
    assert time.monotonic() - started < 10


def test_a_database_lost_after_start_is_a_503_not_a_hang(tmp_path: Path) -> None:
    with postgres_server() as url:
        store = AuthStore(tmp_path, url=url, timeout_s=1.0)
        store.add_tenant("acme")
    # the server and its files are gone
    with pytest.raises(ServiceUnavailableError) as lost:
        store.tenant_exists("acme")
    assert lost.value.status_code == 503
    assert lost.value.code == "auth_database_unavailable"
    store.close()


def test_the_sqlite_store_is_encrypted_under_the_storage_key(tmp_path: Path) -> None:
    store = AuthStore(tmp_path, key="k" * 24)
    store.add_tenant("acme")
    store.close()
    assert b"acme" not in (tmp_path / "auth.sqlite3").read_bytes()
    with pytest.raises(StorageKeyError):
        AuthStore(tmp_path)
    with pytest.raises(StorageKeyError):
        AuthStore(tmp_path, key="w" * 24)
    reopened = AuthStore(tmp_path, key="k" * 24)
    assert reopened.tenant_exists("acme")
    reopened.close()
