"""The in-process speakers engine: enrollment kept on disk, identification by cosine
similarity against the enrolled voices.

Speakers belong to the tenant that enrolled them (:func:`aiplatform.tenant.current_tenant`):
listing, deleting and identifying see the caller's own only, so another tenant's speaker is
a 404 and never a match, and a diarized transcription names only the caller's speakers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiplatform.api.audio import (
    Speaker,
    SpeakerDeleted,
    SpeakerDeleteRequest,
    SpeakerEmbedding,
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    SpeakerList,
    SpeakerListRequest,
    SpeakerMatch,
    SpeakerMatches,
)
from aiplatform.api.openai import ModelCard
from aiplatform.audio.decode import SAMPLE_RATE, decode_audio
from aiplatform.engines.finite import finite_float32
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import default_data_dir
from aiplatform.engines.speakers.encoder import Matrix, VoiceEncoder, make_voice_encoder
from aiplatform.engines.speakers.kind import SPEAKERS
from aiplatform.engines.speakers.operations import (
    DELETE_SPEAKER,
    EMBED_SPEAKER,
    ENROLL_SPEAKER,
    IDENTIFY_SPEAKERS,
    LIST_SPEAKERS,
)
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.engines.speakers.store import SpeakerStore
from aiplatform.errors import InvalidRequestError, NotFoundError
from aiplatform.tenant import current_tenant

__all__ = ["MIN_VOICE_S", "LocalSpeakersEngine"]

#: Shorter samples give embeddings too unstable to enroll or identify with.
MIN_VOICE_S = 1.0


class LocalSpeakersEngine(LocalEngine):
    def __init__(
        self,
        settings: SpeakersSettings,
        encoder: VoiceEncoder | None = None,
        *,
        storage_key: str | None = None,
    ) -> None:
        """``storage_key``: the key the speakers' database is encrypted with (None: plain)."""
        super().__init__(SPEAKERS, settings=settings)
        self._settings = settings
        self._encoder = encoder or make_voice_encoder(
            settings.backend, settings.device, settings.path
        )
        folder = settings.data_dir or str(Path(default_data_dir()) / "speakers")
        self._store = SpeakerStore(folder, key=storage_key)
        self.bind(ENROLL_SPEAKER, self.enroll)
        self.bind(LIST_SPEAKERS, self.list_enrolled)
        self.bind(DELETE_SPEAKER, self.delete)
        self.bind(EMBED_SPEAKER, self.embed)
        self.bind(IDENTIFY_SPEAKERS, self.identify)

    @property
    def threshold(self) -> float:
        configured = self._settings.threshold
        return configured if configured is not None else self._encoder.same_voice_threshold

    def load(self) -> None:
        self._store.open()
        self._encoder.load()

    def unload(self) -> None:
        self._store.close()

    async def list_models(self) -> list[ModelCard]:
        return []

    async def enroll(self, request: SpeakerEnrollRequest) -> Speaker:
        name = request.name.strip()
        if not name:
            raise InvalidRequestError("name must not be blank.", param="name")
        owner = current_tenant()
        embedding, duration = await self.run_blocking(self._embed_file, request.file.data)
        speaker = await self.run_blocking(self._store.add, owner, name, embedding, duration)
        return speaker.public()

    async def list_enrolled(self, _: SpeakerListRequest) -> SpeakerList:
        speakers = await self.run_blocking(self._store.all, current_tenant())
        return SpeakerList(data=[speaker.public() for speaker in speakers])

    async def delete(self, request: SpeakerDeleteRequest) -> SpeakerDeleted:
        owner = current_tenant()
        if not await self.run_blocking(self._store.delete, owner, request.speaker_id):
            raise NotFoundError(
                f"No enrolled speaker has the id '{request.speaker_id}'.",
                param="speaker_id",
                code="speaker_not_found",
            )
        return SpeakerDeleted(id=request.speaker_id)

    async def embed(self, request: SpeakerEmbeddingRequest) -> SpeakerEmbedding:
        embedding, duration = await self.run_blocking(self._embed_file, request.file.data)
        return SpeakerEmbedding(embedding=embedding.tolist(), duration=duration)

    async def identify(self, request: SpeakerIdentifyRequest) -> SpeakerMatches:
        owner = current_tenant()
        threshold = request.threshold if request.threshold is not None else self.threshold
        if len({len(embedding) for embedding in request.embeddings}) != 1:
            raise InvalidRequestError(
                "embeddings must all have the same length.", param="embeddings"
            )
        queries = finite_float32(request.embeddings, "embeddings")
        speakers, enrolled = await self.run_blocking(self._store.matrix, owner)
        if enrolled is not None and queries.shape[1] != enrolled.shape[1]:
            raise InvalidRequestError(
                f"embeddings have {queries.shape[1]} dimensions; this engine's voice "
                f"embeddings have {enrolled.shape[1]}.",
                param="embeddings",
            )
        matches = []
        for index, similarities in enumerate(_cosine(queries, enrolled)):
            if similarities.size == 0:
                matches.append(SpeakerMatch(index=index, score=0.0))
                continue
            best = int(np.argmax(similarities))
            score = round(float(similarities[best]), 6)
            if score >= threshold:
                speaker = speakers[best]
                matches.append(
                    SpeakerMatch(index=index, score=score, speaker_id=speaker.id, name=speaker.name)
                )
            else:
                matches.append(SpeakerMatch(index=index, score=score))
        return SpeakerMatches(data=matches, threshold=threshold)

    def _embed_file(self, data: bytes) -> tuple[Matrix, float]:
        samples = decode_audio(data, max_duration_s=self._settings.max_duration_s)
        duration = samples.size / SAMPLE_RATE
        if duration < MIN_VOICE_S:
            raise InvalidRequestError(
                f"The voice sample is {duration:.2f} s long; at least {MIN_VOICE_S:g} s is needed.",
                param="file",
                code="audio_too_short",
            )
        return self._encoder.embed(samples), round(duration, 3)


def _cosine(queries: Matrix, enrolled: Matrix | None) -> Matrix:
    if enrolled is None:
        return np.zeros((queries.shape[0], 0), dtype=np.float32)
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    unit = queries / np.where(norms == 0, 1.0, norms)
    return np.asarray(unit @ enrolled.T, dtype=np.float32)
