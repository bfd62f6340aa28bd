"""The real audio models, through the engines' own loading code: Whisper base assembled from
its two packages, silero VAD with resemblyzer diarizing two espeak-ng voices, speaker
identification, the emotion lexicon, and a transformers emotion classifier the test builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jiwer
import pytest

from aiplatform.api.audio import (
    DiarizationRequest,
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    TranscriptionRequest,
)
from aiplatform.api.emotion import EmotionRequest
from aiplatform.engines.asr import TRANSCRIBE
from aiplatform.engines.asr.engine import LocalAsrEngine
from aiplatform.engines.asr.settings import ASRSettings
from aiplatform.engines.asr.shipped import resolve_whisper_path
from aiplatform.engines.diarization import DIARIZE
from aiplatform.engines.diarization.engine import LocalDiarizationEngine
from aiplatform.engines.diarization.settings import DiarizationSettings
from aiplatform.engines.emotion import CLASSIFY_EMOTION
from aiplatform.engines.emotion.engine import LocalEmotionEngine
from aiplatform.engines.emotion.settings import EmotionSettings
from aiplatform.engines.speakers import EMBED_SPEAKER, ENROLL_SPEAKER, IDENTIFY_SPEAKERS
from aiplatform.engines.speakers.engine import LocalSpeakersEngine
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.forms import FilePart
from tests.speech import SENTENCES, VOICE_A, VOICE_B, conversation, speak

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def part(data: bytes) -> FilePart:
    return FilePart(filename="speech.wav", content_type="audio/wav", data=data)


@pytest.fixture(scope="module")
def whisper_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def test_whisper_base_is_assembled_once_and_checked(whisper_cache: Path) -> None:
    folder = Path(resolve_whisper_path("shipped:whisper-base", str(whisper_cache)))
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.bin",
        "model.bin.sha256",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert resolve_whisper_path("shipped:whisper-base", str(whisper_cache)) == str(folder)
    assert (folder / "model.bin").stat().st_mtime_ns == stamp, "reused, not rebuilt"
    with open(folder / "model.bin", "r+b") as damaged:  # a corrupted cache is rebuilt
        damaged.seek(1000)
        damaged.write(b"\x00" * 16)
    assert resolve_whisper_path("shipped:whisper-base", str(whisper_cache)) == str(folder)
    assert folder.joinpath("model.bin.sha256").read_text().strip()
    assert (folder / "model.bin").stat().st_mtime_ns != stamp, "the damaged copy was replaced"
    with open(folder / "model.bin", "rb") as rebuilt:
        rebuilt.seek(1000)
        assert rebuilt.read(16) != b"\x00" * 16
    with pytest.raises(ValueError, match="known"):
        resolve_whisper_path("shipped:whisper-huge", str(whisper_cache))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def whisper_base(whisper_cache: Path) -> AsyncIterator[LocalAsrEngine]:
    settings = ASRSettings(path="shipped:whisper-base", cache_dir=str(whisper_cache))
    async with LocalAsrEngine(settings) as engine:
        yield engine


async def test_whisper_base_transcribes_espeak_sentences(whisper_base: LocalAsrEngine) -> None:
    transform = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    references, hypotheses = [], []
    for sentence in SENTENCES[:3]:
        result = await whisper_base.invoke(
            TRANSCRIBE,
            TranscriptionRequest(file=part(speak(sentence)), timestamp_granularities=["word"]),
        )
        references.append(sentence)
        hypotheses.append(result.text)
        assert result.language == "en"
        assert result.words
        assert all(
            a.end <= b.start + 0.05 for a, b in zip(result.words, result.words[1:], strict=False)
        )
    error = jiwer.wer(
        references, hypotheses, reference_transform=transform, hypothesis_transform=transform
    )
    assert error < 0.25, (error, hypotheses)


async def test_silero_and_resemblyzer_diarize_two_voices() -> None:
    talk = conversation()
    async with LocalDiarizationEngine(DiarizationSettings()) as engine:
        result = await engine.invoke(DIARIZE, DiarizationRequest(file=part(talk.wav)))
    assert [t.speaker for t in result.turns] == ["speaker_0", "speaker_1"] * 2
    for turn, (start, end, _) in zip(result.turns, talk.turns, strict=True):
        assert abs(turn.start - start) < 0.3
        assert abs(turn.end - end) < 0.5
    assert len(result.speakers[0].embedding) == 256


async def test_resemblyzer_identifies_an_enrolled_voice(tmp_path: Path) -> None:
    settings = SpeakersSettings(data_dir=str(tmp_path))
    async with LocalSpeakersEngine(settings) as engine:
        await engine.invoke(
            ENROLL_SPEAKER,
            SpeakerEnrollRequest(file=part(speak(SENTENCES[3], VOICE_A)), name="Alice"),
        )
        embeddings = [
            (await engine.invoke(EMBED_SPEAKER, SpeakerEmbeddingRequest(file=part(wav)))).embedding
            for wav in (speak(SENTENCES[4], VOICE_A), speak(SENTENCES[4], VOICE_B))
        ]
        matches = await engine.invoke(
            IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=embeddings)
        )
    assert [m.name for m in matches.data] == ["Alice", None]
    # enrollment survived: a new engine on the same folder finds Alice
    async with LocalSpeakersEngine(settings) as engine:
        again = await engine.invoke(
            IDENTIFY_SPEAKERS, SpeakerIdentifyRequest(embeddings=embeddings[:1])
        )
    assert again.data[0].name == "Alice"


async def test_lexicon_emotions() -> None:
    async with LocalEmotionEngine(EmotionSettings()) as engine:
        result = await engine.invoke(
            CLASSIFY_EMOTION,
            EmotionRequest(
                input=[
                    "I am so happy today, this is wonderful.",
                    "The meeting is at three.",
                    "I miss her so much, I cry every night.",
                    "This is disgusting and it makes me sick.",
                ]
            ),
        )
    assert [r.label for r in result.data] == ["joy", "neutral", "sadness", "disgust"]
    for row in result.data:
        assert abs(sum(row.scores.values()) - 1) < 1e-4


async def test_transformers_emotion_classifier_from_a_folder(tmp_path: Path) -> None:
    from tests.models import tiny_sequence_classifier

    labels = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    tiny_sequence_classifier(tmp_path, labels)
    settings = EmotionSettings(backend="transformers", path=str(tmp_path))
    async with LocalEmotionEngine(settings) as engine:
        result = await engine.invoke(
            CLASSIFY_EMOTION, EmotionRequest(input=["hello world", "the quick brown fox"])
        )
    for row in result.data:
        assert sorted(row.scores) == labels
        assert abs(sum(row.scores.values()) - 1) < 1e-4
        assert row.label == max(row.scores, key=row.scores.__getitem__)
