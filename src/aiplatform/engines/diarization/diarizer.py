"""Who spoke when: speech regions from a VAD, fixed-length windows inside them embedded by a
voice encoder, windows clustered into speakers, and consecutive windows of one speaker joined
into turns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiplatform.api.audio import DiarizationResult, DiarizedSpeaker, SpeakerTurn
from aiplatform.audio.decode import SAMPLE_RATE, Samples
from aiplatform.engines.diarization.clustering import cluster_voices
from aiplatform.engines.diarization.vad import Vad
from aiplatform.engines.speakers.encoder import VoiceEncoder

__all__ = ["DiarizationOptions", "diarize", "speaker_label"]

#: Turns of one speaker separated by less than this are one turn.
_JOIN_GAP_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class DiarizationOptions:
    window_s: float
    hop_s: float
    num_speakers: int | None
    max_speakers: int
    same_voice_threshold: float


def speaker_label(index: int) -> str:
    return f"speaker_{index}"


def diarize(
    samples: Samples, vad: Vad, encoder: VoiceEncoder, options: DiarizationOptions
) -> DiarizationResult:
    duration = samples.size / SAMPLE_RATE
    windows, pieces = _windows(vad.regions(samples), duration, options)
    if not windows:
        return DiarizationResult(duration=round(duration, 3), turns=[], speakers=[])
    embeddings = encoder.embed_windows(
        samples, [(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in windows]
    )
    labels = cluster_voices(
        embeddings,
        num_speakers=options.num_speakers,
        max_speakers=options.max_speakers,
        same_voice_threshold=options.same_voice_threshold,
    )
    turns: list[SpeakerTurn] = []
    for (start, end), label in zip(pieces, labels.tolist(), strict=True):
        speaker = speaker_label(label)
        if turns and turns[-1].speaker == speaker and start - turns[-1].end < _JOIN_GAP_S:
            turns[-1].end = round(end, 3)
        else:
            turns.append(SpeakerTurn(start=round(start, 3), end=round(end, 3), speaker=speaker))
    speakers = []
    for label in range(int(labels.max()) + 1):
        centroid = embeddings[labels == label].mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        speaker = speaker_label(label)
        speakers.append(
            DiarizedSpeaker(
                label=speaker,
                duration=round(sum(t.end - t.start for t in turns if t.speaker == speaker), 3),
                embedding=(centroid / (norm or 1.0)).astype(np.float32).tolist(),
            )
        )
    return DiarizationResult(duration=round(duration, 3), turns=turns, speakers=speakers)


def _windows(
    regions: list[tuple[float, float]], duration: float, options: DiarizationOptions
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The windows to embed, and the stretch of speech each one speaks for.

    A region shorter than a window gets one window centred on it (borrowing audio around it);
    a longer one gets windows every ``hop_s``, each speaking for the hop around its centre."""
    window, hop = options.window_s, options.hop_s
    windows: list[tuple[float, float]] = []
    pieces: list[tuple[float, float]] = []
    for start, end in regions:
        if end - start <= window:
            centre = (start + end) / 2
            lo = min(max(0.0, centre - window / 2), max(0.0, duration - window))
            windows.append((lo, min(duration, lo + window)))
            pieces.append((start, end))
            continue
        count = int(np.ceil((end - start - window) / hop)) + 1
        starts = [min(start + index * hop, end - window) for index in range(count)]
        for index, lo in enumerate(starts):
            centre = lo + window / 2
            piece_start = start if index == 0 else max(start, centre - hop / 2)
            piece_end = end if index == count - 1 else min(end, centre + hop / 2)
            windows.append((lo, lo + window))
            pieces.append((piece_start, piece_end))
    return windows, pieces
