"""Enrolled speakers on disk: one JSON file, replaced atomically (written beside, fsynced,
renamed, directory fsynced), so an acknowledged enrollment survives a crash and a crash never
leaves a half-written file."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np

from aiplatform.api.audio import Speaker
from aiplatform.engines.speakers.encoder import Matrix

__all__ = ["EnrolledSpeaker", "SpeakerStore"]


class EnrolledSpeaker(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: int
    duration: float
    embedding: list[float]

    def public(self) -> Speaker:
        return Speaker(
            id=self.id, name=self.name, created_at=self.created_at, duration=self.duration
        )


class _File(msgspec.Struct, kw_only=True):
    version: int = 1
    speakers: list[EnrolledSpeaker] = msgspec.field(default_factory=list)


class SpeakerStore:
    def __init__(self, folder: str) -> None:
        self._path = Path(folder) / "speakers.json"
        self._lock = threading.Lock()
        self._speakers: dict[str, EnrolledSpeaker] = {}
        self._matrix: Matrix | None = None

    def open(self) -> None:
        if self._path.exists():
            data = msgspec.json.decode(self._path.read_bytes(), type=_File)
            self._speakers = {speaker.id: speaker for speaker in data.speakers}
        self._matrix = None

    def all(self) -> list[EnrolledSpeaker]:
        with self._lock:
            return sorted(
                self._speakers.values(), key=lambda speaker: (speaker.created_at, speaker.id)
            )

    def add(self, name: str, embedding: Matrix, duration: float) -> EnrolledSpeaker:
        speaker = EnrolledSpeaker(
            id=f"spk_{uuid.uuid4().hex[:16]}",
            name=name,
            created_at=int(time.time()),
            duration=round(duration, 3),
            embedding=[float(value) for value in embedding],
        )
        with self._lock:
            updated = {**self._speakers, speaker.id: speaker}
            self._write(updated)
            self._speakers = updated
            self._matrix = None
        return speaker

    def delete(self, speaker_id: str) -> bool:
        with self._lock:
            if speaker_id not in self._speakers:
                return False
            updated = {key: value for key, value in self._speakers.items() if key != speaker_id}
            self._write(updated)
            self._speakers = updated
            self._matrix = None
            return True

    def matrix(self) -> tuple[list[EnrolledSpeaker], Matrix | None]:
        """The enrolled speakers and their embeddings, one row each (None when there are
        none)."""
        with self._lock:
            speakers = list(self._speakers.values())
            if not speakers:
                return [], None
            if self._matrix is None:
                self._matrix = np.array([s.embedding for s in speakers], dtype=np.float32)
            return speakers, self._matrix

    def _write(self, speakers: dict[str, EnrolledSpeaker]) -> None:
        payload = msgspec.json.encode(_File(speakers=list(speakers.values())))
        folder = self._path.parent
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".speakers-", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
