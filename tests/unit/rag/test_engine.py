"""The RAG engine's calls to the embeddings engine: what it asks for, and what it does when
that engine is briefly unavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import pytest

from aiplatform.api.openai import EmbeddingRequest
from aiplatform.api.rag import (
    CollectionCreateRequest,
    DocumentAddRequest,
    DocumentInput,
    IngestJobRequest,
    JobRef,
)
from aiplatform.engines.base import Operation
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.wrapped import WrappedEngine
from aiplatform.errors import EngineUnavailableError

pytestmark = pytest.mark.anyio

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)


class Recording(WrappedEngine):
    """The fake embeddings engine, remembering every request it was sent."""

    def __init__(self) -> None:
        super().__init__(LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake")))
        self.requests: list[EmbeddingRequest] = []

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        if isinstance(request, EmbeddingRequest):
            self.requests.append(request)
        return await super().invoke(op, request)


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[LocalRagEngine, Recording]]:
    embeddings = Recording()
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    async with embeddings, engine:
        yield engine, embeddings


async def test_dimensions_are_asked_for_only_by_shortened_collections(
    recorded: tuple[LocalRagEngine, Recording],
) -> None:
    engine, embeddings = recorded
    for name, dimension in (("native", None), ("short", 64)):
        created = await engine.invoke(
            rag.CREATE_COLLECTION, CollectionCreateRequest(name=name, dimension=dimension)
        )
        embeddings.requests.clear()
        await engine.invoke(
            rag.ADD_DOCUMENTS,
            DocumentAddRequest(collection_id=created.id, documents=[DocumentInput(text="hi")]),
        )
        # many servers (OpenAI's older models, TEI) refuse `dimensions`: never sent needlessly
        assert [r.dimensions for r in embeddings.requests] == [dimension]


class Flaky(WrappedEngine):
    """The fake embeddings engine, unavailable for the next ``outages`` calls."""

    def __init__(self) -> None:
        super().__init__(LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake")))
        self.outages = 0

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        if self.outages:
            self.outages -= 1
            raise EngineUnavailableError("Engine 'embeddings' at http://embeddings is unreachable")
        return await super().invoke(op, request)


async def test_a_job_waits_out_an_unavailable_embeddings_engine(tmp_path: Path) -> None:
    embeddings = Flaky()
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    engine.job_retry_s = 0.05
    async with embeddings, engine:
        created = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))
        embeddings.outages = 3
        job = await engine.invoke(
            rag.CREATE_JOB,
            IngestJobRequest(
                collection_id=created.id,
                documents=[DocumentInput(text=f"record {n}") for n in range(40)],
            ),
        )
        with anyio.fail_after(10):
            while job.status in ("queued", "running"):
                await anyio.sleep(0.02)
                job = await engine.invoke(rag.GET_JOB, JobRef(job_id=job.id))
    assert (job.status, job.completed, job.failed, job.errors) == ("succeeded", 40, 0, [])
    assert embeddings.outages == 0
