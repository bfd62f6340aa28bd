"""The ASR and speakers engines on NeMo checkpoints give the same answers in every mode: in
process, through the app in this process, and over a socket to an ``aiplatform serve`` pod
loading the same ``.nemo`` files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aiplatform.api.audio import (
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    TranscriptionRequest,
    TranslationRequest,
)
from aiplatform.engines.asr import TRANSCRIBE, TRANSLATE
from aiplatform.engines.asr.engine import LocalAsrEngine
from aiplatform.engines.asr.settings import ASRSettings
from aiplatform.engines.base import Engine
from aiplatform.engines.speakers import EMBED_SPEAKER, ENROLL_SPEAKER, IDENTIFY_SPEAKERS
from aiplatform.engines.speakers.engine import LocalSpeakersEngine
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.errors import InvalidRequestError
from aiplatform.forms import FilePart
from aiplatform.testing import MODES, in_mode
from tests.nemo_models import CTC_SENTENCES, SPEAKER_HELD_OUT, NemoModels
from tests.speech import VOICE_A, VOICE_B, speak
from tests.support import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(600)]


def wav_part(data: bytes) -> FilePart:
    return FilePart(filename="speech.wav", content_type="audio/wav", data=data)


def _asr_settings(models: NemoModels) -> ASRSettings:
    return ASRSettings(backend="nemo", path=str(models.ctc), model="nemo-ctc")


@pytest.fixture(scope="module")
def nemo_pod(
    nemo_models: NemoModels,
    tmp_path_factory: pytest.TempPathFactory,
    pod_auth_env: Callable[[], dict[str, str]],
) -> Iterator[ServerProcess]:
    server = ServerProcess(
        ["--engines", "asr,speakers"],
        {
            **pod_auth_env(),
            "AIPLATFORM_ENGINES__ASR__BACKEND": "nemo",
            "AIPLATFORM_ENGINES__ASR__PATH": str(nemo_models.ctc),
            "AIPLATFORM_ENGINES__ASR__MODEL": "nemo-ctc",
            "AIPLATFORM_ENGINES__SPEAKERS__BACKEND": "nemo",
            "AIPLATFORM_ENGINES__SPEAKERS__PATH": str(nemo_models.speaker),
            "AIPLATFORM_ENGINES__SPEAKERS__DATA_DIR": str(tmp_path_factory.mktemp("pod-speakers")),
        },
    )
    server.start(timeout_s=300)  # NeMo's import and three restores, on a busy machine
    yield server
    server.stop()


def _engine_fixture(make_local: Callable[[NemoModels, Path], tuple[Engine, Any]]) -> Any:
    @pytest.fixture(params=MODES)
    async def fixture(
        request: pytest.FixtureRequest, nemo_models: NemoModels, tmp_path: Path
    ) -> AsyncIterator[Engine]:
        local, settings = make_local(nemo_models, tmp_path)
        pod = lambda: request.getfixturevalue("nemo_pod")  # noqa: E731 (started on demand)
        async with in_mode(request.param, local, settings, pod) as engine:
            yield engine

    return fixture


def _asr(models: NemoModels, _: Path) -> tuple[Engine, Any]:
    settings = _asr_settings(models)
    return LocalAsrEngine(settings), settings


def _speakers(models: NemoModels, folder: Path) -> tuple[Engine, Any]:
    settings = SpeakersSettings(
        backend="nemo", path=str(models.speaker), data_dir=str(folder / "speakers")
    )
    return LocalSpeakersEngine(settings), settings


asr = _engine_fixture(_asr)
speakers = _engine_fixture(_speakers)


@pytest.fixture(scope="module")
async def asr_reference(nemo_models: NemoModels) -> AsyncIterator[Engine]:
    async with LocalAsrEngine(_asr_settings(nemo_models)) as engine:
        yield engine


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def test_transcription_matches_in_process(asr: Engine, asr_reference: Engine) -> None:
    request = TranscriptionRequest(
        file=wav_part(speak(CTC_SENTENCES[0])),
        model="nemo-ctc",
        timestamp_granularities=["word", "segment"],
    )
    got = await asr.invoke(TRANSCRIBE, request)
    assert got == await asr_reference.invoke(TRANSCRIBE, request)
    assert got.words
    assert got.text.split()[:2] == ["hello", "world"]


async def test_streamed_transcription_matches_in_process(
    asr: Engine, asr_reference: Engine
) -> None:
    request = TranscriptionRequest(file=wav_part(speak(CTC_SENTENCES[1])), stream=True)
    events = [event async for event in asr.stream(TRANSCRIBE, request)]
    want = [event async for event in asr_reference.stream(TRANSCRIBE, request)]
    assert events == want
    assert events[-1].type == "transcript.text.done"
    whole = await asr_reference.invoke(TRANSCRIBE, msgspec.structs.replace(request, stream=False))
    assert events[-1].text == whole.text


async def test_translation_is_refused_in_every_mode(asr: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="translation"):
        await asr.invoke(TRANSLATE, TranslationRequest(file=wav_part(speak(CTC_SENTENCES[0]))))


async def test_speakers_enroll_and_identify_in_every_mode(speakers: Engine) -> None:
    first, second = SPEAKER_HELD_OUT
    for voice in (VOICE_A, VOICE_B):
        await speakers.invoke(
            ENROLL_SPEAKER, SpeakerEnrollRequest(name=voice, file=wav_part(speak(first, voice)))
        )
    embeddings = [
        (
            await speakers.invoke(
                EMBED_SPEAKER, SpeakerEmbeddingRequest(file=wav_part(speak(second, voice)))
            )
        ).embedding
        for voice in (VOICE_B, VOICE_A)
    ]
    matches = await speakers.invoke(
        IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=embeddings, threshold=0.2)
    )
    assert [m.name for m in matches.data] == [VOICE_B, VOICE_A]
