"""Test speech with known words, made by Debian's espeak-ng (two voices: ``en-us`` and the
female ``en+f3``), and conversations built from it with the true speaker turns."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiplatform.audio.decode import SAMPLE_RATE, Samples, decode_audio, to_wav

VOICE_A = "en-us"
VOICE_B = "en+f3"

SENTENCES = [
    "Hello world. This is a test of the speech recognition engine.",
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back after the meeting tomorrow morning.",
    "We measured the temperature every hour during the night.",
    "She sells sea shells by the sea shore.",
    "The train to the city leaves at seven in the evening.",
]

CONVERSATION = [
    (VOICE_A, "Good morning, how are you doing today?"),
    (VOICE_B, "I am doing very well, thank you for asking."),
    (VOICE_A, "That is great to hear, shall we start the meeting?"),
    (VOICE_B, "Yes, let us begin with the first item on the agenda."),
]


@functools.cache
def speak(text: str, voice: str = VOICE_A) -> bytes:
    """A WAV file of ``text`` in ``voice`` (espeak-ng's own 22.05 kHz WAV)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("the audio tests need espeak-ng: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True
        )
        return path.read_bytes()


def speak_samples(text: str, voice: str = VOICE_A) -> Samples:
    return decode_audio(speak(text, voice), max_duration_s=600)


@dataclass(frozen=True)
class Conversation:
    wav: bytes
    #: ``(start, end, voice)`` of each utterance, in seconds.
    turns: list[tuple[float, float, str]]


@functools.cache
def conversation(pause_s: float = 0.5) -> Conversation:
    """The two voices taking turns, with a pause between utterances."""
    silence = np.zeros(int(pause_s * SAMPLE_RATE), dtype=np.float32)
    pieces: list[Samples] = []
    turns: list[tuple[float, float, str]] = []
    clock = 0.0
    for voice, text in CONVERSATION:
        samples = speak_samples(text, voice)
        pieces += [samples, silence]
        turns.append((clock, clock + samples.size / SAMPLE_RATE, voice))
        clock += (samples.size + silence.size) / SAMPLE_RATE
    return Conversation(wav=to_wav(np.concatenate(pieces)), turns=turns)
