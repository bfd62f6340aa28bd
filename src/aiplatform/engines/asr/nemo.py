"""NeMo ASR checkpoints (``.nemo``: Parakeet, Canary-style CTC, RNN-T, TDT and hybrid models)
through ``nemo_toolkit[asr]``, an optional extra. Words and segments come from NeMo's own
timestamps.

A checkpoint is restored with NeMo's ``ASRModel.restore_from``, which picks the model class the
file names, and every request is one call of the model's own ``transcribe``. Timestamps are
always asked for: NeMo switches its decoding configuration when that choice changes (CTC models
rebuild their decoding on every call that names it either way), so a fixed choice keeps requests
from switching it back and forth; words are dropped from the answer when they were not
requested. The model is not safe for
concurrent calls, so they take turns (one transcription uses every core anyway).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiplatform.api.audio import TranscriptionSegment, TranscriptionWord
from aiplatform.audio.decode import SAMPLE_RATE, Samples
from aiplatform.engines.asr.backend import AsrOptions, AsrRun, RecognizedSegment
from aiplatform.engines.cpus import usable_cpus
from aiplatform.errors import InvalidRequestError

__all__ = ["NemoBackend", "load_nemo_model", "release_nemo_model"]

#: NeMo's ``restore_from`` changes the process's working directory while it unpacks a checkpoint,
#: so two engines restoring at once (ASR and speakers load concurrently) would unpack into each
#: other's folders: restores take turns.
_RESTORING = threading.Lock()


def load_nemo_model(path: str, device: str, model_class: str) -> Any:
    """``nemo.collections.asr.models.<model_class>.restore_from(path)`` on ``device``, in eval
    mode, with NeMo's per-call INFO logging quietened.

    Raises RuntimeError when NeMo is not installed and ValueError for a path that is not a
    ``.nemo`` file, a checkpoint of another kind of model (``restore_from`` builds whatever
    class the file names), or a model whose sample rate is not the 16 kHz that uploads are
    decoded to.
    """
    if not path.endswith(".nemo"):
        raise ValueError(f"the nemo backend loads a .nemo checkpoint, not {path!r}")
    if not Path(path).is_file():
        raise ValueError(f"no .nemo checkpoint at {path!r}")
    try:
        from nemo.collections.asr import models
        from nemo.utils import logging as nemo_logging
    except ImportError as exc:
        raise RuntimeError("the nemo backend needs NeMo: pip install 'aiplatform[nemo]'") from exc
    nemo_logging.setLevel(logging.WARNING)
    wanted = getattr(models, model_class)
    with _RESTORING:
        model = wanted.restore_from(path, map_location=device)
    if not isinstance(model, wanted):
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not an {model_class}")
    rate = _sample_rate(model)
    if rate is not None and rate != SAMPLE_RATE:
        raise ValueError(f"{path!r} expects {rate} Hz audio; the engines decode uploads to 16 kHz")
    model.eval()
    # NeMo leaves about 800k objects the cyclic collector would otherwise walk on every full
    # collection (about 0.45 s each, in the middle of some request); they live as long as the
    # model, so they are moved out of its reach (and back by release_nemo_model).
    gc.collect()
    gc.freeze()
    return model


def release_nemo_model() -> None:
    """Give what :func:`load_nemo_model` froze back to the collector, so that an unloaded
    model's memory can be freed (everything frozen is; the next load freezes again)."""
    gc.unfreeze()


class NemoBackend:
    def __init__(
        self, *, path: str, device: str = "cpu", language: str = "en", threads: int | None = None
    ) -> None:
        # Absolute now: NeMo's restore moves the whole process into a temporary folder.
        self._path = os.path.abspath(path)
        self._device = device
        self._language = language
        self._threads = threads
        self._model: Any = None
        self._turn = threading.Lock()

    def load(self) -> None:
        import torch

        # torch's intra-op pool is the process's; unset, it would count the host's cores
        # rather than those the container may use.
        torch.set_num_threads(self._threads or usable_cpus())
        self._model = load_nemo_model(self._path, self._device, "ASRModel")

    def unload(self) -> None:
        self._model = None
        release_nemo_model()

    def transcribe(self, samples: Samples, options: AsrOptions) -> AsrRun:
        model = self._model
        if model is None:
            raise RuntimeError("model not loaded")
        if options.task == "translate":
            raise InvalidRequestError(
                "This NeMo model transcribes only; translation is not supported.", param="model"
            )
        if options.language not in (None, self._language):
            raise InvalidRequestError(
                f"This model transcribes '{self._language}'; "
                f"language '{options.language}' is not supported.",
                param="language",
            )
        # NeMo pads a clip shorter than a second on both sides, which shifts every time it
        # reports; padded here at the end, the times stay those of the audio.
        padded = np.pad(samples, (0, max(0, SAMPLE_RATE - samples.size)))
        with self._turn:
            results = model.transcribe(
                [padded], batch_size=1, return_hypotheses=True, timestamps=True, verbose=False
            )
        hypothesis = _best(results)
        text = str(getattr(hypothesis, "text", hypothesis) or "").strip()
        stamps = getattr(hypothesis, "timestamp", None)
        return AsrRun(
            language=self._language,
            segments=_segments(
                text,
                stamps if isinstance(stamps, dict) else {},
                samples.size / SAMPLE_RATE,
                options.word_timestamps,
            ),
        )


def _sample_rate(model: Any) -> int | None:
    config = getattr(model, "cfg", None)
    rate = config.get("sample_rate") if config is not None else None
    return int(rate) if rate is not None else None


def _best(results: Any) -> Any:
    """The best hypothesis of the one file transcribed, whatever shape this model class returns
    (a list of hypotheses; or, for some transducer versions, a (best, all) pair; or n-best
    lists)."""
    if isinstance(results, tuple):
        results = results[0]
    hypothesis = results[0]
    while isinstance(hypothesis, Sequence) and not isinstance(hypothesis, str):
        hypothesis = hypothesis[0]
    return hypothesis


def _segments(
    text: str, stamps: dict[str, Any], duration: float, with_words: bool
) -> Iterator[RecognizedSegment]:
    def seconds(value: Any) -> float:
        # NeMo's times are whole encoder frames (40 or 80 ms): the last can end past the audio.
        return round(min(max(float(value), 0.0), duration), 3)

    words = [
        TranscriptionWord(
            word=str(item.get("word", "")),
            start=seconds(item.get("start", 0.0)),
            end=seconds(item.get("end", 0.0)),
        )
        for item in stamps.get("word") or []
    ]
    found = stamps.get("segment") or []
    if not found:
        if text:
            segment = TranscriptionSegment(id=0, start=0.0, end=seconds(duration), text=" " + text)
            yield RecognizedSegment(segment, words if with_words else [])
        return
    for index, item in enumerate(found):
        start, end = seconds(item["start"]), seconds(item["end"])
        segment = TranscriptionSegment(
            id=index, start=start, end=end, text=" " + str(item.get("segment", "")).strip()
        )
        last = index == len(found) - 1
        inside = [word for word in words if start <= word.start and (last or word.start < end)]
        yield RecognizedSegment(segment, inside if with_words else [])
