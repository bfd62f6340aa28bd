"""Speech regions by frame energy: the cheap voice activity detector of the fake backends and
of live transcription's end-of-utterance check."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aiplatform.audio.decode import SAMPLE_RATE, Samples

__all__ = ["LOUDNESS_THRESHOLD", "loud_frames", "speech_regions"]

#: RMS above which a frame counts as sound rather than silence.
LOUDNESS_THRESHOLD = 0.01


def loud_frames(
    samples: Samples, frame: int, threshold: float = LOUDNESS_THRESHOLD
) -> npt.NDArray[np.bool_]:
    """Whether each ``frame``-sample frame's RMS exceeds ``threshold``; a shorter last frame
    is judged on the samples it has."""
    whole = samples.size // frame
    frames = samples[: whole * frame].reshape(whole, frame)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    tail = samples[whole * frame :]
    if tail.size:
        rms = np.append(rms, np.sqrt(np.mean(tail * tail)))
    return np.asarray(rms > threshold, dtype=np.bool_)


def speech_regions(
    samples: Samples,
    *,
    frame_s: float = 0.03,
    threshold: float = LOUDNESS_THRESHOLD,
    min_gap_s: float = 0.3,
    min_speech_s: float = 0.1,
) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of the stretches whose RMS exceeds ``threshold``, with gaps
    shorter than ``min_gap_s`` bridged and blips shorter than ``min_speech_s`` dropped."""
    frame = max(1, int(frame_s * SAMPLE_RATE))
    count = samples.size // frame
    if count == 0:
        return []
    loud = loud_frames(samples, frame, threshold)[:count]
    regions: list[tuple[float, float]] = []
    start: int | None = None
    for index, is_loud in enumerate(loud):
        if is_loud and start is None:
            start = index
        elif not is_loud and start is not None:
            regions.append((start * frame_s, index * frame_s))
            start = None
    if start is not None:
        regions.append((start * frame_s, count * frame_s))
    merged: list[tuple[float, float]] = []
    for region in regions:
        if merged and region[0] - merged[-1][1] < min_gap_s:
            merged[-1] = (merged[-1][0], region[1])
        else:
            merged.append(region)
    return [(round(a, 3), round(b, 3)) for a, b in merged if b - a >= min_speech_s]
