"""The nemo ASR backend's own handling around NeMo's ``transcribe``, on a stand-in model that
answers as NeMo's models do (the real checkpoints run in tests/e2e/test_nemo_models.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from aiplatform.audio.decode import SAMPLE_RATE
from aiplatform.engines.asr.backend import AsrOptions
from aiplatform.engines.asr.nemo import NemoBackend
from aiplatform.errors import InvalidRequestError


@dataclass
class Hypothesis:
    text: str
    timestamp: dict[str, Any]


@dataclass
class StandIn:
    """Records what it was given; answers with NeMo's hypothesis shape."""

    answer: Any
    given: list[np.ndarray] = field(default_factory=list)

    def transcribe(self, audio: list[np.ndarray], **_: Any) -> Any:
        self.given.extend(audio)
        return self.answer


def backend(answer: Any) -> tuple[NemoBackend, StandIn]:
    model = StandIn(answer)
    nemo = NemoBackend(path="model.nemo")
    nemo._model = model  # loaded, as far as transcribe can tell
    return nemo, model


WORDS = {
    "word": [
        {"word": "yes", "start": 0.08, "end": 0.32},
        {"word": "sir", "start": 0.4, "end": 0.72},  # a whole frame past the clip's end
    ],
    "segment": [{"segment": "yes sir", "start": 0.0, "end": 0.72}],
}


def test_a_short_clip_is_padded_at_its_end_and_times_stay_inside_it() -> None:
    nemo, model = backend([Hypothesis("yes sir", WORDS)])
    clip = np.full(int(0.6 * SAMPLE_RATE), 0.25, dtype=np.float32)
    run = nemo.transcribe(clip, AsrOptions(word_timestamps=True))
    (segment,) = list(run.segments)
    (given,) = model.given
    assert given.size == SAMPLE_RATE  # NeMo would otherwise pad both sides and shift its times
    assert np.array_equal(given[: clip.size], clip)
    assert not given[clip.size :].any()
    assert [(w.word, w.start, w.end) for w in segment.words] == [
        ("yes", 0.08, 0.32),
        ("sir", 0.4, 0.6),
    ]
    assert (segment.segment.start, segment.segment.end) == (0.0, 0.6)
    assert segment.segment.text == " yes sir"


def test_nbest_and_pair_answers_give_the_best_hypothesis_and_words_only_when_asked() -> None:
    best = Hypothesis("yes sir", WORDS)
    for answer in ([[best, Hypothesis("no", {})]], ([best], [[best]])):
        nemo, _ = backend(answer)
        clip = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
        (segment,) = list(nemo.transcribe(clip, AsrOptions()).segments)
        assert segment.segment.text == " yes sir"
        assert segment.words == []


def test_no_text_is_no_segment_and_other_languages_are_refused() -> None:
    nemo, _ = backend([Hypothesis("", {})])
    clip = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert list(nemo.transcribe(clip, AsrOptions()).segments) == []
    with pytest.raises(InvalidRequestError) as refused:
        nemo.transcribe(clip, AsrOptions(language="de"))
    assert refused.value.param == "language"
    with pytest.raises(InvalidRequestError, match="translation"):
        nemo.transcribe(clip, AsrOptions(task="translate"))
