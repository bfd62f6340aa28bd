"""One transcription call with speakers and emotion: the ASR engine wrapped so that
``diarize=true`` and ``emotion=true`` compose the diarization, speakers and emotion engines.

Each engine is reached through its protocol, so any of them may be in-process or remote; the
composition always runs here, at the server that received the request, and the ASR engine (or
its pod, or a third-party server) only ever sees a plain transcription request. Diarization runs
concurrently with recognition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import msgspec

from aiplatform.api.audio import (
    DiarizationRequest,
    DiarizationResult,
    SpeakerIdentifyRequest,
    Transcription,
    TranscriptionRequest,
)
from aiplatform.api.emotion import EmotionRequest, TimedText
from aiplatform.audio.alignment import label_segments, label_words, speakers_in_order
from aiplatform.engines.asr.operations import TRANSCRIBE
from aiplatform.engines.base import Engine, Operation
from aiplatform.engines.diarization.operations import DIARIZE
from aiplatform.engines.emotion.operations import CLASSIFY_EMOTION
from aiplatform.engines.speakers.operations import IDENTIFY_SPEAKERS
from aiplatform.engines.wrapped import WrappedEngine
from aiplatform.errors import AIPlatformError, InvalidRequestError

__all__ = ["TranscriptionPipeline"]

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)


class TranscriptionPipeline(WrappedEngine):
    """The ASR engine, plus the platform's ``diarize`` and ``emotion`` extensions."""

    def __init__(
        self,
        asr: Engine,
        *,
        diarization: Engine | None = None,
        speakers: Engine | None = None,
        emotion: Engine | None = None,
    ) -> None:
        super().__init__(asr)
        self._diarization = diarization
        self._speakers = speakers
        self._emotion = emotion

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        if (
            op is TRANSCRIBE
            and isinstance(request, TranscriptionRequest)
            and (request.diarize or request.emotion)
        ):
            result: Any = await self._transcribe(request)
            return result  # type: ignore[no-any-return]
        return await self.inner.invoke(op, request)

    def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        if isinstance(request, TranscriptionRequest) and (request.diarize or request.emotion):
            raise InvalidRequestError(
                "diarize and emotion are not available with stream=true; use the live "
                "WebSocket (/v1/ws/transcribe) or a non-streamed request.",
                param="stream",
            )
        return self.inner.stream(op, request)

    async def _transcribe(self, request: TranscriptionRequest) -> Transcription:
        diarization_engine = _required(request.diarize, self._diarization, "diarize", "diarization")
        emotion_engine = _required(request.emotion, self._emotion, "emotion", "emotion")
        plain = msgspec.structs.replace(request, diarize=False, emotion=False, num_speakers=None)
        if request.diarize:
            plain = msgspec.structs.replace(plain, timestamp_granularities=["segment", "word"])
        found: dict[str, Any] = {}

        async def recognize() -> None:
            found["transcription"] = await self.inner.invoke(TRANSCRIBE, plain)

        async def diarize(engine: Engine) -> None:
            ask = DiarizationRequest(file=request.file, num_speakers=request.num_speakers)
            found["diarization"] = await self._named(await engine.invoke(DIARIZE, ask))

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(recognize)
                if diarization_engine is not None:
                    group.start_soon(diarize, diarization_engine)
        except BaseExceptionGroup as failures:
            # Both calls read the same upload, so both may refuse it; the client gets the
            # platform error itself (its status, its message), not a wrapped 500.
            raise _first_platform_error(failures) from None
        transcription: Transcription = found["transcription"]
        if "diarization" in found:
            # linear, but an hour of speech is still tens of thousands of words: off the loop
            await anyio.to_thread.run_sync(self._label, transcription, found["diarization"])
            if "word" not in request.timestamp_granularities:
                transcription.words = None
        if emotion_engine is not None:
            await self._add_emotion(emotion_engine, transcription)
        return transcription

    async def _named(self, diarization: DiarizationResult) -> DiarizationResult:
        """Diarized speakers renamed after the enrolled speakers they match."""
        if self._speakers is None or not diarization.speakers:
            return diarization
        matches = await self._speakers.invoke(
            IDENTIFY_SPEAKERS,
            SpeakerIdentifyRequest(embeddings=[s.embedding for s in diarization.speakers]),
        )
        names = {
            speaker.label: match.name
            for speaker, match in zip(diarization.speakers, matches.data, strict=True)
            if match.name
        }
        if not names:
            return diarization
        for turn in diarization.turns:
            turn.speaker = names.get(turn.speaker, turn.speaker)
        for speaker in diarization.speakers:
            speaker.label = names.get(speaker.label, speaker.label)
        return diarization

    @staticmethod
    def _label(transcription: Transcription, diarization: DiarizationResult) -> None:
        words = transcription.words or []
        label_words(words, diarization.turns)
        label_segments(transcription.segments, words, diarization.turns)
        transcription.speakers = speakers_in_order(transcription.segments)

    @staticmethod
    async def _add_emotion(engine: Engine, transcription: Transcription) -> None:
        segments = [
            TimedText(start=s.start, end=s.end, text=s.text) for s in transcription.segments
        ]
        if not segments:
            transcription.emotion_timeline = []
            return
        answer = await engine.invoke(CLASSIFY_EMOTION, EmotionRequest(segments=segments))
        for segment, result in zip(transcription.segments, answer.data, strict=True):
            segment.emotion = result.label
            segment.emotion_scores = result.scores
        transcription.emotion_timeline = answer.timeline


def _first_platform_error(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first platform error in a task group's failures, else the group as it is."""
    found, _ = failures.split(AIPlatformError)
    while found is not None:
        first = found.exceptions[0]
        if not isinstance(first, BaseExceptionGroup):
            return first
        found = first
    return failures


def _required(wanted: bool, engine: Engine | None, flag: str, name: str) -> Engine | None:
    """The engine a requested extension needs (None when not requested); a 400 when this
    server does not run it."""
    if not wanted:
        return None
    if engine is None:
        raise InvalidRequestError(
            f"{flag}=true needs the {name} engine, which this server does not run "
            f"(enable engines.{name}).",
            param=flag,
        )
    return engine
