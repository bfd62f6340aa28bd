"""Live transcription over a WebSocket: ``/v1/ws/transcribe``.

The client sends PCM16 mono 16 kHz audio as binary messages (any chunk size) and a text
message ``{"type": "end"}`` when done. The server answers with JSON text messages:

- ``{"type": "transcript.partial", "segment_id", "start", "end", "text"}`` while an utterance
  grows (about once a second);
- ``{"type": "transcript.final", "segment_id", "start", "end", "text", "words"}`` after a pause;
- ``{"type": "speaker", "segment_id", "speaker"}`` when ``diarize=true`` and the speakers engine
  runs: the enrolled name, or ``speaker_N`` for voices met in this session; ``null`` for an
  utterance shorter than ``MIN_SPEAKER_S`` (too short for a voice embedding: "yes" and a pause
  is not attributed by guess);
- ``{"type": "error", "error": {...}}`` (OpenAI's error body) and ``{"type": "session.done"}``.

One utterance an engine refuses (a 4xx) costs that utterance only: an error event, and the
session goes on. Finished utterances wait for transcription in a queue of at most
``MAX_PENDING_FINALS``; a client that sends audio faster than it can be transcribed gets an
error event and the close code 1013.

Query parameters: ``sample_rate`` (must be 16000), ``language``, ``model``, ``diarize``.
Close codes: 1000 done, 1003 unsupported audio format, 1007 malformed audio or message,
1008 bad parameters, 1011 an engine failed, 1013 too much audio waiting for transcription.
Transcription calls go through the ASR engine's protocol, so the ASR engine may be remote.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import msgspec
import numpy as np
from litestar import WebSocket, websocket
from litestar.handlers import WebsocketRouteHandler

from aiplatform.api.audio import (
    SpeakerEmbeddingRequest,
    SpeakerIdentifyRequest,
    TranscriptionRequest,
    TranscriptionWord,
)
from aiplatform.audio.decode import SAMPLE_RATE, pcm16_to_float, to_wav
from aiplatform.audio.live import LiveSegmenter, Utterance
from aiplatform.auth.scope import check_engine_scope
from aiplatform.engines.asr.operations import TRANSCRIBE
from aiplatform.engines.base import Engine
from aiplatform.engines.speakers.operations import EMBED_SPEAKER, IDENTIFY_SPEAKERS
from aiplatform.errors import AIPlatformError, InvalidRequestError, RateLimitError
from aiplatform.forms import FilePart, convert_fields
from aiplatform.server.errors import error_body
from aiplatform.server.websocket_common import (
    CLOSE_ENGINE_FAILED,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    chosen_subprotocol,
)

__all__ = ["live_routes"]

logger = logging.getLogger(__name__)

CLOSE_UNSUPPORTED = 1003
CLOSE_MALFORMED = 1007

#: Final utterances that may wait for transcription; one more ends the session (1013).
MAX_PENDING_FINALS = 16
#: Utterances shorter than this get no speaker (the speakers engine needs a second of voice).
MIN_SPEAKER_S = 1.0


class _Query(msgspec.Struct, kw_only=True):
    sample_rate: int = SAMPLE_RATE
    language: str | None = None
    model: str | None = None
    diarize: bool = False


class _Final(msgspec.Struct, kw_only=True):
    type: str
    segment_id: int
    start: float
    end: float
    text: str
    words: list[TranscriptionWord] | None = None


def live_routes(engines: dict[str, Engine]) -> list[WebsocketRouteHandler]:
    asr = engines.get("asr")
    if asr is None:
        return []
    speakers = engines.get("speakers")

    @websocket("/v1/ws/transcribe", name="asr.live")
    async def transcribe_live(socket: WebSocket[Any, Any, Any]) -> None:
        try:
            check_engine_scope(asr.kind.name)
        except AIPlatformError as exc:
            await socket.close(code=CLOSE_POLICY, reason=exc.message[:120])
            return
        await socket.accept(subprotocols=chosen_subprotocol(socket))
        try:
            query = convert_fields(dict(socket.query_params.items()), _Query, "query parameters")
        except InvalidRequestError as exc:
            await _refuse(socket, CLOSE_POLICY, exc)
            return
        if query.sample_rate != SAMPLE_RATE:
            message = (
                f"sample_rate={query.sample_rate} is not supported; send PCM16 mono at "
                f"{SAMPLE_RATE} Hz."
            )
            await _refuse(
                socket, CLOSE_UNSUPPORTED, InvalidRequestError(message, param="sample_rate")
            )
            return
        session = _Session(socket, asr, speakers if query.diarize else None, query)
        await session.run()

    return [transcribe_live]


async def _send(socket: WebSocket[Any, Any, Any], message: msgspec.Struct | dict[str, Any]) -> None:
    await socket.send_text(msgspec.json.encode(message).decode())


async def _send_error(socket: WebSocket[Any, Any, Any], exc: AIPlatformError) -> None:
    """``{"type": "error", "error": {...}}`` with OpenAI's error body."""
    await _send(socket, {"type": "error", "error": error_body(exc).error})


async def _refuse(socket: WebSocket[Any, Any, Any], code: int, exc: AIPlatformError) -> None:
    await _send_error(socket, exc)
    await socket.close(code=code, reason=exc.message[:120])


class _Session:
    """One live connection: a receiver feeding the segmenter, a transcriber draining it."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        asr: Engine,
        speakers: Engine | None,
        query: _Query,
    ) -> None:
        self._socket = socket
        self._asr = asr
        self._speakers = speakers
        self._query = query
        self._segmenter = LiveSegmenter()
        self._pending: Utterance | None = None
        self._finals: list[Utterance] = []
        self._wake = anyio.Event()
        self._ended = False
        self._voices: list[tuple[str, np.ndarray[Any, Any]]] = []

    async def run(self) -> None:
        close_code, reason = 1000, "done"
        failure: AIPlatformError | None = None
        disconnected = False
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._transcribe_loop)
                close_code, reason = await self._receive_loop()
                self._ended = True
                self._wake.set()
        except* _ClientGoneError:
            disconnected = True
        except* AIPlatformError as errors:
            failure = next(e for e in errors.exceptions if isinstance(e, AIPlatformError))
        if disconnected:
            return
        if failure is not None:
            await _send_error(self._socket, failure)
            close_code, reason = CLOSE_ENGINE_FAILED, "engine failed"
        await _send(self._socket, {"type": "session.done"})
        await self._socket.close(code=close_code, reason=reason)

    async def _receive_loop(self) -> tuple[int, str]:
        while True:
            message = await self._socket.receive()
            if message["type"] == "websocket.disconnect":
                raise _ClientGoneError
            data, text = message.get("bytes"), message.get("text")
            if isinstance(data, bytes):
                if len(data) % 2:
                    await _send_error(
                        self._socket,
                        InvalidRequestError(
                            "Audio messages must hold whole PCM16 samples (an even byte count)."
                        ),
                    )
                    return CLOSE_MALFORMED, "odd byte count"
                if not self._enqueue(self._segmenter.feed(pcm16_to_float(data))):
                    return await self._overflowed()
            elif isinstance(text, str):
                try:
                    control = msgspec.json.decode(text)
                except msgspec.DecodeError:
                    control = None
                if not isinstance(control, dict) or control.get("type") != "end":
                    await _send_error(
                        self._socket, InvalidRequestError('Text messages must be {"type": "end"}.')
                    )
                    return CLOSE_MALFORMED, "unknown message"
                if not self._enqueue(self._segmenter.flush()):
                    return await self._overflowed()
                return 1000, "done"

    def _enqueue(self, utterance: Utterance | None) -> bool:
        """Queue ``utterance`` for transcription; False when the queue of finals is full."""
        if utterance is None:
            return True
        if utterance.kind == "final":
            if len(self._finals) >= MAX_PENDING_FINALS:
                return False
            self._finals.append(utterance)
            self._pending = None
        else:
            self._pending = utterance  # a newer partial replaces one not yet transcribed
        self._wake.set()
        return True

    async def _overflowed(self) -> tuple[int, str]:
        await _send_error(
            self._socket,
            RateLimitError(
                f"{MAX_PENDING_FINALS} utterances are already waiting for transcription; "
                "send audio no faster than real time.",
                code="live_backlog_full",
            ),
        )
        self._finals.clear()  # what the session ends with: nothing more is transcribed
        self._pending = None
        return CLOSE_TRY_AGAIN_LATER, "too much audio waiting"

    async def _transcribe_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._finals or self._pending is not None:
                try:
                    if self._finals:
                        await self._final(self._finals.pop(0))
                    elif self._pending is not None:
                        utterance, self._pending = self._pending, None
                        await self._partial(utterance)
                except AIPlatformError as exc:
                    if exc.status_code >= 500:
                        raise
                    # the engines refused this utterance; the next ones are theirs to judge
                    await _send_error(self._socket, exc)
            if self._ended and not self._finals:
                return

    async def _recognize(self, utterance: Utterance, words: bool) -> Any:
        request = TranscriptionRequest(
            file=FilePart(
                filename="live.wav", content_type="audio/wav", data=to_wav(utterance.samples)
            ),
            model=self._query.model,
            language=self._query.language,
            timestamp_granularities=["segment", "word"] if words else ["segment"],
        )
        return await self._asr.invoke(TRANSCRIBE, request)

    async def _partial(self, utterance: Utterance) -> None:
        result = await self._recognize(utterance, words=False)
        await _send(
            self._socket,
            {
                "type": "transcript.partial",
                "segment_id": utterance.index,
                "start": utterance.start,
                "end": round(utterance.end, 3),
                "text": result.text,
            },
        )

    async def _final(self, utterance: Utterance) -> None:
        result = await self._recognize(utterance, words=True)
        words = [
            msgspec.structs.replace(
                word,
                start=round(word.start + utterance.start, 3),
                end=round(word.end + utterance.start, 3),
            )
            for word in result.words or []
        ]
        final = _Final(
            type="transcript.final",
            segment_id=utterance.index,
            start=utterance.start,
            end=round(utterance.end, 3),
            text=result.text,
            words=words,
        )
        await _send(self._socket, final)
        if self._speakers is not None and result.text:
            speaker = await self._speaker_of(utterance) if self._long_enough(utterance) else None
            await _send(
                self._socket, {"type": "speaker", "segment_id": utterance.index, "speaker": speaker}
            )

    @staticmethod
    def _long_enough(utterance: Utterance) -> bool:
        return utterance.samples.size >= MIN_SPEAKER_S * SAMPLE_RATE

    async def _speaker_of(self, utterance: Utterance) -> str:
        """The enrolled name of the utterance's voice, else the session's label for it (a new
        ``speaker_N`` when no voice met so far is close enough)."""
        assert self._speakers is not None
        wav = FilePart(
            filename="live.wav", content_type="audio/wav", data=to_wav(utterance.samples)
        )
        embedding = await self._speakers.invoke(EMBED_SPEAKER, SpeakerEmbeddingRequest(file=wav))
        matches = await self._speakers.invoke(
            IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=[embedding.embedding])
        )
        match = matches.data[0]
        if match.name:
            return match.name
        vector = np.asarray(embedding.embedding, dtype=np.float32)
        if self._voices:
            score, best = max((float(known @ vector), label) for label, known in self._voices)
            if score >= matches.threshold:
                return best
        label = f"speaker_{len(self._voices)}"
        self._voices.append((label, vector))
        return label


class _ClientGoneError(Exception):
    """The client went away; nothing more to send."""
