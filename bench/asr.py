"""ASR benchmark: real-time factor through ``aiplatform serve`` against the raw model call,
and word error rate on espeak-ng sentences.

(a) RTF (seconds of compute per second of audio) of Whisper base (int8, greedy) transcribing
    each clip: raw ``faster_whisper.WhisperModel.transcribe`` in this process, and a
    ``POST /v1/audio/transcriptions`` to a server running the same model; target: server/raw
    <= 1.05. Both sides run the same clips, alternating, best of ``--rounds``.
(b) WER (jiwer, lower-cased, punctuation removed) of the server's transcripts.

Every transcription is checked to have happened (a 200, words in every transcript, raw and
served) before a figure is printed; a failed check exits 1. Run: ``python -m bench.asr``
(needs espeak-ng); quick: ``python -m bench.asr --rounds 1``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import httpx
import jiwer
from tests.speech import SENTENCES, VOICE_A, VOICE_B, speak, speak_samples
from tests.support import ServerProcess

from aiplatform.audio.decode import SAMPLE_RATE
from aiplatform.engines.asr.shipped import resolve_whisper_path
from bench.checks import require, require_count, require_status, run_bench

CLIPS = [(text, voice) for text in SENTENCES for voice in (VOICE_A, VOICE_B)]
_NORMALIZE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def check_transcripts(who: str, texts: list[str]) -> None:
    """One transcript a clip, each with words in it."""
    require_count(f"transcripts from {who}", len(texts), len(CLIPS))
    for (reference, _), text in zip(CLIPS, texts, strict=True):
        require(bool(text.split()), f"{who} heard no words in the clip of {reference!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require(args.rounds >= 1, "--rounds must be at least 1")
    cache = tempfile.mkdtemp(prefix="aiplatform-bench-")
    folder = resolve_whisper_path("shipped:whisper-base", cache)
    from faster_whisper import WhisperModel

    model = WhisperModel(folder, device="cpu", compute_type="int8")
    decoded = [speak_samples(t, v) for t, v in CLIPS]  # the raw side gets samples ready-made
    audio_s = sum(samples.size for samples in decoded) / SAMPLE_RATE
    server = ServerProcess(
        ["--engines", "asr"],
        {
            "AIPLATFORM_ENGINES__ASR__BACKEND": "faster_whisper",
            "AIPLATFORM_ENGINES__ASR__CACHE_DIR": cache,
        },
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            raw_best = served_best = float("inf")
            texts: list[str] = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                raw_texts: list[str] = []
                for samples in decoded:
                    segments, _ = model.transcribe(samples, beam_size=1, temperature=0.0)
                    raw_texts.append(" ".join(segment.text for segment in segments))
                raw_best = min(raw_best, time.perf_counter() - start)
                start = time.perf_counter()
                texts = []
                for text, voice in CLIPS:
                    response = client.post(
                        "/v1/audio/transcriptions",
                        files={"file": ("clip.wav", speak(text, voice), "audio/wav")},
                    )
                    require_status(
                        "POST /v1/audio/transcriptions", response.status_code, response.content
                    )
                    texts.append(response.json()["text"])
                served_best = min(served_best, time.perf_counter() - start)
                check_transcripts("raw faster-whisper", raw_texts)
                check_transcripts("the server", texts)
    finally:
        server.stop()
    references = [text for text, _ in CLIPS]
    error = jiwer.wer(
        references, texts, reference_transform=_NORMALIZE, hypothesis_transform=_NORMALIZE
    )
    raw_rtf, served_rtf = raw_best / audio_s, served_best / audio_s
    heard = sum(len(text.split()) for text in texts)
    spoken = sum(len(text.split()) for text, _ in CLIPS)
    print(
        f"clips: {len(CLIPS)} ({audio_s:.1f} s of espeak-ng speech, two voices; "
        f"{spoken} words spoken, {heard} transcribed)"
    )
    print(f"(a) RTF raw faster-whisper: {raw_rtf:.3f}   through the server: {served_rtf:.3f}")
    print(f"    server/raw: {served_rtf / raw_rtf:.3f}  (target <= 1.05)")
    print(f"(b) WER through the server: {error:.3f}")
    for voice in (VOICE_A, VOICE_B):
        picked = [i for i, (_, v) in enumerate(CLIPS) if v == voice]
        voice_error = jiwer.wer(
            [references[i] for i in picked],
            [texts[i] for i in picked],
            reference_transform=_NORMALIZE,
            hypothesis_transform=_NORMALIZE,
        )
        print(f"    voice {voice}: {voice_error:.3f}")


if __name__ == "__main__":
    run_bench(main)
