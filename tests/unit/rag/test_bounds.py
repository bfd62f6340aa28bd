"""What one request may cost the RAG engine: chunks are capped before anything is embedded,
uploads are read within page, character and time bounds, and text ingested through a job
leaves every file once it is deleted."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from aiplatform.api.rag import (
    ChunkingOptions,
    CollectionCreateRequest,
    DocumentAddRequest,
    DocumentFileRequest,
    DocumentInput,
    DocumentRef,
    IngestJobRequest,
    JobRef,
)
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.extract import extract_text
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.errors import InvalidRequestError
from aiplatform.forms import FilePart
from tests.unit.rag.test_engine import Recording

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[LocalRagEngine, Recording]]:
    embeddings = Recording()
    settings = RagSettings(data_dir=str(tmp_path), max_chunks_per_request=50, max_chunks_per_job=80)
    rag_engine = LocalRagEngine(settings, embeddings=embeddings)
    async with embeddings, rag_engine:
        yield rag_engine, embeddings


def words(count: int, word: str = "ordinary") -> str:
    return " ".join(f"{word}{n}." for n in range(count))


async def test_too_many_chunks_are_refused_before_anything_is_embedded(
    engine: tuple[LocalRagEngine, Recording],
) -> None:
    rag_engine, embeddings = engine
    created = await rag_engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))
    embeddings.requests.clear()
    small = ChunkingOptions(chunk_size=100, chunk_overlap=50)
    big = [DocumentInput(text=words(400)), DocumentInput(text=words(400))]
    with pytest.raises(InvalidRequestError) as refused:
        await rag_engine.invoke(
            rag.ADD_DOCUMENTS,
            DocumentAddRequest(collection_id=created.id, documents=big, chunking=small),
        )
    assert (refused.value.code, refused.value.param) == ("too_many_chunks", "documents")
    with pytest.raises(InvalidRequestError) as refused:
        await rag_engine.invoke(
            rag.CREATE_JOB,
            IngestJobRequest(collection_id=created.id, documents=big, chunking=small),
        )
    assert refused.value.code == "too_many_chunks"
    assert embeddings.requests == []


def test_chunks_smaller_than_a_sentence_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="chunk_size"):
        msgspec.convert(
            {"chunking": {"chunk_size": 32}, "documents": [{"text": "a"}]}, DocumentAddRequest
        )


def pdf(content: bytes, pages: int = 1) -> bytes:
    """A PDF whose pages all show one Flate-compressed content stream."""
    stream = zlib.compress(content, 9)
    kids = " ".join(f"{4 + n} 0 R" for n in range(pages))
    font = 4 + pages
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    objects += [
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
    ] * pages
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def shows(text: bytes, times: int) -> bytes:
    return b"BT /F1 12 Tf 10 10 Td (" + text + b") Tj " + b"(x) Tj " * times + b"ET"


def test_a_pdf_is_read_within_its_bounds() -> None:
    assert "hello" in extract_text(pdf(shows(b"hello", 3)), "a.pdf", "application/pdf")
    cases: list[tuple[bytes, dict[str, Any], str]] = [
        (pdf(shows(b"page", 1), pages=5), {"max_pages": 4}, "document_too_large"),
        (pdf(shows(b"page", 2000)), {"max_chars": 1000}, "document_too_large"),
        # a page stream that inflates a thousandfold: seconds of parsing from 5 KB
        (pdf(shows(b"slow", 400_000), pages=3), {"timeout_s": 0.2}, "extraction_too_slow"),
        # past pypdf's own inflation limit (LimitReachedError): a 400, not a 500
        (pdf(b"BT " + b" " * 100_000_000 + b" ET"), {}, "document_too_large"),
    ]
    for data, limits, code in cases:
        with pytest.raises(InvalidRequestError) as refused:
            extract_text(data, "a.pdf", "application/pdf", **limits)
        assert (refused.value.code, refused.value.param) == (code, "file")


async def test_a_slow_pdf_upload_is_a_400(tmp_path: Path) -> None:
    embeddings = Recording()
    settings = RagSettings(data_dir=str(tmp_path), extract_timeout_s=0.3)
    async with embeddings, LocalRagEngine(settings, embeddings=embeddings) as rag_engine:
        created = await rag_engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name="c"))
        upload = FilePart(
            filename="slow.pdf",
            content_type="application/pdf",
            data=pdf(shows(b"slow", 400_000), pages=3),
        )
        with pytest.raises(InvalidRequestError) as refused:
            await rag_engine.invoke(
                rag.UPLOAD_DOCUMENT, DocumentFileRequest(collection_id=created.id, file=upload)
            )
    assert refused.value.code == "extraction_too_slow"


@pytest.mark.parametrize("index", ["flat", "hnsw"])
async def test_text_ingested_by_a_job_leaves_every_file_once_deleted(
    tmp_path: Path, index: str
) -> None:
    secret = "zanzibarquokka"
    embeddings = Recording()
    rag_engine = LocalRagEngine(RagSettings(data_dir=str(tmp_path)), embeddings=embeddings)
    async with embeddings, rag_engine:
        created = await rag_engine.invoke(
            rag.CREATE_COLLECTION,
            CollectionCreateRequest(name="c", index=index),  # type: ignore[arg-type]
        )
        # the secret in the middle of a payload of many pages (overflow pages, when stored)
        documents = [DocumentInput(text=words(30), id=f"keep{n}") for n in range(100)]
        documents.insert(50, DocumentInput(text=f"{words(5)} {secret} {words(5)}", id="gone"))
        job = await rag_engine.invoke(
            rag.CREATE_JOB, IngestJobRequest(collection_id=created.id, documents=documents)
        )
        with anyio.fail_after(20):
            while job.status in ("queued", "running"):
                await anyio.sleep(0.02)
                job = await rag_engine.invoke(rag.GET_JOB, JobRef(job_id=job.id))
        assert job.status == "succeeded"
        store = rag_engine.store
        collection = store.collection("default", "documents", created.id)
        before = store.chunk_vectors(collection, store.matching_chunk_ids(collection, {}))
        await rag_engine.invoke(
            rag.DELETE_DOCUMENT, DocumentRef(collection_id=created.id, document_id="gone")
        )
        with anyio.fail_after(20):
            while rag_engine.store.residency.indexes[created.id].removed:  # noqa: ASYNC110
                await anyio.sleep(0.02)  # the background maintenance writes the index
        on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())  # noqa: ASYNC240
        assert secret.encode() not in on_disk
        assert b"ordinary" in on_disk
        after = store.chunk_vectors(collection, store.matching_chunk_ids(collection, {}))
        deleted = [before[n] for n in set(before) - set(after)]
        assert deleted
        assert not any(vector.tobytes() in on_disk for vector in deleted)
        assert all(vector.tobytes() in on_disk for vector in after.values())
