"""Encrypt plain databases in place, for a deployment that turns the storage key on with data
already stored: ``python -m aiplatform.storage.encrypt FILE...``, with the server stopped and
the key in ``AIPLATFORM_STORAGE__ENCRYPTION_KEY``.

Each file is copied whole into an encrypted one beside it (SQLCipher's ``sqlcipher_export``),
which then replaces it by a rename, so a crash leaves either the plain file or the encrypted
one. The plain file's blocks are freed, not overwritten: see docs/security.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aiplatform.storage.sqlite import StorageKeyError, not_a_database, raw_key, sqlcipher

__all__ = ["KEY_ENV", "encrypt_database", "main"]

KEY_ENV = "AIPLATFORM_STORAGE__ENCRYPTION_KEY"


def encrypt_database(path: Path, key: str) -> None:
    """Replace the plain SQLite database at ``path`` by the same database encrypted under
    ``key``; :class:`StorageKeyError` when it is not a plain database."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    staged = path.with_name(f".{path.name}.encrypting")
    staged.unlink(missing_ok=True)
    source = sqlcipher().connect(os.fspath(path), isolation_level=None)
    try:
        try:
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except source.DatabaseError as exc:
            if not_a_database(exc):
                raise StorageKeyError(path, keyed=False) from exc
            raise
        source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = int(source.execute("PRAGMA user_version").fetchone()[0])
        source.execute(
            f"ATTACH DATABASE ? AS encrypted KEY \"x'{raw_key(key).hex()}'\"", (str(staged),)
        )
        source.execute("SELECT sqlcipher_export('encrypted')").fetchone()
        source.execute(f"PRAGMA encrypted.user_version = {version:d}")
        source.execute("DETACH DATABASE encrypted")
    except BaseException:
        source.close()
        staged.unlink(missing_ok=True)
        raise
    source.close()
    _fsync(staged)
    os.replace(staged, path)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def main(argv: Sequence[str] | None = None, *, env: dict[str, str] | None = None) -> int:
    files = list(sys.argv[1:] if argv is None else argv)
    key = (os.environ if env is None else env).get(KEY_ENV)
    if not files or not key:
        print(f"usage: {KEY_ENV}=... python -m aiplatform.storage.encrypt FILE...", file=sys.stderr)
        return 2
    failed = 0
    for name in files:
        try:
            encrypt_database(Path(name), key)
        except (OSError, StorageKeyError) as exc:
            print(f"{name}: not encrypted: {exc}", file=sys.stderr)
            failed += 1
        else:
            print(f"{name}: encrypted")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
