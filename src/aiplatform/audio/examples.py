"""A small synthetic recording for the audio operations' examples: two "voices" (buzzes of
different pitch) taking turns, with pauses between them, as a 16 kHz mono WAV.

The fake audio backends hear it as four utterances by two speakers. Made with the standard
library alone and only when an example asks for it.
"""

from __future__ import annotations

import functools
import io
import math
import wave
from array import array

from aiplatform.forms import FilePart

__all__ = ["example_wav", "example_wav_part"]

_RATE = 16_000
_PAUSE_S = 0.6
#: ``(fundamental Hz, seconds)`` of each utterance: the low voice, the high one, and again.
_TURNS = ((100.0, 1.5), (400.0, 1.5), (100.0, 1.2), (400.0, 1.2))


@functools.cache
def example_wav() -> bytes:
    """The recording: about seven seconds, four turns."""
    samples = array("h")
    pause = array("h", bytes(2 * int(_PAUSE_S * _RATE)))
    for pitch, seconds in _TURNS:
        samples.extend(_buzz(pitch, seconds))
        samples.extend(pause)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def example_wav_part(filename: str = "example.wav") -> FilePart:
    """The recording as an uploaded file."""
    return FilePart(filename=filename, content_type="audio/wav", data=example_wav())


def _buzz(pitch: float, seconds: float) -> array[int]:
    """A voiced sound: a fundamental and four overtones, with a short fade in and out."""
    count = int(seconds * _RATE)
    fade = int(0.02 * _RATE)
    step = 2 * math.pi * pitch / _RATE
    out = array("h", bytes(2 * count))
    for index in range(count):
        phase = step * index
        value = sum(math.sin(phase * harmonic) / harmonic for harmonic in range(1, 6))
        envelope = min(1.0, index / fade, (count - index) / fade)
        out[index] = int(6000 * envelope * value)
    return out
