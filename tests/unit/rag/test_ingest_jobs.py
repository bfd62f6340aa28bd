"""RAG ingest jobs on the job runner: a job survives a restart of the engine, and deleting a
collection drops its jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import pytest

from aiplatform.api.rag import (
    CollectionCreateRequest,
    CollectionRef,
    DocumentAddRequest,
    DocumentInput,
    DocumentRef,
    IngestJob,
    IngestJobRequest,
    JobRef,
    SearchRequest,
)
from aiplatform.engines.base import Operation
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.wrapped import WrappedEngine
from aiplatform.errors import EngineUnavailableError, NotFoundError

pytestmark = pytest.mark.anyio

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)


class Switchable(WrappedEngine):
    """The fake embeddings engine, unreachable while ``down``."""

    def __init__(self) -> None:
        super().__init__(LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake")))
        self.down = False
        self.refused = anyio.Event()

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        if self.down:
            self.refused.set()
            raise EngineUnavailableError("Engine 'embeddings' at http://embeddings is unreachable")
        return await super().invoke(op, request)


def documents(count: int) -> list[DocumentInput]:
    return [DocumentInput(text=f"record number {n} of the archive") for n in range(count)]


async def until_finished(engine: LocalRagEngine, job: IngestJob) -> IngestJob:
    with anyio.fail_after(10):
        while job.status in ("queued", "running"):
            await anyio.sleep(0.02)
            job = await engine.invoke(rag.GET_JOB, JobRef(job_id=job.id))
    return job


async def test_a_job_accepted_before_a_restart_is_finished_after_it(tmp_path: Path) -> None:
    embeddings = Switchable()
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    engine.job_retry_s = 3600.0  # it waits until the restart
    async with embeddings, engine:
        created = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))
        embeddings.down = True
        job = await engine.invoke(
            rag.CREATE_JOB, IngestJobRequest(collection_id=created.id, documents=documents(50))
        )
        with anyio.fail_after(10):
            await embeddings.refused.wait()  # the job was tried, and deferred
        assert (await engine.invoke(rag.GET_JOB, JobRef(job_id=job.id))).completed == 0
    embeddings = Switchable()
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    async with embeddings, engine:
        done = await until_finished(engine, job)
        assert (done.status, done.completed, done.failed, done.total) == ("succeeded", 50, 0, 50)
        hits = await engine.invoke(
            rag.SEARCH,
            SearchRequest(collection_id="c", query="record number 42", mode="lexical", top_k=1),
        )
    assert hits.data[0].document_id == job.document_ids[42]


async def test_deleting_a_collection_drops_its_jobs(tmp_path: Path) -> None:
    embeddings = Switchable()
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    engine.job_retry_s = 3600.0
    async with embeddings, engine:
        created = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))
        embeddings.down = True
        job = await engine.invoke(
            rag.CREATE_JOB, IngestJobRequest(collection_id=created.id, documents=documents(3))
        )
        await engine.invoke(rag.DELETE_COLLECTION, CollectionRef(collection_id=created.id))
        with pytest.raises(NotFoundError) as missing:
            await engine.invoke(rag.GET_JOB, JobRef(job_id=job.id))
    assert missing.value.code == "job_not_found"


async def test_a_document_added_after_the_job_was_accepted_is_not_claimed(
    tmp_path: Path,
) -> None:
    embeddings = Switchable()
    engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    engine.job_retry_s = 3600.0
    async with embeddings, engine:
        created = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))
        embeddings.down = True
        accepted = [DocumentInput(id="a", text="alpha text"), DocumentInput(id="b", text="beta")]
        job = await engine.invoke(
            rag.CREATE_JOB, IngestJobRequest(collection_id=created.id, documents=accepted)
        )
        with anyio.fail_after(10):
            await embeddings.refused.wait()  # tried once, deferred
        embeddings.down = False
        await engine.invoke(
            rag.ADD_DOCUMENTS,
            DocumentAddRequest(
                collection_id=created.id, documents=[DocumentInput(id="b", text="gamma words")]
            ),
        )
        engine.job_retry_s = 0.01
        await engine._jobs.runner.retry_deferred()
        done = await until_finished(engine, job)
        kept = await engine.invoke(
            rag.GET_DOCUMENT, DocumentRef(collection_id=created.id, document_id="b")
        )
    assert (done.status, done.completed, done.failed) == ("succeeded", 1, 1)
    assert done.errors[0].index == 1
    assert "added to the collection after this job was accepted" in done.errors[0].message
    assert kept.text == "gamma words"
