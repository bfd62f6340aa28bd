"""The audio engines (ASR, speakers, diarization, emotion) in every mode give the same answers.

They run on their fakes here, fast; ``tests/e2e/test_audio_models.py`` runs the real models.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aiplatform.api.audio import (
    DiarizationRequest,
    SpeakerDeleteRequest,
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    SpeakerListRequest,
    TranscriptionRequest,
    TranslationRequest,
)
from aiplatform.api.emotion import EmotionRequest, TimedText
from aiplatform.engines.asr import TRANSCRIBE, TRANSLATE
from aiplatform.engines.asr.engine import LocalAsrEngine
from aiplatform.engines.asr.settings import ASRSettings
from aiplatform.engines.base import Engine
from aiplatform.engines.diarization import DIARIZE
from aiplatform.engines.diarization.engine import LocalDiarizationEngine
from aiplatform.engines.diarization.settings import DiarizationSettings
from aiplatform.engines.emotion import CLASSIFY_EMOTION
from aiplatform.engines.emotion.engine import LocalEmotionEngine
from aiplatform.engines.emotion.settings import EmotionSettings
from aiplatform.engines.speakers import (
    DELETE_SPEAKER,
    EMBED_SPEAKER,
    ENROLL_SPEAKER,
    IDENTIFY_SPEAKERS,
    LIST_SPEAKERS,
)
from aiplatform.engines.speakers.engine import LocalSpeakersEngine
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.errors import InvalidRequestError, NotFoundError
from aiplatform.forms import FilePart
from aiplatform.testing import MODES, in_mode
from tests.speech import VOICE_A, VOICE_B, conversation, speak
from tests.support import ServerProcess

pytestmark = pytest.mark.anyio


def wav_part(data: bytes) -> FilePart:
    return FilePart(filename="speech.wav", content_type="audio/wav", data=data)


@pytest.fixture(scope="module")
def audio_pod(
    tmp_path_factory: pytest.TempPathFactory, pod_auth_env: Callable[[], dict[str, str]]
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("pod-speakers")
    server = ServerProcess(
        ["--engines", "asr,speakers,diarization,emotion"],
        {**pod_auth_env(), "AIPLATFORM_ENGINES__SPEAKERS__DATA_DIR": str(folder)},
    )
    server.start()
    yield server
    server.stop()


def _engine_fixture(make_local: Callable[[Path], tuple[Engine, Any]]) -> Any:
    @pytest.fixture(params=MODES)
    async def fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
        local, settings = make_local(tmp_path)
        pod = lambda: request.getfixturevalue("audio_pod")  # noqa: E731 (started on demand)
        async with in_mode(request.param, local, settings, pod) as engine:
            yield engine

    return fixture


def _asr(_: Path) -> tuple[Engine, Any]:
    settings = ASRSettings(backend="fake")
    return LocalAsrEngine(settings), settings


def _speakers(folder: Path) -> tuple[Engine, Any]:
    settings = SpeakersSettings(backend="fake", data_dir=str(folder / "speakers"))
    return LocalSpeakersEngine(settings), settings


def _diarization(_: Path) -> tuple[Engine, Any]:
    settings = DiarizationSettings(backend="fake")
    return LocalDiarizationEngine(settings), settings


def _emotion(_: Path) -> tuple[Engine, Any]:
    settings = EmotionSettings(backend="fake")
    return LocalEmotionEngine(settings), settings


asr = _engine_fixture(_asr)
speakers = _engine_fixture(_speakers)
diarization = _engine_fixture(_diarization)
emotion = _engine_fixture(_emotion)


@pytest.fixture
async def asr_reference() -> AsyncIterator[Engine]:
    async with LocalAsrEngine(ASRSettings(backend="fake")) as engine:
        yield engine


# -- ASR ---------------------------------------------------------------------------------------


async def test_transcription_matches_in_process(asr: Engine, asr_reference: Engine) -> None:
    request = TranscriptionRequest(
        file=wav_part(speak("One two three. Four five six.")),
        model="whisper-1",
        timestamp_granularities=["word", "segment"],
    )
    got = await asr.invoke(TRANSCRIBE, request)
    want = await asr_reference.invoke(TRANSCRIBE, request)
    assert got == want
    assert got.words, "words were asked for"
    assert got.duration > 1.0
    assert all(w.start <= w.end for w in got.words)


async def test_words_only_when_asked(asr: Engine) -> None:
    request = TranscriptionRequest(file=wav_part(speak("One two three.")))
    got = await asr.invoke(TRANSCRIBE, request)
    assert got.words is None
    assert got.segments


async def test_streamed_transcription_ends_with_the_whole_text(
    asr: Engine, asr_reference: Engine
) -> None:
    request = TranscriptionRequest(file=wav_part(conversation().wav), stream=True)
    events = [event async for event in asr.stream(TRANSCRIBE, request)]
    assert [e.type for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert events[-1].type == "transcript.text.done"
    whole = await asr_reference.invoke(TRANSCRIBE, msgspec.structs.replace(request, stream=False))
    assert events[-1].text == whole.text
    assert len(events) - 1 == len(whole.segments) == 4


async def test_translation(asr: Engine) -> None:
    got = await asr.invoke(TRANSLATE, TranslationRequest(file=wav_part(speak("Bonjour."))))
    assert got.task == "translate"
    assert got.text.startswith("translated")


async def test_bad_audio_is_a_400_in_every_mode(asr: Engine) -> None:
    for data, code in ((b"", "empty_file"), (b"not audio at all" * 10, "invalid_audio")):
        with pytest.raises(InvalidRequestError) as caught:
            await asr.invoke(TRANSCRIBE, TranscriptionRequest(file=wav_part(data)))
        assert caught.value.code == code
        assert caught.value.param == "file"


async def test_unknown_model_is_a_404(asr: Engine) -> None:
    with pytest.raises(NotFoundError):
        await asr.invoke(
            TRANSCRIBE, TranscriptionRequest(file=wav_part(speak("Hi there.")), model="nope")
        )


# -- speakers ----------------------------------------------------------------------------------


async def test_enroll_identify_delete(speakers: Engine) -> None:
    alice = await speakers.invoke(
        ENROLL_SPEAKER,
        SpeakerEnrollRequest(
            file=wav_part(speak("My name is Alice and this is my voice.", VOICE_A)),
            name="Alice",
        ),
    )
    listed = await speakers.invoke(LIST_SPEAKERS, SpeakerListRequest())
    assert [s.id for s in listed.data] == [alice.id]
    same = await speakers.invoke(
        EMBED_SPEAKER, SpeakerEmbeddingRequest(file=wav_part(speak("Another sentence from me.")))
    )
    other = await speakers.invoke(
        EMBED_SPEAKER,
        SpeakerEmbeddingRequest(file=wav_part(speak("Another sentence from me.", VOICE_B))),
    )
    matches = await speakers.invoke(
        IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=[same.embedding, other.embedding])
    )
    assert matches.data[0].name == "Alice"
    assert matches.data[1].name is None
    assert matches.data[0].score > matches.data[1].score
    deleted = await speakers.invoke(DELETE_SPEAKER, SpeakerDeleteRequest(speaker_id=alice.id))
    assert deleted.deleted
    assert (await speakers.invoke(LIST_SPEAKERS, SpeakerListRequest())).data == []
    with pytest.raises(NotFoundError):
        await speakers.invoke(DELETE_SPEAKER, SpeakerDeleteRequest(speaker_id=alice.id))


async def test_ragged_embeddings_are_a_400(speakers: Engine) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await speakers.invoke(
            IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=[[0.1, 0.2], [0.3]])
        )
    assert caught.value.param == "embeddings"


async def test_too_short_a_sample_is_refused(speakers: Engine) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await speakers.invoke(
            ENROLL_SPEAKER, SpeakerEnrollRequest(file=wav_part(speak("Hi.")), name="Bob")
        )
    assert caught.value.code == "audio_too_short"


# -- diarization -------------------------------------------------------------------------------


async def test_diarization_finds_both_voices_in_order(diarization: Engine) -> None:
    talk = conversation()
    result = await diarization.invoke(DIARIZE, DiarizationRequest(file=wav_part(talk.wav)))
    assert [turn.speaker for turn in result.turns] == [
        "speaker_0",
        "speaker_1",
        "speaker_0",
        "speaker_1",
    ]
    for turn, (start, end, _) in zip(result.turns, talk.turns, strict=True):
        assert abs(turn.start - start) < 0.3
        assert abs(turn.end - end) < 0.5
    assert [s.label for s in result.speakers] == ["speaker_0", "speaker_1"]


async def test_diarization_with_a_given_count(diarization: Engine) -> None:
    result = await diarization.invoke(
        DIARIZE, DiarizationRequest(file=wav_part(conversation().wav), num_speakers=1)
    )
    assert {turn.speaker for turn in result.turns} == {"speaker_0"}


# -- emotion -----------------------------------------------------------------------------------


async def test_emotion_of_texts_and_a_timeline(emotion: Engine) -> None:
    texts = await emotion.invoke(
        CLASSIFY_EMOTION, EmotionRequest(input=["I am so happy", "I am scared", "The bus."])
    )
    assert [r.label for r in texts.data] == ["joy", "fear", "neutral"]
    assert texts.timeline is None
    segments = [
        TimedText(start=0, end=2, text="I am so happy"),
        TimedText(start=2, end=4, text="Still happy and glad"),
        TimedText(start=4, end=6, text="The bus."),
    ]
    timed = await emotion.invoke(
        CLASSIFY_EMOTION, EmotionRequest(segments=segments, smoothing_s=10)
    )
    assert timed.timeline is not None
    assert [p.label for p in timed.timeline] == ["joy", "joy", "joy"]
    assert timed.data[2].label == "neutral"


async def test_emotion_needs_exactly_one_input(emotion: Engine) -> None:
    with pytest.raises(InvalidRequestError):
        await emotion.invoke(CLASSIFY_EMOTION, EmotionRequest())
