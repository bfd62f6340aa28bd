"""SQLite files under the storage key: unreadable without it or with another, unreadable as
plain SQLite, and the same database as before with it; a plain file is never read as an
encrypted one or the other way round."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from aiplatform.storage import StorageSettings
from aiplatform.storage.encrypt import KEY_ENV, encrypt_database, main
from aiplatform.storage.sqlite import StorageKeyError, connect, raw_key

KEY = "a storage key for the tests only"
#: Quotes, a semicolon and SQL: the key is never spliced into a statement.
AWKWARD_KEY = 'it\'s a "key"; DROP TABLE notes; --'
SECRET = "the secret text of a note"


def _write_note(path: Path, key: str | None) -> None:
    db = connect(path, key=key, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT UNIQUE)")
    db.execute("INSERT INTO notes (text) VALUES (?)", (SECRET,))
    db.close()


def _one(path: Path, key: str | None, query: str) -> tuple[object, ...]:
    """The first row of ``query`` on the database at ``path`` opened with ``key``."""
    with closing(connect(path, key=key)) as db:
        row: tuple[object, ...] = db.execute(query).fetchone()
    return row


def _bytes_on_disk(path: Path) -> bytes:
    return b"".join(
        candidate.read_bytes()
        for candidate in (path, path.with_name(path.name + "-wal"))
        if candidate.exists()
    )


@pytest.mark.parametrize("key", [KEY, AWKWARD_KEY])
def test_the_key_opens_what_it_wrote(tmp_path: Path, key: str) -> None:
    path = tmp_path / "notes.sqlite3"
    _write_note(path, key)
    db = connect(path, key=key, named_rows=True, isolation_level=None)
    row = db.execute("SELECT id, text FROM notes").fetchone()
    assert (row["id"], row["text"]) == (1, SECRET)
    with pytest.raises(db.IntegrityError):
        db.execute("INSERT INTO notes (text) VALUES (?)", (SECRET,))
    assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 1
    db.close()


def test_an_encrypted_file_is_unreadable_as_plain_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    _write_note(path, KEY)
    assert SECRET.encode() not in _bytes_on_disk(path)
    plain = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        plain.execute("SELECT count(*) FROM sqlite_master").fetchone()
    plain.close()
    # the same data written plain is there in the clear: the check above can fail
    _write_note(tmp_path / "plain.sqlite3", None)
    assert SECRET.encode() in _bytes_on_disk(tmp_path / "plain.sqlite3")


def test_without_the_key_the_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    _write_note(path, KEY)
    with pytest.raises(StorageKeyError) as caught:
        connect(path, key=None)
    assert caught.value.path == path
    assert str(caught.value) == (
        f"{path} cannot be opened without a storage key (the file is encrypted, or it is not "
        "a database)"
    )


def test_a_wrong_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    _write_note(path, KEY)
    with pytest.raises(StorageKeyError) as caught:
        connect(path, key="another key entirely, also long")
    assert str(caught.value) == (
        f"{path} cannot be opened with the configured storage key (wrong key, or the file is "
        "not encrypted)"
    )
    assert _one(path, KEY, "SELECT count(*) FROM notes") == (1,)


def test_a_plain_file_is_refused_when_a_key_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    _write_note(path, None)
    with pytest.raises(StorageKeyError, match="cannot be opened with the configured storage key"):
        connect(path, key=KEY)
    assert SECRET.encode() in _bytes_on_disk(path)  # refused, not rewritten
    assert _one(path, None, "SELECT text FROM notes") == (SECRET,)


def test_the_key_is_stretched_into_32_bytes_once() -> None:
    assert len(raw_key(KEY)) == 32
    assert raw_key(KEY) == raw_key(KEY)
    assert raw_key(KEY) != raw_key(KEY + "!")
    with pytest.raises(ValueError, match="empty"):
        raw_key("")


def test_a_key_without_sqlcipher_installed_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sqlcipher3", None)
    with pytest.raises(RuntimeError, match=r"pip install 'aiplatform\[storage\]'"):
        connect(tmp_path / "notes.sqlite3", key=KEY)
    assert not (tmp_path / "notes.sqlite3").exists()


# -- encrypting an existing plain database -----------------------------------------------------


def _rag_like(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA user_version = 3")
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT)")
    db.execute("CREATE VIRTUAL TABLE notes_fts USING fts5(text)")
    for n in range(50):
        db.execute("INSERT INTO notes (text) VALUES (?)", (f"{SECRET} {n}",))
        db.execute("INSERT INTO notes_fts (text) VALUES (?)", (f"{SECRET} {n}",))
    db.close()


def test_a_plain_database_is_encrypted_in_place(tmp_path: Path) -> None:
    path = tmp_path / "rag.sqlite3"
    _rag_like(path)
    encrypt_database(path, KEY)
    assert SECRET.encode() not in _bytes_on_disk(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rag.sqlite3"]
    db = connect(path, key=KEY, isolation_level=None)
    assert db.execute("SELECT count(*), max(id) FROM notes").fetchone() == (50, 50)
    assert db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'notes'").fetchone() == (50,)
    matches = db.execute("SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'secret'")
    assert matches.fetchone() == (50,)
    assert db.execute("PRAGMA user_version").fetchone() == (3,)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_the_command_encrypts_each_file_and_refuses_an_encrypted_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    _rag_like(first)
    _rag_like(second)
    assert main([str(first), str(second)], env={KEY_ENV: KEY}) == 0
    assert main([str(first)], env={KEY_ENV: KEY}) == 1
    assert "cannot be opened without a storage key" in capsys.readouterr().err
    assert _one(second, KEY, "SELECT count(*) FROM notes") == (50,)
    assert main([str(first)], env={}) == 2


def test_the_setting_is_off_by_default_and_refuses_a_short_key() -> None:
    assert StorageSettings().encryption_key is None
    assert msgspec.convert({"encryption_key": KEY}, StorageSettings).encryption_key == KEY
    with pytest.raises(msgspec.ValidationError, match="length >= 16"):
        msgspec.convert({"encryption_key": "hunter2"}, StorageSettings)
