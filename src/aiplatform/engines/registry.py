"""Every engine kind the platform knows, by name: the one list a new kind is added to.

The order is derived, not kept by hand: each kind comes after the kinds it ``uses`` (a
topological sort), so engines can be built in this order and each finds what it needs built.
"""

from __future__ import annotations

from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter
from typing import Any

from aiplatform.engines.analytics import ANALYTICS
from aiplatform.engines.asr import ASR
from aiplatform.engines.base import EngineKind
from aiplatform.engines.datasets import DATASETS
from aiplatform.engines.diarization import DIARIZATION
from aiplatform.engines.embeddings import EMBEDDINGS
from aiplatform.engines.emotion import EMOTION
from aiplatform.engines.llm import LLM
from aiplatform.engines.rag import RAG
from aiplatform.engines.rerank import RERANKING
from aiplatform.engines.speakers import SPEAKERS

__all__ = ["ENGINE_KINDS", "engine_kind", "ordered_by_use"]

#: Every kind: add a new one here (and nowhere else).
_KINDS: tuple[EngineKind[Any], ...] = (
    EMBEDDINGS,
    LLM,
    ASR,
    SPEAKERS,
    DIARIZATION,
    EMOTION,
    RAG,
    RERANKING,
    DATASETS,
    ANALYTICS,
)


def ordered_by_use(kinds: Iterable[EngineKind[Any]]) -> dict[str, EngineKind[Any]]:
    """``kinds`` by name, each after the kinds it uses (ties keep the given order)."""
    by_name = {kind.name: kind for kind in kinds}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for kind in by_name.values():
        unknown = {*kind.uses, *kind.optional_uses} - set(by_name)
        if unknown:
            raise ValueError(f"kind {kind.name!r} uses unknown kind(s) {sorted(unknown)}")
        sorter.add(kind.name, *kind.uses, *kind.optional_uses)
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ValueError(f"engine kinds use each other in a cycle: {exc.args[1]}") from exc
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=list(by_name).index)
        ordered.extend(ready)
        sorter.done(*ready)
    return {name: by_name[name] for name in ordered}


ENGINE_KINDS: dict[str, EngineKind[Any]] = ordered_by_use(_KINDS)


def engine_kind(name: str) -> EngineKind[Any]:
    """The kind called ``name``; ``KeyError`` names the known ones."""
    try:
        return ENGINE_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(ENGINE_KINDS)}") from None
