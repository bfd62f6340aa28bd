"""No request holds the event loop: the heaviest CPU work a request may ask for (chunking the
largest document at the smallest chunk size, labelling an hour of diarized speech) runs off
the loop, so ``/health`` and every other request keep being answered meanwhile.

What is measured is the loop's own stall: the CPU time the loop's thread spends between two
ticks of a task on it (``time.thread_time``). Waiting for the GIL or for a core on a loaded
machine costs the loop thread no CPU, so the bound holds on a busy two-core runner as well;
work done on the loop shows up whole, however fast the machine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from aiplatform.api.audio import (
    DiarizationRequest,
    DiarizationResult,
    SpeakerTurn,
    Transcription,
    TranscriptionRequest,
    TranscriptionSegment,
    TranscriptionWord,
)
from aiplatform.api.rag import (
    ChunkingOptions,
    CollectionCreateRequest,
    DocumentAddRequest,
    DocumentInput,
)
from aiplatform.audio.pipeline import TranscriptionPipeline
from aiplatform.engines.asr.operations import TRANSCRIBE
from aiplatform.engines.base import Engine
from aiplatform.engines.diarization.operations import DIARIZE
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.settings import AudioInputSettings
from aiplatform.errors import InvalidRequestError
from aiplatform.forms import FilePart

pytestmark = pytest.mark.anyio

#: The most CPU time the loop's thread may spend between two ticks of a task on it.
MAX_STALL_S = 0.1


@asynccontextmanager
async def loop_stall() -> AsyncIterator[list[float]]:
    """Yields a one-item list that holds, once the block ends, the largest CPU time the
    loop's thread spent between two ticks while the block ran."""
    worst = [0.0]
    done = anyio.Event()

    async def tick() -> None:
        last = time.thread_time()
        while not done.is_set():
            await anyio.sleep(0.001)
            now = time.thread_time()
            worst[0] = max(worst[0], now - last)
            last = now

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await anyio.sleep(0.01)
        try:
            yield worst
        finally:
            done.set()


async def stall_of(work: Callable[[], Awaitable[Any]]) -> float:
    async with loop_stall() as worst:
        await work()
    return worst[0]


def largest_document(seed: int = 0) -> str:
    """A document of the largest allowed size, of short words and sentences (many cut
    points, so many pieces for the chunker)."""
    limit = RagSettings().max_document_chars
    words = ("alpha", "beta.", "gamma", "delta\n", "epsilon", "zeta\n\n", "eta!")
    parts: list[str] = []
    size = 0
    n = seed
    while size < limit - 10:
        word = words[n % len(words)]
        parts.append(word)
        size += len(word) + 1
        n += 1
    return " ".join(parts)[:limit]


async def test_chunking_the_largest_document_does_not_stall_the_loop(tmp_path: Path) -> None:
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    text = largest_document()
    async with embeddings, engine:
        created = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))

        async def smallest_chunks() -> None:
            # every chunk is cut (the whole document) before the count is refused
            with pytest.raises(InvalidRequestError) as refused:
                await engine.invoke(
                    rag.ADD_DOCUMENTS,
                    DocumentAddRequest(
                        collection_id=created.id,
                        documents=[DocumentInput(text=text)],
                        chunking=ChunkingOptions(chunk_size=100, chunk_overlap=50),
                    ),
                )
            assert refused.value.code == "too_many_chunks"

        async def default_chunks() -> None:
            added = await engine.invoke(
                rag.ADD_DOCUMENTS,
                DocumentAddRequest(collection_id=created.id, documents=[DocumentInput(text=text)]),
            )
            assert added.data[0].chunk_count > 1000

        assert await stall_of(smallest_chunks) < MAX_STALL_S
        assert await stall_of(default_chunks) < MAX_STALL_S


class _Recorded:
    """An ASR or diarization engine that answers one prepared result."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def invoke(self, op: Any, request: Any) -> Any:
        assert op in (TRANSCRIBE, DIARIZE)
        assert isinstance(request, TranscriptionRequest | DiarizationRequest)
        return self.answer


def an_hour_of_speech() -> tuple[Transcription, DiarizationResult]:
    """The longest upload (``max_duration_s``) as a fast talker and a busy conversation
    make it: four words a second, a speaker turn every two seconds."""
    seconds = int(AudioInputSettings().max_duration_s)
    words = [
        TranscriptionWord(word="word", start=n / 4, end=n / 4 + 0.2) for n in range(seconds * 4)
    ]
    segments = [
        TranscriptionSegment(id=n, start=5.0 * n, end=5.0 * n + 5.0, text="words")
        for n in range(seconds // 5)
    ]
    turns = [
        SpeakerTurn(start=2.0 * n, end=2.0 * n + 1.9, speaker=f"speaker_{n % 3}")
        for n in range(seconds // 2)
    ]
    transcription = Transcription(text="words", segments=segments, words=words)
    return transcription, DiarizationResult(duration=float(seconds), turns=turns, speakers=[])


async def test_labelling_an_hour_of_speakers_does_not_stall_the_loop() -> None:
    transcription, diarization = an_hour_of_speech()
    pipeline = TranscriptionPipeline(
        cast(Engine, _Recorded(transcription)), diarization=cast(Engine, _Recorded(diarization))
    )
    request = TranscriptionRequest(
        file=FilePart(filename="a.wav", content_type="audio/wav", data=b"RIFF"),
        diarize=True,
        timestamp_granularities=["word", "segment"],
    )
    found: list[Transcription] = []

    async def transcribe() -> None:
        found.append(await pipeline.invoke(TRANSCRIBE, request))

    assert await stall_of(transcribe) < MAX_STALL_S
    assert sorted(found[0].speakers or []) == ["speaker_0", "speaker_1", "speaker_2"]
    assert found[0].words is not None
    assert found[0].words[0].speaker == "speaker_0"
