"""Ingest jobs: many documents stored in the background on the engine's job runner.

A job is checked (every document, and the ids against the collection) and stored with its
documents before the call returns. Its handler embeds and stores the documents in batches,
reporting counts as it goes; a document the engines refuse (a 4xx) is recorded in the job's
errors and the others go on. While the embeddings engine is unavailable the job is deferred
and retried. A run resumed after a restart skips the documents already stored and keeps the
errors recorded before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from aiplatform.api.rag import (
    ChunkingOptions,
    DocumentInput,
    IngestJob,
    IngestJobRequest,
    JobError,
    JobRef,
)
from aiplatform.engines.jobs import Job, JobContext, JobRunner
from aiplatform.engines.rag.chunking import check_chunk_count
from aiplatform.engines.rag.core import DOCUMENTS, RagCore, new_document_id
from aiplatform.engines.rag.store import CollectionRow
from aiplatform.errors import AIPlatformError, InvalidRequestError
from aiplatform.tenant import current_tenant

__all__ = ["INGEST", "IngestJobs"]

#: The job type of an ingest job.
INGEST = "rag.ingest"
#: Documents prepared (chunked and embedded) and stored together by an ingest job.
JOB_BATCH = 32
#: Seconds before a job the embeddings engine could not serve is tried again.
JOB_RETRY_S = 5.0
#: Ingest jobs waiting at once; past it, new ones are refused with 429.
MAX_QUEUED_JOBS = 256
#: An ingest job not finished this long after it was submitted fails.
JOB_TIMEOUT_S = 24 * 3600.0

#: The runner's statuses as the RAG job API reports them.
_PUBLIC_STATUS = {
    "queued": "queued",
    "deferred": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "failed",
}


class _JobPayload(msgspec.Struct, kw_only=True):
    documents: list[DocumentInput]
    chunking: ChunkingOptions


class IngestJobs:
    def __init__(self, core: RagCore, folder: Path, *, storage_key: str | None = None) -> None:
        self._core = core
        self.runner = JobRunner(
            folder / "jobs.sqlite3",
            {INGEST: self._run},
            max_queued=MAX_QUEUED_JOBS,
            max_running=1,
            timeout_s=JOB_TIMEOUT_S,
            retry_s=JOB_RETRY_S,
            storage_key=storage_key,
        )

    async def submit(self, request: IngestJobRequest) -> IngestJob:
        core = self._core
        row = await core.collection(request.collection_id)
        inputs = core.checked(request.documents)
        chunking = request.chunking
        await core.run_blocking(
            lambda: check_chunk_count(
                [document.text for document in inputs],
                chunking.chunk_size,
                chunking.chunk_overlap,
                **core.chunk_limit("documents", job=True),
            )
        )
        await core.refuse_existing(row, inputs)
        named = [
            document if document.id else msgspec.structs.replace(document, id=new_document_id())
            for document in inputs
        ]
        job = await self.runner.submit(
            INGEST,
            row.owner,
            msgspec.json.encode(_JobPayload(documents=named, chunking=request.chunking)),
            summary={"collection_id": row.id, "document_ids": [d.id or "" for d in named]},
            subject=row.id,
        )
        return _public_job(job)

    async def get(self, request: JobRef) -> IngestJob:
        return _public_job(await self.runner.get(current_tenant(), request.job_id))

    async def forget(self, row: CollectionRow) -> None:
        """Drop the jobs of a deleted collection."""
        await self.runner.forget(row.owner, row.id)

    async def _run(self, context: JobContext) -> dict[str, Any]:
        core = self._core
        job = context.job
        payload = msgspec.json.decode(context.payload, type=_JobPayload)
        row = await core.run_blocking(
            core.store.collection, job.owner, DOCUMENTS, job.summary["collection_id"]
        )
        documents = payload.documents
        earlier = job.result or {}
        errors: dict[int, dict[str, Any]] = {
            int(error["index"]): error for error in earlier.get("errors", [])
        }
        # Documents before ``processed`` were handled by an earlier run of this job. The
        # documents of each write are marked ``storing`` just before it: if the process stopped
        # after the write and before the next report, they exist and are this job's own. Any
        # other existing id is a document someone added after the job was accepted, which this
        # job must not claim to have stored.
        processed = int(earlier.get("processed", 0))
        in_flight = {int(index) for index in earlier.get("storing", [])}
        existing = await core.run_blocking(
            core.store.existing_document_ids, row, [d.id or "" for d in documents[processed:]]
        )
        result = _progress(processed, errors)
        for start in range(processed, len(documents), JOB_BATCH):
            end = min(start + JOB_BATCH, len(documents))
            batch: list[tuple[int, DocumentInput]] = []
            for index, document in enumerate(documents[start:end], start):
                if index in errors:
                    continue
                if document.id in existing:
                    if index not in in_flight:
                        errors[index] = {
                            "index": index,
                            "message": f"A document '{document.id}' was added to the collection "
                            "after this job was accepted; it was left as it is.",
                        }
                    continue
                batch.append((index, document))
            if batch:

                async def mark(indexes: list[int], start: int = start) -> None:
                    storing = {**_progress(start, errors), "storing": indexes}
                    await context.report(start / len(documents), result=storing)

                failures = await self._ingest_batch(row, batch, payload.chunking, mark)
                errors.update({int(e["index"]): e for e in failures})
            result = _progress(end, errors)
            await context.report(end / len(documents), result=result)
        core.schedule_maintenance(row)
        if result["failed"] >= len(documents):
            raise InvalidRequestError(
                "No document of the job could be stored; see its errors.",
                code="documents_refused",
            )
        return result

    async def _ingest_batch(
        self,
        row: CollectionRow,
        batch: list[tuple[int, DocumentInput]],
        chunking: ChunkingOptions,
        mark: Callable[[list[int]], Awaitable[None]],
    ) -> list[dict[str, Any]]:
        """Store ``batch``; when a document is refused (a 4xx), each document alone, so that it
        fails by itself. ``mark`` is told which documents each (atomic) write stores, just
        before it. The failures, as job errors; server-side errors and an overloaded embeddings
        engine (429: the job is deferred, the documents are not at fault) propagate."""
        core = self._core
        try:
            prepared = await core.prepare(row, [d for _, d in batch], chunking, job=True)
            await mark([index for index, _ in batch])
            await core.run_blocking(core.store.add_documents, row, prepared)
            return []
        except AIPlatformError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise
            if len(batch) == 1:
                return [{"index": batch[0][0], "message": exc.message}]
        failures: list[dict[str, Any]] = []
        for item in batch:
            failures += await self._ingest_batch(row, [item], chunking, mark)
        return failures


def _progress(processed: int, errors: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A job's result once its first ``processed`` documents are handled."""
    return {
        "completed": processed - len(errors),
        "failed": len(errors),
        "errors": sorted(errors.values(), key=lambda error: int(error["index"])),
        "processed": processed,
    }


def _public_job(job: Job) -> IngestJob:
    summary = job.summary
    result = job.result or {}
    return IngestJob(
        id=job.id,
        collection_id=summary["collection_id"],
        status=_PUBLIC_STATUS[job.status],  # type: ignore[arg-type]
        total=len(summary["document_ids"]),
        completed=int(result.get("completed", 0)),
        failed=int(result.get("failed", 0)),
        document_ids=summary["document_ids"],
        errors=[
            JobError(index=int(e["index"]), message=str(e["message"]))
            for e in result.get("errors", [])
        ],
        created_at=int(job.created_at),
    )
