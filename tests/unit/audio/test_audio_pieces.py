"""The audio plumbing on its own: forms, subtitle formats, decoding, live segmentation,
speaker alignment, clustering and the emotion timeline."""

from __future__ import annotations

import numpy as np
import pytest

from aiplatform.api.audio import (
    SpeakerTurn,
    Transcription,
    TranscriptionRequest,
    TranscriptionSegment,
    TranscriptionWord,
)
from aiplatform.api.emotion import TimedText
from aiplatform.audio.alignment import label_segments, label_words, speaker_at
from aiplatform.audio.decode import (
    SAMPLE_RATE,
    _decode_with_av,
    _pcm16_wav_at_rate,
    decode_audio,
    to_wav,
)
from aiplatform.audio.formats import render_transcription
from aiplatform.audio.live import LiveSegmenter
from aiplatform.engines.diarization.clustering import cluster_voices
from aiplatform.engines.emotion.timeline import smoothed_timeline
from aiplatform.errors import InvalidRequestError
from aiplatform.forms import FilePart, decode_form, encode_form


def tone(seconds: float, amplitude: float = 0.3, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def test_form_round_trip_keeps_files_lists_and_flags() -> None:
    request = TranscriptionRequest(
        file=FilePart(filename="a.wav", content_type="audio/wav", data=b"RIFF\x00\xff"),
        language="en",
        temperature=0.2,
        timestamp_granularities=["word", "segment"],
        diarize=True,
    )
    body, content_type = encode_form(request)
    assert content_type.startswith("multipart/form-data; boundary=")
    assert b'name="timestamp_granularities[]"' in body
    # what a multipart parser hands the route: (name, text or file) pairs
    items: list[tuple[str, str | FilePart]] = [
        ("file", request.file),
        ("language", "en"),
        ("temperature", "0.2"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
        ("diarize", "true"),
        ("unknown", "ignored"),
    ]
    assert decode_form(items, TranscriptionRequest) == request


def test_form_errors_name_the_field() -> None:
    with pytest.raises(InvalidRequestError) as missing:
        decode_form([("language", "en")], TranscriptionRequest)
    assert missing.value.param == "file"
    with pytest.raises(InvalidRequestError) as not_a_file:
        decode_form([("file", "text")], TranscriptionRequest)
    assert not_a_file.value.param == "file"
    with pytest.raises(InvalidRequestError) as bad_value:
        decode_form([("file", FilePart()), ("temperature", "2")], TranscriptionRequest)
    assert bad_value.value.param == "temperature"


def test_subtitles() -> None:
    result = Transcription(
        text="Hi. Bye.",
        segments=[
            TranscriptionSegment(id=0, start=0.0, end=1.5, text=" Hi.", speaker="Alice"),
            TranscriptionSegment(id=1, start=3661.25, end=3662.0, text=" Bye."),
        ],
    )
    srt, media = render_transcription("srt", result)
    assert media.startswith("application/x-subrip")
    assert srt.decode() == (
        "1\n00:00:00,000 --> 00:00:01,500\n[Alice] Hi.\n\n2\n01:01:01,250 --> 01:01:02,000\nBye.\n"
    )
    vtt, _ = render_transcription("vtt", result)
    assert vtt.decode().splitlines()[:4] == [
        "WEBVTT",
        "",
        "00:00:00.000 --> 00:00:01.500",
        "<v Alice>Hi.",
    ]
    assert render_transcription("text", result)[0] == b"Hi. Bye.\n"
    assert render_transcription("json", result)[0] == b'{"text":"Hi. Bye."}'


def test_decoding_resamples_and_refuses_what_is_not_audio() -> None:
    samples = decode_audio(to_wav(tone(1.0), sample_rate=8000), max_duration_s=10)
    assert samples.dtype == np.float32
    assert abs(samples.size - 2 * SAMPLE_RATE) < 200  # 8 kHz samples read as 16 kHz: 2 s
    for data in (b"", b"\x00" * 10, b"hello"):
        with pytest.raises(InvalidRequestError):
            decode_audio(data, max_duration_s=10)
    with pytest.raises(InvalidRequestError) as too_long:
        decode_audio(to_wav(tone(3.0)), max_duration_s=2)
    assert too_long.value.code == "audio_too_long"


def test_a_16khz_pcm_wav_is_read_directly_as_pyav_would_decode_it() -> None:
    audio = np.concatenate([tone(0.7), -tone(0.3), np.array([1.0, -1.0], dtype=np.float32)])
    wav = to_wav(audio)
    direct = decode_audio(wav, max_duration_s=10)
    assert _pcm16_wav_at_rate(wav) is not None, "the direct path was taken"
    assert np.array_equal(direct, _decode_with_av(wav, 10 * SAMPLE_RATE, 10))
    # cut short (the header promises more samples than follow): left to PyAV, which still
    # decodes what is there
    cut = wav[: len(wav) - 1000]
    assert _pcm16_wav_at_rate(cut) is None
    assert decode_audio(cut, max_duration_s=10).size == audio.size - 500
    # a header and nothing else is still no audio
    with pytest.raises(InvalidRequestError) as empty:
        decode_audio(to_wav(np.zeros(0, dtype=np.float32)), max_duration_s=10)
    assert empty.value.code == "invalid_audio"


def test_live_segmenter_gives_partials_then_a_final_after_a_pause() -> None:
    segmenter = LiveSegmenter(partial_every_s=1.0, end_silence_s=0.6)
    audio = np.concatenate([silence(2.0), tone(2.5), silence(1.0), tone(1.2), silence(0.2)])
    events = []
    for start in range(0, audio.size, 1600):
        event = segmenter.feed(audio[start : start + 1600])
        if event is not None:
            events.append(event)
    last = segmenter.flush()
    assert last is not None
    events.append(last)
    kinds = [(e.index, e.kind) for e in events]
    assert kinds[-1] == (1, "final")
    assert (0, "final") in kinds
    assert kinds.index((0, "final")) > kinds.index((0, "partial"))
    first = next(e for e in events if e.kind == "final")
    assert 1.5 <= first.start <= 2.0  # leading silence dropped, a little context kept
    assert segmenter.flush() is None


def test_words_and_segments_take_the_covering_speaker() -> None:
    turns = [
        SpeakerTurn(start=0.0, end=2.0, speaker="a"),
        SpeakerTurn(start=2.5, end=5.0, speaker="b"),
    ]
    assert speaker_at(turns, 1.8, 2.2) == "a"
    assert speaker_at(turns, 9.0, 9.5) == "b"  # nearest
    words = [
        TranscriptionWord(word="hi", start=0.1, end=0.5),
        TranscriptionWord(word="there", start=2.6, end=3.0),
        TranscriptionWord(word="you", start=3.0, end=4.0),
    ]
    segments = [TranscriptionSegment(id=0, start=0.0, end=4.0, text="hi there you")]
    label_words(words, turns)
    label_segments(segments, words, turns)
    assert [w.speaker for w in words] == ["a", "b", "b"]
    assert segments[0].speaker == "b"  # most of its words' time


def test_clustering_with_and_without_a_count() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    rows = [a + rng.normal(scale=0.05, size=16) for _ in range(4)]
    rows += [b + rng.normal(scale=0.05, size=16) for _ in range(3)]
    rows.insert(1, b + rng.normal(scale=0.05, size=16))
    matrix = np.array(rows, dtype=np.float32)
    estimated = cluster_voices(matrix, num_speakers=None, max_speakers=8, same_voice_threshold=0.8)
    assert estimated.tolist() == [0, 1, 0, 0, 0, 1, 1, 1]
    one = cluster_voices(matrix, num_speakers=1, max_speakers=8, same_voice_threshold=0.8)
    assert set(one.tolist()) == {0}


def test_timeline_smooths_a_single_outburst() -> None:
    neutral = {"joy": 0.0, "anger": 0.0, "neutral": 1.0}
    angry = {"joy": 0.0, "anger": 1.0, "neutral": 0.0}
    segments = [TimedText(start=float(i), end=float(i) + 1, text="") for i in range(4)]
    scores = [neutral, neutral, angry, neutral]
    smooth = smoothed_timeline(segments, scores, smoothing_s=10.0)
    assert [p.label for p in smooth] == ["neutral"] * 4
    assert 0 < smooth[2].scores["anger"] < 0.2
    raw = smoothed_timeline(segments, scores, smoothing_s=0.0)
    assert [p.label for p in raw] == ["neutral", "neutral", "anger", "neutral"]
