"""Where the RAG engine's embeddings come from: the engine served beside it, or one of its own
(in-process, or remote when configured) on a pod that does not serve embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiplatform import open_engine
from aiplatform.api.rag import CollectionCreateRequest
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.owned import OwningEngine
from aiplatform.engines.rag.chat import RagChat
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.operations import CREATE_COLLECTION
from aiplatform.remote.client import RemoteEngine
from aiplatform.server.wiring import build_engines
from aiplatform.settings import Settings, load_settings, select_engines
from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_ENV

pytestmark = pytest.mark.anyio


def settings(tmp_path: Path, **extra: str) -> Settings:
    env = {
        **FAKE_EMBEDDINGS_ENV,
        **FAKE_LLM_ENV,
        "AIPLATFORM_ENGINES__RAG__DATA_DIR": str(tmp_path),
        **extra,
    }
    return load_settings(env=env)


def test_a_monolith_shares_its_embeddings_engine(tmp_path: Path) -> None:
    engines = build_engines(select_engines(settings(tmp_path), ["embeddings", "rag", "llm"]))
    rag = engines["rag"]
    assert isinstance(rag, LocalRagEngine)
    assert rag._embeddings is engines["embeddings"]
    assert isinstance(engines["llm"], RagChat)


def test_a_rag_pod_owns_an_embeddings_engine(tmp_path: Path) -> None:
    engines = build_engines(select_engines(settings(tmp_path), ["rag"]))
    assert list(engines) == ["rag"]
    rag = engines["rag"]
    assert isinstance(rag, OwningEngine)
    assert isinstance(rag.inner, LocalRagEngine)
    assert isinstance(rag.inner._embeddings, LocalEmbeddingsEngine)


def test_a_rag_pod_embeds_remotely_when_told_to(tmp_path: Path) -> None:
    configured = settings(tmp_path, AIPLATFORM_ENGINES__EMBEDDINGS__URL="http://embeddings:8000")
    engines = build_engines(select_engines(configured, ["rag"]))
    rag = engines["rag"]
    assert isinstance(rag, OwningEngine)
    assert isinstance(rag.inner._embeddings, RemoteEngine)  # type: ignore[attr-defined]


async def test_open_engine_gives_a_working_rag_library(tmp_path: Path) -> None:
    async with open_engine("rag", settings(tmp_path)) as engine:
        created = await engine.invoke(CREATE_COLLECTION, CollectionCreateRequest(name="lib"))
    assert created.dimension == 384
