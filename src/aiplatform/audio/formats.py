"""A transcription in the response format the client asked for: json, text, srt, vtt, or
verbose_json. Speakers, when diarized, lead each cue (``[name]`` in SRT, a ``<v name>`` voice
span in WebVTT)."""

from __future__ import annotations

import msgspec

from aiplatform.api.audio import Transcription, TranscriptionFormat, TranscriptionSegment

__all__ = ["render_transcription", "srt", "vtt"]

_encoder = msgspec.json.Encoder()


class _JsonTranscription(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str
    usage: msgspec.Struct | None = None


def render_transcription(
    response_format: TranscriptionFormat, result: Transcription
) -> tuple[bytes, str]:
    """The body and media type of ``result`` in ``response_format``."""
    if response_format == "text":
        return (result.text + "\n").encode(), "text/plain; charset=utf-8"
    if response_format == "srt":
        return srt(result.segments).encode(), "application/x-subrip; charset=utf-8"
    if response_format == "vtt":
        return vtt(result.segments).encode(), "text/vtt; charset=utf-8"
    if response_format == "json":
        return _encoder.encode(_JsonTranscription(text=result.text, usage=result.usage)), (
            "application/json"
        )
    return _encoder.encode(result), "application/json"


def srt(segments: list[TranscriptionSegment]) -> str:
    cues = []
    for number, segment in enumerate(segments, start=1):
        text = segment.text.strip()
        if segment.speaker:
            text = f"[{segment.speaker}] {text}"
        start, end = _clock(segment.start, ","), _clock(segment.end, ",")
        cues.append(f"{number}\n{start} --> {end}\n{text}\n")
    return "\n".join(cues)


def vtt(segments: list[TranscriptionSegment]) -> str:
    cues = ["WEBVTT\n"]
    for segment in segments:
        text = segment.text.strip()
        if segment.speaker:
            text = f"<v {segment.speaker}>{text}"
        cues.append(f"{_clock(segment.start, '.')} --> {_clock(segment.end, '.')}\n{text}\n")
    return "\n".join(cues)


def _clock(seconds: float, decimal: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"
