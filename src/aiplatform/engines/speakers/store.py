"""Enrolled speakers, each with its owner (tenant), name and voice print, in one SQLite file
(``speakers.sqlite3``), encrypted when a storage key is configured.

Every change is one transaction in WAL mode with ``synchronous=FULL``: an acknowledged
enrollment survives a crash or power loss, and a crash never leaves half of one. Voice prints
are biometric data: ``secure_delete`` overwrites the pages a deleted speaker frees, and every
delete checkpoints the log, which still holds them, so they leave the file with the speaker.

Earlier versions kept every speaker in ``speakers.json``. :meth:`SpeakerStore.open` moves its
speakers into the database once, as the default tenant's, and then removes it.

One connection, used under a lock: enrollments and lookups are small and few.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import numpy as np

from aiplatform.api.audio import Speaker
from aiplatform.engines.speakers.encoder import Matrix
from aiplatform.storage.durable import fsync_directory
from aiplatform.storage.sqlite import connect, write_transaction
from aiplatform.tenant import DEFAULT_TENANT

__all__ = ["DATABASE", "LEGACY_FILE", "EnrolledSpeaker", "SpeakerStore"]

logger = logging.getLogger(__name__)

#: The store's file in the engine's data folder.
DATABASE = "speakers.sqlite3"
#: The file earlier versions kept every speaker in (moved into the database on open).
LEGACY_FILE = "speakers.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS speakers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    duration REAL NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS speakers_by_owner ON speakers(owner, created_at, id);
"""
_COLUMNS = "id, owner, name, created_at, duration"
#: Voice prints are kept as little-endian float32.
_VECTOR = np.dtype("<f4")


class EnrolledSpeaker(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    owner: str
    name: str
    created_at: int
    duration: float

    def public(self) -> Speaker:
        return Speaker(
            id=self.id, name=self.name, created_at=self.created_at, duration=self.duration
        )


class _LegacySpeaker(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: int
    duration: float
    embedding: list[float]


class _LegacyFile(msgspec.Struct, kw_only=True):
    version: int = 1
    speakers: list[_LegacySpeaker] = msgspec.field(default_factory=list)


class SpeakerStore:
    def __init__(self, folder: str | Path, *, key: str | None = None) -> None:
        """``key``: the storage key the file is encrypted with (None: plain SQLite)."""
        self.folder = Path(folder)
        self.path = self.folder / DATABASE
        self._key = key
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open (or create) the file, and move the speakers of a ``speakers.json`` into it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        connection = connect(
            self.path,
            key=self._key,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA secure_delete=ON")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._migrate()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def all(self, owner: str) -> list[EnrolledSpeaker]:
        """The owner's speakers, oldest first."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_COLUMNS} FROM speakers WHERE owner = ? ORDER BY created_at, id",
                    (owner,),
                )
                .fetchall()
            )
        return [_speaker(row) for row in rows]

    def add(self, owner: str, name: str, embedding: Matrix, duration: float) -> EnrolledSpeaker:
        speaker = EnrolledSpeaker(
            id=f"spk_{uuid.uuid4().hex[:16]}",
            owner=owner,
            name=name,
            created_at=int(time.time()),
            duration=round(duration, 3),
        )
        with self._write() as db:
            _insert(db, speaker, embedding)
        return speaker

    def delete(self, owner: str, speaker_id: str) -> bool:
        """Drop the owner's speaker; False when the owner has none of that id."""
        with self._write() as db:
            deleted = db.execute(
                "DELETE FROM speakers WHERE owner = ? AND id = ?", (owner, speaker_id)
            ).rowcount
        if deleted:
            with self._lock:
                self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(deleted)

    def matrix(self, owner: str) -> tuple[list[EnrolledSpeaker], Matrix | None]:
        """The owner's speakers and their voice prints, one row each (None when there are
        none)."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_COLUMNS}, embedding FROM speakers WHERE owner = ? "
                    "ORDER BY created_at, id",
                    (owner,),
                )
                .fetchall()
            )
        if not rows:
            return [], None
        speakers = [_speaker(row[:5]) for row in rows]
        vectors = np.stack([np.frombuffer(row[5], dtype=_VECTOR) for row in rows])
        return speakers, vectors.astype(np.float32)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction (rolled back on an error)."""
        with write_transaction(self._db(), self._lock) as db:
            yield db

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the speaker store is not open")
        return self._connection

    def _migrate(self) -> None:
        """Move the speakers of ``speakers.json`` into the database as the default tenant's,
        in one transaction, then remove the file (and any copy a crash left half-written).
        Their ids are kept, and one already moved is not moved twice, so a crash between the
        commit and the removal only repeats the move."""
        legacy = self.folder / LEGACY_FILE
        leftovers = list(self.folder.glob(".speakers-*"))
        if not legacy.exists() and not leftovers:
            return
        if legacy.exists():
            data = msgspec.json.decode(legacy.read_bytes(), type=_LegacyFile)
            ordered = sorted(data.speakers, key=lambda speaker: (speaker.created_at, speaker.id))
            with self._write() as db:
                for old in ordered:
                    speaker = EnrolledSpeaker(
                        id=old.id,
                        owner=DEFAULT_TENANT,
                        name=old.name,
                        created_at=old.created_at,
                        duration=old.duration,
                    )
                    _insert(db, speaker, np.asarray(old.embedding, dtype=np.float32), keep=True)
            legacy.unlink()
            logger.info(
                "moved %d enrolled speaker(s) from %s into %s (tenant %r)",
                len(ordered),
                legacy,
                self.path.name,
                DEFAULT_TENANT,
            )
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        fsync_directory(self.folder)


def _insert(
    db: sqlite3.Connection, speaker: EnrolledSpeaker, embedding: Matrix, *, keep: bool = False
) -> None:
    """Insert ``speaker``; with ``keep``, one of that id already there is kept as it is."""
    verb = "INSERT OR IGNORE" if keep else "INSERT"
    db.execute(
        f"{verb} INTO speakers ({_COLUMNS}, embedding) VALUES (?, ?, ?, ?, ?, ?)",
        (
            speaker.id,
            speaker.owner,
            speaker.name,
            speaker.created_at,
            speaker.duration,
            np.asarray(embedding, dtype=_VECTOR).tobytes(),
        ),
    )


def _speaker(row: tuple[str, str, str, int, float]) -> EnrolledSpeaker:
    id_, owner, name, created_at, duration = row
    return EnrolledSpeaker(id=id_, owner=owner, name=name, created_at=created_at, duration=duration)
