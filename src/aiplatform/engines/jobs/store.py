"""The job runner's SQLite file: one table of jobs, written in WAL mode with
``synchronous=FULL`` so that a job acknowledged to its submitter survives a crash or power loss.

A payload may hold a user's text (an ingest job's documents), and it leaves the disk with its
job: ``secure_delete`` overwrites the pages a deleted row (or a dropped payload) frees, and
every write that drops payloads checkpoints the log, which still holds the old pages.

One connection, used under a lock: the job table's reads and writes are small and few (a
handful per job run), so they never wait long on each other.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import msgspec

from aiplatform.engines.jobs.model import WAITING, Job, JobStatus
from aiplatform.errors import NotFoundError, RateLimitError
from aiplatform.observability.metrics_live import unwatch_jobs, watch_jobs
from aiplatform.storage.sqlite import connect, write_transaction

__all__ = ["JobStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    owner TEXT NOT NULL,
    subject TEXT,
    status TEXT NOT NULL,
    payload BLOB NOT NULL,
    summary TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    deadline_at REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_subject ON jobs(owner, subject);
"""
_COLUMNS = (
    "id, type, owner, subject, status, summary, progress, message, result, error, attempts, "
    "created_at, started_at, finished_at, deadline_at, not_before"
)
_WAITING_SQL = "('" + "', '".join(WAITING) + "')"
_FINISHED_SQL = "('succeeded', 'failed', 'cancelled')"
#: Finished jobs are kept this long (for their submitters to read), then deleted.
RETENTION_S = 7 * 24 * 3600.0
#: Runs a job may start; one still running when the process stopped this often (it may be what
#: stops the process) fails at the next start instead of running again.
MAX_ATTEMPTS = 5


class JobStore:
    def __init__(self, path: str | Path, *, key: str | None = None) -> None:
        """``key``: the storage key the file is encrypted with (None: plain SQLite)."""
        self.path = Path(path)
        self._key = key
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def open(self, *, resume: bool = True) -> list[str]:
        """Open (or create) the file; jobs a stopped process left running are queued again
        (their ids are returned) unless they have been started ``MAX_ATTEMPTS`` times, or
        failed with ``job_interrupted`` when not ``resume``; deferred ones are due at once (what
        they waited for may be back), and jobs finished more than ``RETENTION_S`` ago are
        deleted."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = connect(
            self.path,
            key=self._key,
            named_rows=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA secure_delete=ON")
        connection.executescript(_SCHEMA)
        self._connection = connection
        now = time.time()
        crashed = {
            "message": f"The job was running each of the {MAX_ATTEMPTS} times the server "
            "stopped; it is not run again.",
            "type": "server_error",
            "param": None,
            "code": "job_crashed",
        }
        interrupted = {
            "message": "The server stopped while the job was running; submit it again.",
            "type": "server_error",
            "param": None,
            "code": "job_interrupted",
        }
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, payload = x'' "
                "WHERE status = 'running' AND attempts >= ?",
                (_json(crashed), now, MAX_ATTEMPTS),
            )
            if not resume:
                db.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, "
                    "payload = x'' WHERE status = 'running'",
                    (_json(interrupted), now),
                )
            ids = [row[0] for row in db.execute("SELECT id FROM jobs WHERE status = 'running'")]
            db.execute("UPDATE jobs SET status = 'queued' WHERE status = 'running'")
            db.execute("UPDATE jobs SET not_before = 0 WHERE status = 'deferred'")
            self._purge(db, now)
        self._checkpoint()
        watch_jobs(self)  # its job counts are reported at /metrics while it is open
        return ids

    @staticmethod
    def _purge(db: sqlite3.Connection, now: float) -> None:
        db.execute(
            f"DELETE FROM jobs WHERE status IN {_FINISHED_SQL} AND finished_at < ?",
            (now - RETENTION_S,),
        )

    def close(self) -> None:
        unwatch_jobs(self)
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def counts(self) -> dict[tuple[str, str], int]:
        """How many jobs the file holds by ``(type, status)``: every status of each type."""
        with self._lock:
            rows = (
                self._db()
                .execute("SELECT type, status, count(*) FROM jobs GROUP BY type, status")
                .fetchall()
            )
        types = {row[0] for row in rows}
        counts = {(name, status): 0 for name in types for status in get_args(JobStatus)}
        counts.update({(row[0], row[1]): row[2] for row in rows})
        return counts

    def _checkpoint(self) -> None:
        """Copy the log into the file and truncate it, so payloads dropped or deleted leave the
        log too."""
        with self._lock:
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction (rolled back on an error)."""
        with write_transaction(self._db(), self._lock) as db:
            yield db

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the job store is not open")
        return self._connection

    # -- submission and reads ------------------------------------------------------------------

    def insert(
        self,
        type_name: str,
        owner: str,
        payload: bytes,
        *,
        summary: Any,
        subject: str | None,
        timeout_s: float,
        max_waiting: int,
    ) -> Job:
        """A new queued job, committed before this returns; a 429 when ``max_waiting`` jobs
        already wait."""
        now = time.time()
        job = Job(
            id=f"job_{uuid.uuid4().hex[:20]}",
            type=type_name,
            owner=owner,
            status="queued",
            progress=0.0,
            message=None,
            summary=summary,
            result=None,
            error=None,
            subject=subject,
            attempts=0,
            created_at=now,
            started_at=None,
            finished_at=None,
            deadline_at=now + timeout_s,
            not_before=0.0,
        )
        with self._write() as db:
            waiting = db.execute(
                f"SELECT count(*) FROM jobs WHERE status IN {_WAITING_SQL}"
            ).fetchone()[0]
            if waiting >= max_waiting:
                raise RateLimitError(
                    f"{waiting} jobs are already waiting, the most this engine queues; "
                    "submit again once some have finished.",
                    code="too_many_jobs",
                )
            self._purge(db, now)
            db.execute(
                "INSERT INTO jobs (id, type, owner, subject, status, payload, summary, "
                "created_at, deadline_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    type_name,
                    owner,
                    subject,
                    job.status,
                    payload,
                    _json(summary),
                    now,
                    job.deadline_at,
                ),
            )
        return job

    def get(self, owner: str, job_id: str) -> Job:
        with self._lock:
            row = (
                self._db()
                .execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND id = ?", (owner, job_id))
                .fetchone()
            )
        if row is None:
            raise NotFoundError(f"No job '{job_id}' exists.", param="job_id", code="job_not_found")
        return _job(row)

    def owned(self, owner: str, limit: int) -> list[Job]:
        """The owner's jobs, newest first."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? ORDER BY seq DESC LIMIT ?",
                    (owner, limit),
                )
                .fetchall()
            )
        return [_job(row) for row in rows]

    def delete(self, owner: str, job_id: str) -> Job:
        """Drop the owner's job (404 when there is none); the job as it was."""
        job = self.get(owner, job_id)
        with self._write() as db:
            db.execute("DELETE FROM jobs WHERE owner = ? AND id = ?", (owner, job_id))
        self._checkpoint()
        return job

    def payload(self, job_id: str) -> bytes | None:
        """The payload of a job that is still running (None once it was cancelled or
        dropped)."""
        with self._lock:
            row = (
                self._db()
                .execute("SELECT payload FROM jobs WHERE id = ? AND status = 'running'", (job_id,))
                .fetchone()
            )
        return bytes(row[0]) if row is not None else None

    # -- scheduling ----------------------------------------------------------------------------

    def claim(self, now: float) -> Job | None:
        """The oldest waiting job that may start now, marked running."""
        with self._write() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status IN {_WAITING_SQL} "
                "AND not_before <= ? AND deadline_at > ? ORDER BY seq LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            job = _job(row)
            job.status = "running"
            job.started_at = now
            job.attempts += 1
            db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = ? WHERE id = ?",
                (now, job.attempts, job.id),
            )
        return job

    def expire(self, now: float, error: dict[str, Any]) -> list[str]:
        """Fail the waiting jobs whose deadline has passed; their ids."""
        with self._write() as db:
            ids = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM jobs WHERE status IN {_WAITING_SQL} AND deadline_at <= ?",
                    (now,),
                )
            ]
            db.executemany(
                "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, payload = x'' "
                "WHERE id = ?",
                [(_json(error), now, job_id) for job_id in ids],
            )
        if ids:
            self._checkpoint()
        return ids

    def next_wake(self, now: float) -> float | None:
        """When the scheduler must look again by itself: the next deferred job's retry or the
        next waiting job's deadline (None: only when woken)."""
        with self._lock:
            deadline, retry = (
                self._db()
                .execute(
                    "SELECT min(deadline_at), min(CASE WHEN not_before > ? THEN not_before END) "
                    f"FROM jobs WHERE status IN {_WAITING_SQL}",
                    (now,),
                )
                .fetchone()
            )
        times = [float(t) for t in (deadline, retry) if t is not None]
        return min(times) if times else None

    def retry_deferred(self) -> int:
        """Make every deferred job due now; how many there were."""
        with self._write() as db:
            return db.execute("UPDATE jobs SET not_before = 0 WHERE status = 'deferred'").rowcount

    # -- what a run does -----------------------------------------------------------------------

    def report(self, job: Job) -> None:
        """Store a running job's progress, message and result so far."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, message = ?, result = ? "
                "WHERE id = ? AND status = 'running'",
                (job.progress, job.message, _json(job.result), job.id),
            )

    def finish(self, job: Job) -> None:
        """Store how a run ended: ``job.status`` (finished, or deferred until
        ``job.not_before``). A job cancelled or dropped meanwhile is left as it is. A finished
        job's payload is dropped: only its summary, result and error are read from then on."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status = ?, progress = ?, message = ?, result = ?, error = ?, "
                "finished_at = ?, not_before = ?, "
                f"payload = CASE WHEN ? IN {_FINISHED_SQL} THEN x'' ELSE payload END "
                "WHERE id = ? AND status = 'running'",
                (
                    job.status,
                    job.progress,
                    job.message,
                    _json(job.result),
                    _json(job.error),
                    job.finished_at,
                    job.not_before,
                    job.status,
                    job.id,
                ),
            )
        if job.status in ("succeeded", "failed", "cancelled"):
            self._checkpoint()

    def cancel(self, owner: str, job_id: str, now: float) -> Job:
        """Cancel the owner's job if it waits or runs (a running one's run is stopped by the
        runner); a finished job is left as it is. The job as it is now."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, payload = x'' "
                "WHERE owner = ? AND id = ? AND status IN ('queued', 'deferred', 'running')",
                (now, owner, job_id),
            )
        self._checkpoint()
        return self.get(owner, job_id)

    def delete_subject(self, owner: str, subject: str) -> list[str]:
        """Drop every job of the owner's ``subject``; the ids of those that were running."""
        with self._write() as db:
            running = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM jobs WHERE owner = ? AND subject = ? AND status = 'running'",
                    (owner, subject),
                )
            ]
            db.execute("DELETE FROM jobs WHERE owner = ? AND subject = ?", (owner, subject))
        self._checkpoint()
        return running


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _job(row: sqlite3.Row) -> Job:
    status: JobStatus = row["status"]
    return Job(
        id=row["id"],
        type=row["type"],
        owner=row["owner"],
        status=status,
        progress=float(row["progress"]),
        message=row["message"],
        summary=msgspec.json.decode(row["summary"]),
        result=msgspec.json.decode(row["result"]) if row["result"] is not None else None,
        error=msgspec.json.decode(row["error"]) if row["error"] is not None else None,
        subject=row["subject"],
        attempts=int(row["attempts"]),
        created_at=float(row["created_at"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        deadline_at=float(row["deadline_at"]),
        not_before=float(row["not_before"]),
    )
