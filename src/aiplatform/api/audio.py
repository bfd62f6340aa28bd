"""Wire shapes of the audio engines: OpenAI's transcriptions and translations, with the
platform's extensions (speaker and emotion per segment), and the speaker and diarization APIs."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.api.ids import Id
from aiplatform.forms import FilePart

__all__ = [
    "DiarizationRequest",
    "DiarizationResult",
    "DiarizedSpeaker",
    "Granularity",
    "Speaker",
    "SpeakerDeleteRequest",
    "SpeakerDeleted",
    "SpeakerEmbedding",
    "SpeakerEmbeddingRequest",
    "SpeakerEnrollRequest",
    "SpeakerIdentifyRequest",
    "SpeakerList",
    "SpeakerListRequest",
    "SpeakerMatch",
    "SpeakerMatches",
    "SpeakerTurn",
    "Transcription",
    "TranscriptionEvent",
    "TranscriptionFormat",
    "TranscriptionRequest",
    "TranscriptionSegment",
    "TranscriptionUsage",
    "TranscriptionWord",
    "TranslationRequest",
]

TranscriptionFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
Granularity = Literal["word", "segment"]
Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
SpeakerCount = Annotated[int, msgspec.Meta(ge=1, le=32)]


class TranscriptionRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/audio/transcriptions`` (multipart). ``diarize``, ``num_speakers`` and
    ``emotion`` are the platform's extensions."""

    file: FilePart
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    response_format: TranscriptionFormat = "json"
    temperature: Temperature = 0.0
    timestamp_granularities: list[Granularity] = msgspec.field(default_factory=list)
    stream: bool = False
    #: Label each segment and word with its speaker (enrolled name, or ``speaker_N``).
    diarize: bool = False
    #: The number of speakers when known; otherwise it is estimated.
    num_speakers: SpeakerCount | None = None
    #: Classify each segment's emotion and add a smoothed timeline.
    emotion: bool = False

    @property
    def wants_words(self) -> bool:
        return "word" in self.timestamp_granularities or self.diarize


class TranslationRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/audio/translations`` (multipart): speech in any language to English text."""

    file: FilePart
    model: str | None = None
    prompt: str | None = None
    response_format: TranscriptionFormat = "json"
    temperature: Temperature = 0.0


class TranscriptionWord(msgspec.Struct, kw_only=True, omit_defaults=True):
    word: str
    start: float
    end: float
    probability: float | None = None
    speaker: str | None = None


class TranscriptionSegment(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = msgspec.field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    speaker: str | None = None
    emotion: str | None = None
    emotion_scores: dict[str, float] | None = None


class TranscriptionUsage(msgspec.Struct, kw_only=True):
    """OpenAI's usage for audio billed by duration."""

    seconds: float
    type: Literal["duration"] = "duration"


class EmotionPoint(msgspec.Struct, kw_only=True):
    start: float
    end: float
    label: str
    scores: dict[str, float]


class Transcription(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The structured result (OpenAI's ``verbose_json``); the route renders the other
    formats from it."""

    text: str
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str = ""
    duration: float = 0.0
    segments: list[TranscriptionSegment] = msgspec.field(default_factory=list)
    words: list[TranscriptionWord] | None = None
    #: Speakers found by diarization, in order of first appearance.
    speakers: list[str] | None = None
    #: Emotion per segment, smoothed over time.
    emotion_timeline: list[EmotionPoint] | None = None
    usage: TranscriptionUsage | None = None


class TranscriptionEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An SSE event of a streamed transcription: ``transcript.text.delta`` per segment, then
    ``transcript.text.done`` with the whole text."""

    type: Literal["transcript.text.delta", "transcript.text.done"]
    delta: str | None = None
    text: str | None = None
    #: The segment the delta belongs to (start, end, words): a platform extension.
    segment: TranscriptionSegment | None = None
    usage: TranscriptionUsage | None = None


# -- speakers ----------------------------------------------------------------------------------


class SpeakerEnrollRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/speakers`` (multipart): a voice sample and the speaker's name."""

    file: FilePart
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Speaker(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: int
    duration: float
    object: Literal["speaker"] = "speaker"


class SpeakerListRequest(msgspec.Struct, kw_only=True):
    pass


class SpeakerList(msgspec.Struct, kw_only=True):
    data: list[Speaker]
    object: Literal["list"] = "list"


class SpeakerDeleteRequest(msgspec.Struct, kw_only=True):
    speaker_id: Id


class SpeakerDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["speaker.deleted"] = "speaker.deleted"


class SpeakerEmbeddingRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/speakers/embeddings`` (multipart): one voice embedding of the whole file."""

    file: FilePart


class SpeakerEmbedding(msgspec.Struct, kw_only=True):
    embedding: list[float]
    duration: float
    object: Literal["speaker.embedding"] = "speaker.embedding"


class SpeakerIdentifyRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/speakers/identify``: the enrolled speaker closest to each embedding, when
    closer than the threshold (the engine's calibrated one unless given)."""

    embeddings: Annotated[list[list[float]], msgspec.Meta(min_length=1, max_length=256)]
    threshold: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None = None


class SpeakerMatch(msgspec.Struct, kw_only=True):
    index: int
    #: Cosine similarity to the closest enrolled speaker (0 when none is enrolled).
    score: float
    speaker_id: str | None = None
    name: str | None = None


class SpeakerMatches(msgspec.Struct, kw_only=True):
    data: list[SpeakerMatch]
    threshold: float
    object: Literal["list"] = "list"


# -- diarization -------------------------------------------------------------------------------


class DiarizationRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/audio/diarizations`` (multipart): who spoke when."""

    file: FilePart
    num_speakers: SpeakerCount | None = None
    max_speakers: SpeakerCount | None = None


class SpeakerTurn(msgspec.Struct, kw_only=True):
    start: float
    end: float
    speaker: str


class DiarizedSpeaker(msgspec.Struct, kw_only=True):
    label: str
    #: Seconds of speech attributed to the speaker.
    duration: float
    #: Mean voice embedding of the speaker's speech, for identification against enrolled ones.
    embedding: list[float]


class DiarizationResult(msgspec.Struct, kw_only=True):
    duration: float
    turns: list[SpeakerTurn]
    speakers: list[DiarizedSpeaker]
    object: Literal["diarization"] = "diarization"
