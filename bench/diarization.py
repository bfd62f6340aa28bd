"""Diarization benchmark: diarization error rate on two-voice espeak-ng conversations, and the
voice-similarity calibration behind the speaker thresholds.

(a) DER (missed speech + false alarm + speaker confusion, over 10 ms frames, with the best
    mapping of found speakers to true ones and no forgiveness collar) of the default engine
    (silero VAD + resemblyzer + clustering) on conversations with pauses of 0.3 to 1.0 s, the
    number of speakers estimated.
(b) resemblyzer cosine similarity between utterances of one voice and of different voices, the
    spread the identification threshold must sit in.

Every diarization is checked to have found speech (turns, speakers, a duration) and every voice
vector to be finite and non-zero before a figure is printed; a failed check exits 1.
Run: ``python -m bench.diarization`` (needs espeak-ng).
"""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment
from tests.speech import SENTENCES, VOICE_A, VOICE_B, conversation, speak_samples

from aiplatform.api.audio import DiarizationRequest, SpeakerTurn
from aiplatform.engines.diarization import DIARIZE
from aiplatform.engines.diarization.engine import LocalDiarizationEngine
from aiplatform.engines.diarization.settings import DiarizationSettings
from aiplatform.engines.speakers.encoder import ResemblyzerEncoder
from aiplatform.forms import FilePart
from bench.checks import require, require_non_empty, run_bench

FRAME_S = 0.01


def frames(turns: list[tuple[float, float, str]], length: int) -> list[set[str]]:
    found: list[set[str]] = [set() for _ in range(length)]
    for start, end, speaker in turns:
        for index in range(int(start / FRAME_S), min(length, int(end / FRAME_S))):
            found[index].add(speaker)
    return found


def der(truth: list[tuple[float, float, str]], found: list[SpeakerTurn], duration: float) -> float:
    length = int(duration / FRAME_S) + 1
    want = frames(truth, length)
    got = frames([(t.start, t.end, t.speaker) for t in found], length)
    true_names = sorted({s for _, _, s in truth})
    found_names = sorted({t.speaker for t in found})
    overlap = np.zeros((len(true_names), max(1, len(found_names))))
    for w, g in zip(want, got, strict=True):
        for a in w:
            for b in g:
                overlap[true_names.index(a), found_names.index(b)] += 1
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {found_names[c]: true_names[r] for r, c in zip(rows, cols, strict=True)}
    speech = missed = false_alarm = confusion = 0
    for w, g in zip(want, got, strict=True):
        mapped = {mapping.get(b) for b in g}
        speech += len(w)
        missed += max(0, len(w) - len(g))
        false_alarm += max(0, len(g) - len(w))
        confusion += min(len(w), len(g)) - len(w & mapped)
    return (missed + false_alarm + confusion) / max(speech, 1)


async def main() -> None:
    async with LocalDiarizationEngine(DiarizationSettings()) as engine:
        print("(a) DER, two espeak-ng voices taking turns, speakers estimated")
        scores = []
        for pause in (0.3, 0.5, 1.0):
            talk = conversation(pause)
            result = await engine.invoke(DIARIZE, DiarizationRequest(file=FilePart(data=talk.wav)))
            require_non_empty(f"the turns found with {pause} s pauses", result.turns)
            require_non_empty(f"the speakers found with {pause} s pauses", result.speakers)
            require(result.duration > 0, f"the conversation with {pause} s pauses has no duration")
            error = der(talk.turns, result.turns, result.duration)
            scores.append(error)
            print(
                f"    pause {pause:.1f} s: DER {error:.3f}, "
                f"{len(result.speakers)} speakers found (2 true)"
            )
        print(f"    mean DER {np.mean(scores):.3f}")
    encoder = ResemblyzerEncoder()
    encoder.load()
    voices = {
        voice: [encoder.embed(speak_samples(text, voice)) for text in SENTENCES]
        for voice in (VOICE_A, VOICE_B)
    }
    for vector in (v for vectors in voices.values() for v in vectors):
        norm = float(np.linalg.norm(vector))
        require(np.isfinite(norm) and norm > 0, "resemblyzer returned an empty voice vector")
    same = [
        float(a @ b) for vectors in voices.values() for a, b in itertools.combinations(vectors, 2)
    ]
    different = [float(a @ b) for a in voices[VOICE_A] for b in voices[VOICE_B]]
    print("(b) resemblyzer utterance similarity")
    print(f"    same voice:      min {min(same):.3f}  mean {np.mean(same):.3f}")
    print(f"    different voice: max {max(different):.3f}  mean {np.mean(different):.3f}")
    print(f"    identification threshold: {encoder.same_voice_threshold}")


if __name__ == "__main__":
    run_bench(lambda: asyncio.run(main()))
