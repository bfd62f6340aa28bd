"""Every engine kind the platform knows, by name."""

from __future__ import annotations

from typing import Any

from aiplatform.engines.asr import ASR
from aiplatform.engines.base import EngineKind
from aiplatform.engines.diarization import DIARIZATION
from aiplatform.engines.embeddings import EMBEDDINGS
from aiplatform.engines.emotion import EMOTION
from aiplatform.engines.llm import LLM
from aiplatform.engines.rag import RAG
from aiplatform.engines.rerank import RERANKING
from aiplatform.engines.speakers import SPEAKERS

__all__ = ["ENGINE_KINDS", "engine_kind"]

ENGINE_KINDS: dict[str, EngineKind[Any]] = {
    kind.name: kind
    # every kind after those it needs
    for kind in (EMBEDDINGS, LLM, ASR, SPEAKERS, DIARIZATION, EMOTION, RAG, RERANKING)
}


def engine_kind(name: str) -> EngineKind[Any]:
    """The kind called ``name``; ``KeyError`` names the known ones."""
    try:
        return ENGINE_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(ENGINE_KINDS)}") from None
