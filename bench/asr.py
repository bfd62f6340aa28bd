"""ASR benchmark: real-time factor through ``aiplatform serve`` against the raw model call,
and word error rate on espeak-ng sentences, for each ASR backend.

faster_whisper (Whisper base, int8, greedy):

(a) RTF (seconds of compute per second of audio) transcribing each clip: raw
    ``faster_whisper.WhisperModel.transcribe`` in this process, and a
    ``POST /v1/audio/transcriptions`` to a server running the same model; target: server/raw
    <= 1.05.
(b) WER (jiwer, lower-cased, punctuation removed) of the server's transcripts.

nemo (``.nemo`` checkpoints; no NeMo weights ship in any package, so the bench builds its own
with NeMo's modules, as ``tests.nemo_models`` does):

(c) RTF of a CTC model of QuartzNet 5x5's size (6.7 M parameters) on two clips of 20-odd
    seconds (the test sentences, one voice a clip): raw ``model.transcribe([samples],
    timestamps=True)`` in this process, the call the engine makes, against a ``verbose_json``
    request for word timestamps to a server running the same file; target: server/raw <= 1.05.
    The model is untrained: timing needs the compute of a real model, not its accuracy, and the
    0.2 M-parameter model that does learn the sentences in seconds runs so fast that the server's
    fixed cost per request (upload, decode, the hop to a worker thread) would be all there is
    to measure. Long clips keep that fixed cost as small a share as a real request's. (Being
    untrained, it hears next to nothing: the few words it returns make the server's shaping of
    the answer a little cheaper than a real model's would, by well under a millisecond.)
(d) WER of ``tests.nemo_models.build_ctc``'s small model (trained on the test sentences in
    voice en-us) on those sentences, raw and through the server.

Both sides run the same clips with the same number of CPU threads (``--threads``; unset: the
engine's default), alternating, best of ``--rounds``. Every transcription is checked to have
happened (a 200, words in every transcript, raw and served) before a figure is printed; a failed
check exits 1. Run: ``python -m bench.asr`` (needs espeak-ng; the nemo part needs
``aiplatform[nemo]`` and trains its small model first, about half a minute); one backend:
``--backend nemo``; quick: ``--rounds 1``. On a machine whose cores other work shares, torch's
threads wait on each other whenever one is descheduled, which can slow either side several-fold
at random: ``--threads 1`` measures the server's own cost there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jiwer
import numpy as np
from tests.speech import SENTENCES, VOICE_A, VOICE_B, speak, speak_samples
from tests.support import ServerProcess

from aiplatform.audio.decode import SAMPLE_RATE, Samples, decode_audio, to_wav
from aiplatform.engines.asr.nemo import load_nemo_model
from aiplatform.engines.asr.shipped import resolve_whisper_path
from aiplatform.engines.cpus import usable_cpus
from bench.checks import require, require_count, require_status, run_bench

CLIPS = [(text, voice) for text in SENTENCES for voice in (VOICE_A, VOICE_B)]
BACKENDS = ("faster_whisper", "nemo")
#: Silence between the sentences of a long clip.
PAUSE_S = 0.5
#: The server imports NeMo (and torch) and restores the checkpoint before it is ready.
NEMO_START_TIMEOUT_S = 300.0
_NORMALIZE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


@dataclass
class Timed:
    """Best-of-rounds seconds for each side, and the last round's transcripts."""

    raw_s: float
    served_s: float
    raw_texts: list[str]
    served_texts: list[str]


def best_of(
    rounds: int,
    raw: Callable[[], list[str]],
    served: Callable[[], list[str]],
    check: Callable[[list[str], list[str]], None],
) -> Timed:
    """Run the raw and the served side in turn ``rounds`` times; ``check`` sees each round's
    transcripts (raw, served) before the next round starts."""
    timed = Timed(float("inf"), float("inf"), [], [])
    for _ in range(rounds):
        start = time.perf_counter()
        timed.raw_texts = raw()
        timed.raw_s = min(timed.raw_s, time.perf_counter() - start)
        start = time.perf_counter()
        timed.served_texts = served()
        timed.served_s = min(timed.served_s, time.perf_counter() - start)
        check(timed.raw_texts, timed.served_texts)
    return timed


def check_transcripts(who: str, references: Sequence[str], texts: list[str]) -> None:
    """One transcript a clip, each with words in it."""
    require_count(f"transcripts from {who}", len(texts), len(references))
    for reference, text in zip(references, texts, strict=True):
        require(bool(text.split()), f"{who} heard no words in the clip of {reference[:60]!r}")


def word_error_rate(references: Sequence[str], texts: Sequence[str]) -> float:
    return float(
        jiwer.wer(
            list(references),
            list(texts),
            reference_transform=_NORMALIZE,
            hypothesis_transform=_NORMALIZE,
        )
    )


def transcribe_served(client: httpx.Client, wav: bytes, **form: str) -> dict[str, Any]:
    """``POST /v1/audio/transcriptions`` of ``wav``; the JSON answer, checked to be a 200."""
    response = client.post(
        "/v1/audio/transcriptions", files={"file": ("clip.wav", wav, "audio/wav")}, data=form
    )
    require_status("POST /v1/audio/transcriptions", response.status_code, response.content)
    answer: dict[str, Any] = response.json()
    return answer


def print_rtf(label: str, who: str, timed: Timed, audio_s: float) -> None:
    raw_rtf, served_rtf = timed.raw_s / audio_s, timed.served_s / audio_s
    print(f"{label} RTF raw {who}: {raw_rtf:.3f}   through the server: {served_rtf:.3f}")
    print(f"    server/raw: {served_rtf / raw_rtf:.3f}  (target <= 1.05)")


# -- faster_whisper ---------------------------------------------------------------------------


def threads_env(threads: int | None) -> dict[str, str]:
    """The server's environment for ``--threads``: the engine's setting, and OpenMP's (torch)."""
    if threads is None:
        return {}
    return {"AIPLATFORM_ENGINES__ASR__THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}


def bench_whisper(rounds: int, threads: int | None) -> None:
    cache = tempfile.mkdtemp(prefix="aiplatform-bench-")
    folder = resolve_whisper_path("shipped:whisper-base", cache)
    from faster_whisper import WhisperModel

    # The engine's thread count (faster-whisper's own default is 4, whatever the machine).
    model = WhisperModel(
        folder, device="cpu", compute_type="int8", cpu_threads=threads or usable_cpus()
    )
    decoded = [speak_samples(t, v) for t, v in CLIPS]  # the raw side gets samples ready-made
    audio_s = sum(samples.size for samples in decoded) / SAMPLE_RATE
    references = [text for text, _ in CLIPS]

    def raw() -> list[str]:
        texts = []
        for samples in decoded:
            segments, _ = model.transcribe(samples, beam_size=1, temperature=0.0)
            texts.append(" ".join(segment.text for segment in segments))
        return texts

    def check(raw_texts: list[str], served_texts: list[str]) -> None:
        check_transcripts("raw faster-whisper", references, raw_texts)
        check_transcripts("the server", references, served_texts)

    server = ServerProcess(
        ["--engines", "asr"],
        {
            "AIPLATFORM_ENGINES__ASR__BACKEND": "faster_whisper",
            "AIPLATFORM_ENGINES__ASR__CACHE_DIR": cache,
            **threads_env(threads),
        },
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:

            def served() -> list[str]:
                return [str(transcribe_served(client, speak(t, v))["text"]) for t, v in CLIPS]

            timed = best_of(rounds, raw, served, check)
    finally:
        server.stop()
    texts = timed.served_texts
    heard = sum(len(text.split()) for text in texts)
    spoken = sum(len(text.split()) for text in references)
    print("faster_whisper: Whisper base, int8, greedy")
    print(
        f"clips: {len(CLIPS)} ({audio_s:.1f} s of espeak-ng speech, two voices; "
        f"{spoken} words spoken, {heard} transcribed)"
    )
    print_rtf("(a)", "faster-whisper", timed, audio_s)
    print(f"(b) WER through the server: {word_error_rate(references, texts):.3f}")
    for voice in (VOICE_A, VOICE_B):
        picked = [i for i, (_, v) in enumerate(CLIPS) if v == voice]
        voice_error = word_error_rate([references[i] for i in picked], [texts[i] for i in picked])
        print(f"    voice {voice}: {voice_error:.3f}")


# -- nemo -------------------------------------------------------------------------------------


def build_timing_model(path: Path) -> Path:
    """An untrained character CTC model the size of QuartzNet 5x5 (6.7 M parameters: five
    blocks of five separable convolutions, 256 to 512 channels, kernels 33 to 87), saved as a
    ``.nemo`` file."""
    import torch
    from tests.nemo_models import block, ctc_model

    torch.manual_seed(0)
    model = ctc_model(
        [
            block(256, 33, stride=2, residual=False),
            block(256, 33, repeat=5),
            block(256, 39, repeat=5),
            block(512, 51, repeat=5),
            block(512, 63, repeat=5),
            block(512, 75, repeat=5),
            block(512, 87, residual=False),
            block(1024, 1, residual=False),
        ]
    )
    model.save_to(str(path))
    return path


def long_clip(voice: str) -> bytes:
    """A 16 kHz WAV of every test sentence in ``voice``, one after another (20-odd seconds)."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    pieces: list[Samples] = []
    for sentence in SENTENCES:
        pieces += [speak_samples(sentence, voice), pause]
    return to_wav(np.concatenate(pieces))


def load_nemo(path: Path) -> Any:
    """The checkpoint as the engine loads it (restored, in eval mode, NeMo's objects frozen out
    of the garbage collector's reach)."""
    return load_nemo_model(str(path), "cpu", "ASRModel")


def transcribe_raw(model: Any, samples: Samples) -> str:
    """The engine's call: one clip, with timestamps."""
    hypotheses = model.transcribe(
        [samples], batch_size=1, return_hypotheses=True, timestamps=True, verbose=False
    )
    hypothesis = hypotheses[0]
    if isinstance(hypothesis, list):  # RNNT/TDT models return n-best lists
        hypothesis = hypothesis[0]
    return str(hypothesis.text)


def nemo_server(path: Path, threads: int | None) -> ServerProcess:
    server = ServerProcess(
        ["--engines", "asr"],
        {
            "AIPLATFORM_ENGINES__ASR__BACKEND": "nemo",
            "AIPLATFORM_ENGINES__ASR__PATH": str(path),
            **threads_env(threads),
        },
    )
    server.start(timeout_s=NEMO_START_TIMEOUT_S)
    return server


def served_words(client: httpx.Client, wav: bytes, reference: str) -> str:
    """The server's transcript of ``wav``, asked with word timestamps, checked to carry them."""
    answer = transcribe_served(
        client, wav, response_format="verbose_json", **{"timestamp_granularities[]": "word"}
    )
    require(bool(answer.get("words")), f"the server gave no words for {reference[:60]!r}")
    return str(answer["text"])


def same_text(first: str, second: str) -> bool:
    return first.split() == second.split()


def bench_nemo_rtf(path: Path, rounds: int, threads: int | None) -> None:
    model = load_nemo(path)
    parameters = sum(p.numel() for p in model.parameters())
    voices = (VOICE_A, VOICE_B)
    wavs = [long_clip(voice) for voice in voices]
    # The raw side gets the very samples the server decodes from the upload.
    decoded = [decode_audio(wav, max_duration_s=600) for wav in wavs]
    audio_s = sum(samples.size for samples in decoded) / SAMPLE_RATE
    references = [f"every test sentence in voice {voice}" for voice in voices]

    def raw() -> list[str]:
        return [transcribe_raw(model, samples) for samples in decoded]

    def check(raw_texts: list[str], served_texts: list[str]) -> None:
        check_transcripts("raw NeMo", references, raw_texts)
        check_transcripts("the server", references, served_texts)

    server = nemo_server(path, threads)
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            # One clip each first: the first call of a process sets up its kernels.
            transcribe_raw(model, decoded[0])
            served_words(client, wavs[0], references[0])

            def served() -> list[str]:
                return [
                    served_words(client, wav, r) for wav, r in zip(wavs, references, strict=True)
                ]

            timed = best_of(rounds, raw, served, check)
    finally:
        server.stop()
    agree = sum(map(same_text, timed.raw_texts, timed.served_texts))
    print(
        f"clips: {len(wavs)} ({audio_s:.1f} s of espeak-ng speech, every test sentence in each "
        f"of two voices); model: untrained CTC, {parameters / 1e6:.1f} M parameters "
        f"(served transcript = raw on {agree}/{len(wavs)})"
    )
    print_rtf("(c)", "NeMo", timed, audio_s)


def bench_nemo_wer(path: Path, threads: int | None) -> None:
    model = load_nemo(path)
    wavs = [speak(sentence, VOICE_A) for sentence in SENTENCES]
    decoded = [speak_samples(sentence, VOICE_A) for sentence in SENTENCES]
    raw_texts = [transcribe_raw(model, samples) for samples in decoded]
    check_transcripts("raw NeMo", SENTENCES, raw_texts)
    server = nemo_server(path, threads)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            texts = [served_words(client, w, s) for w, s in zip(wavs, SENTENCES, strict=True)]
    finally:
        server.stop()
    check_transcripts("the server", SENTENCES, texts)
    print(
        f"(d) WER of the small trained CTC model (voice {VOICE_A}, {len(SENTENCES)} sentences): "
        f"raw {word_error_rate(SENTENCES, raw_texts):.3f}   "
        f"through the server: {word_error_rate(SENTENCES, texts):.3f}"
    )


def bench_nemo(rounds: int, threads: int | None) -> None:
    import torch
    from nemo.utils import logging as nemo_logging
    from tests.nemo_models import build_ctc

    if threads is not None:
        torch.set_num_threads(threads)
    nemo_logging.setLevel(nemo_logging.ERROR)  # NeMo logs a few lines for every transcribe call
    with tempfile.TemporaryDirectory(prefix="aiplatform-bench-nemo-") as name:
        folder = Path(name)
        timing_model = build_timing_model(folder / "quartznet-sized.nemo")
        trained_model = build_ctc(folder / "ctc.nemo")
        threads_used = torch.get_num_threads()
        print(f"nemo: CTC checkpoints built with NeMo's modules; torch threads: {threads_used}")
        bench_nemo_rtf(timing_model, rounds, threads)
        bench_nemo_wer(trained_model, threads)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads, both sides")
    args = parser.parse_args()
    require(args.rounds >= 1, "--rounds must be at least 1")
    require(args.threads is None or args.threads >= 1, "--threads must be at least 1")
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    for index, backend in enumerate(backends):
        if index:
            print()
        (bench_whisper if backend == "faster_whisper" else bench_nemo)(args.rounds, args.threads)


if __name__ == "__main__":
    run_bench(main)
