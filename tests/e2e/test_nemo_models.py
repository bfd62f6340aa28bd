"""NeMo checkpoints through the engines' own loading code: a CTC and an RNN-T ASR model and a
speaker-verification model, built and trained by :mod:`tests.nemo_models`, saved as ``.nemo``
files and served like any downloaded checkpoint, in process and by ``aiplatform serve``."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import jiwer
import numpy as np
import pytest

from aiplatform.api.audio import (
    DiarizationRequest,
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    Transcription,
    TranscriptionRequest,
    TranslationRequest,
)
from aiplatform.engines.asr import TRANSCRIBE, TRANSLATE
from aiplatform.engines.asr.engine import LocalAsrEngine
from aiplatform.engines.asr.nemo import load_nemo_model
from aiplatform.engines.asr.settings import ASRSettings
from aiplatform.engines.diarization import DIARIZE
from aiplatform.engines.diarization.engine import LocalDiarizationEngine
from aiplatform.engines.diarization.settings import DiarizationSettings
from aiplatform.engines.speakers import EMBED_SPEAKER, ENROLL_SPEAKER, IDENTIFY_SPEAKERS
from aiplatform.engines.speakers.engine import LocalSpeakersEngine
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.errors import InvalidRequestError
from aiplatform.forms import FilePart
from tests.nemo_models import (
    CTC_SENTENCES,
    RNNT_PHRASES,
    SPEAKER_HELD_OUT,
    SPEAKER_VOICES,
    NemoModels,
    normalize,
)
from tests.speech import VOICE_A, VOICE_B, conversation, speak, speak_samples
from tests.support import running_server

# The first test waits for the models to be trained (about a minute on two quiet cores).
pytestmark = [pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def part(data: bytes) -> FilePart:
    return FilePart(filename="speech.wav", content_type="audio/wav", data=data)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))


def raw_transcripts(path: Path, texts: list[str]) -> list[str]:
    """What NeMo's own ``transcribe`` makes of the texts' speech, with no engine around it."""
    model = load_nemo_model(str(path), "cpu", "ASRModel")
    results = model.transcribe([speak_samples(t) for t in texts], batch_size=1, verbose=False)
    return [str(getattr(r, "text", r)) for r in results]


async def transcribe_all(engine: LocalAsrEngine, texts: list[str]) -> list[Transcription]:
    return [
        await engine.invoke(
            TRANSCRIBE,
            TranscriptionRequest(file=part(speak(text)), timestamp_granularities=["word"]),
        )
        for text in texts
    ]


def check_words(result: Transcription) -> None:
    assert result.words, "words were asked for"
    assert [w.word for w in result.words] == result.text.split()
    for word, following in itertools.pairwise(result.words):
        assert word.start <= word.end <= following.start
    assert result.words[0].start >= 0.0
    assert result.words[-1].end <= result.duration + 0.01


@pytest.fixture(scope="module")
async def ctc(nemo_models: NemoModels) -> AsyncIterator[LocalAsrEngine]:
    settings = ASRSettings(backend="nemo", path=str(nemo_models.ctc), model="nemo-ctc")
    async with LocalAsrEngine(settings) as engine:
        yield engine


@pytest.fixture(scope="module")
async def rnnt(nemo_models: NemoModels) -> AsyncIterator[LocalAsrEngine]:
    settings = ASRSettings(backend="nemo", path=str(nemo_models.rnnt), model="nemo-rnnt")
    async with LocalAsrEngine(settings) as engine:
        yield engine


async def test_a_ctc_checkpoint_transcribes_the_sentences_it_learnt(
    ctc: LocalAsrEngine, nemo_models: NemoModels
) -> None:
    results = await transcribe_all(ctc, CTC_SENTENCES)
    texts = [r.text for r in results]
    assert word_error_rate(CTC_SENTENCES, texts) < 0.1, texts
    for result in results:
        check_words(result)
        assert result.language == "en"
        assert result.segments
        assert result.segments[0].start == 0.0
    # the engine says what NeMo's own transcribe says of the same audio
    assert [t.split() for t in texts] == [
        t.split() for t in raw_transcripts(nemo_models.ctc, CTC_SENTENCES)
    ]


async def test_an_rnnt_checkpoint_transcribes_the_phrases_it_learnt(
    rnnt: LocalAsrEngine, nemo_models: NemoModels
) -> None:
    results = await transcribe_all(rnnt, RNNT_PHRASES)
    texts = [r.text for r in results]
    assert word_error_rate(RNNT_PHRASES, texts) < 0.1, texts
    for result in results:
        check_words(result)
    assert [t.split() for t in texts] == [
        t.split() for t in raw_transcripts(nemo_models.rnnt, RNNT_PHRASES)
    ]


async def test_words_only_when_asked_and_concurrent_requests_agree(ctc: LocalAsrEngine) -> None:
    plain = TranscriptionRequest(file=part(speak(CTC_SENTENCES[1])))
    worded = TranscriptionRequest(
        file=part(speak(CTC_SENTENCES[1])), timestamp_granularities=["word"]
    )
    results: list[Transcription] = []

    async def run(request: TranscriptionRequest) -> None:
        results.append(await ctc.invoke(TRANSCRIBE, request))

    async with anyio.create_task_group() as group:
        for request in (plain, worded) * 3:
            group.start_soon(run, request)
    assert len({r.text for r in results}) == 1
    assert sorted(r.words is None for r in results) == [False] * 3 + [True] * 3


async def test_translation_and_other_languages_are_refused(ctc: LocalAsrEngine) -> None:
    audio = part(speak(CTC_SENTENCES[0]))
    with pytest.raises(InvalidRequestError, match="translation"):
        await ctc.invoke(TRANSLATE, TranslationRequest(file=audio))
    with pytest.raises(InvalidRequestError) as refused:
        await ctc.invoke(TRANSCRIBE, TranscriptionRequest(file=audio, language="de"))
    assert refused.value.param == "language"


def test_what_is_not_a_checkpoint_is_a_clear_start_error(
    tmp_path: Path, nemo_models: NemoModels
) -> None:
    with pytest.raises(ValueError, match="holds a EncDecSpeakerLabelModel, not an ASRModel"):
        load_nemo_model(str(nemo_models.speaker), "cpu", "ASRModel")
    with pytest.raises(ValueError, match="holds a EncDecCTCModel, not an EncDecSpeakerLabelModel"):
        load_nemo_model(str(nemo_models.ctc), "cpu", "EncDecSpeakerLabelModel")
    with pytest.raises(ValueError, match=r"no \.nemo checkpoint"):
        load_nemo_model(str(tmp_path / "missing.nemo"), "cpu", "ASRModel")
    with pytest.raises(ValueError, match=r"\.nemo checkpoint"):
        load_nemo_model(str(tmp_path / "model.bin"), "cpu", "ASRModel")


# -- speakers and diarization --------------------------------------------------------------------


@pytest.fixture(scope="module")
async def speakers(
    nemo_models: NemoModels, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalSpeakersEngine]:
    settings = SpeakersSettings(
        backend="nemo",
        path=str(nemo_models.speaker),
        data_dir=str(tmp_path_factory.mktemp("nemo-speakers")),
        threshold=0.3,
    )
    async with LocalSpeakersEngine(settings) as engine:
        yield engine


async def test_the_same_voice_is_closer_than_any_other_voice(speakers: LocalSpeakersEngine) -> None:
    """Each voice on two sentences the model never heard: the two are more alike than the
    first is to any other voice's second."""
    first, second = SPEAKER_HELD_OUT
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for voice in SPEAKER_VOICES:
        for text in (first, second):
            result = await speakers.invoke(
                EMBED_SPEAKER, SpeakerEmbeddingRequest(file=part(speak(text, voice)))
            )
            vectors[voice, text] = np.asarray(result.embedding)
    similarities = []
    for voice in SPEAKER_VOICES:
        same = float(vectors[voice, first] @ vectors[voice, second])
        others = [float(vectors[voice, first] @ vectors[o, second]) for o in SPEAKER_VOICES]
        others.remove(same)
        assert same > max(others), (voice, same, others)
        similarities.append((same, float(np.mean(others))))
    mean_same, mean_other = np.mean(similarities, axis=0)
    assert mean_same - mean_other > 0.3, similarities


async def test_enrolled_voices_are_identified_on_new_sentences(
    speakers: LocalSpeakersEngine,
) -> None:
    first, second = SPEAKER_HELD_OUT
    for voice in SPEAKER_VOICES:
        await speakers.invoke(
            ENROLL_SPEAKER, SpeakerEnrollRequest(name=voice, file=part(speak(first, voice)))
        )
    embeddings = [
        (
            await speakers.invoke(
                EMBED_SPEAKER, SpeakerEmbeddingRequest(file=part(speak(second, voice)))
            )
        ).embedding
        for voice in SPEAKER_VOICES
    ]
    result = await speakers.invoke(IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=embeddings))
    assert [match.name for match in result.data] == SPEAKER_VOICES, result.data


async def test_the_nemo_backend_diarizes_two_voices(nemo_models: NemoModels) -> None:
    talk = conversation()
    assert {VOICE_A, VOICE_B} <= set(SPEAKER_VOICES), "voices the model learnt"
    settings = DiarizationSettings(backend="nemo", path=str(nemo_models.speaker))
    async with LocalDiarizationEngine(settings) as engine:
        result = await engine.invoke(
            DIARIZE, DiarizationRequest(file=part(talk.wav), num_speakers=2)
        )
    assert [t.speaker for t in result.turns] == ["speaker_0", "speaker_1"] * 2
    for turn, (start, end, _) in zip(result.turns, talk.turns, strict=True):
        assert abs(turn.start - start) < 0.5
        assert abs(turn.end - end) < 0.5


# -- the server -----------------------------------------------------------------------------------


def test_a_server_on_nemo_checkpoints_transcribes_diarizes_and_streams(
    nemo_models: NemoModels,
) -> None:
    """``aiplatform serve`` with every audio engine on NeMo checkpoints (emotion on its lexicon):
    the response formats, ``diarize`` and ``emotion`` composed on NeMo's words, and streaming."""
    env = {
        "AIPLATFORM_ENGINES__ASR__BACKEND": "nemo",
        "AIPLATFORM_ENGINES__ASR__PATH": str(nemo_models.ctc),
        "AIPLATFORM_ENGINES__ASR__MODEL": "nemo-ctc",
        "AIPLATFORM_ENGINES__SPEAKERS__BACKEND": "nemo",
        "AIPLATFORM_ENGINES__SPEAKERS__PATH": str(nemo_models.speaker),
        "AIPLATFORM_ENGINES__DIARIZATION__BACKEND": "nemo",
        "AIPLATFORM_ENGINES__DIARIZATION__PATH": str(nemo_models.speaker),
        "AIPLATFORM_ENGINES__EMOTION__BACKEND": "lexicon",
    }
    sentence = CTC_SENTENCES[2]
    with (
        running_server(
            "--engines", "asr,speakers,diarization,emotion", env=env, timeout_s=300
        ) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        url = "/v1/audio/transcriptions"
        files = {"file": ("speech.wav", speak(sentence), "audio/wav")}
        text = client.post(url, files=files, data={"model": "nemo-ctc", "response_format": "text"})
        assert text.status_code == 200, text.text
        assert word_error_rate([sentence], [text.text]) < 0.2
        srt = client.post(url, files=files, data={"response_format": "srt"})
        assert srt.status_code == 200
        assert srt.text.startswith("1\n00:00:00,000 --> ")
        vtt = client.post(url, files=files, data={"response_format": "vtt"})
        assert vtt.status_code == 200
        assert vtt.text.startswith("WEBVTT")

        talk = conversation()
        composed = client.post(
            url,
            files={"file": ("talk.wav", talk.wav, "audio/wav")},
            data={
                "response_format": "verbose_json",
                "timestamp_granularities[]": "word",
                "diarize": "true",
                "emotion": "true",
            },
        )
        assert composed.status_code == 200, composed.text
        body = composed.json()
        assert body["words"], body
        # The model never heard this conversation, so its words are rough; most of those inside
        # each utterance still carry that utterance's speaker.
        for index, (start, end, _) in enumerate(talk.turns):
            inside = [w.get("speaker") for w in body["words"] if start <= w["start"] < end]
            assert inside, index
            assert inside.count(f"speaker_{index % 2}") >= 0.75 * len(inside), (index, inside)
        assert all("emotion" in segment for segment in body["segments"])

        with client.stream("POST", url, files=files, data={"stream": "true"}) as streamed:
            assert streamed.status_code == 200
            events = [line for line in streamed.iter_lines() if line.startswith("data: {")]
        assert '"transcript.text.done"' in events[-1]
        assert normalize(sentence) in normalize(events[-1])

        refused = client.post("/v1/audio/translations", files=files, data={"model": "nemo-ctc"})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "model"
