"""The RAG and rerank engines give the same answers in-process and remote (through an ASGI pod
and through a real ``aiplatform serve --engines rag`` process), on the fake embeddings; RAG on
both stores (the embedded SQLite one, and PostgreSQL with pgvector)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from aiplatform.api.rag import (
    ChunkingOptions,
    CollectionCreateRequest,
    CollectionListRequest,
    CollectionRef,
    ConversationRef,
    DocumentAddRequest,
    DocumentFileRequest,
    DocumentInput,
    DocumentListRequest,
    DocumentRef,
    DocumentUpdateRequest,
    IngestJobRequest,
    JobRef,
    MemoryAddRequest,
    MemoryListRequest,
    MemoryMessage,
    MemorySearchRequest,
    SearchRequest,
)
from aiplatform.api.rerank import RerankDocument, RerankRequest
from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.owned import OwningEngine
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.rerank.engine import LocalRerankEngine
from aiplatform.engines.rerank.operations import RERANK
from aiplatform.engines.rerank.settings import RerankSettings
from aiplatform.errors import ConflictError, InvalidRequestError, NotFoundError
from aiplatform.forms import FilePart
from aiplatform.tenant import acting_as
from aiplatform.testing import MODES, in_mode
from tests.documents import html_page, pdf_file
from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess
from tests.unit.auth_store.postgres_server import postgres_server

pytestmark = pytest.mark.anyio

EMBEDDINGS = EmbeddingsSettings(backend="fake")
FACTS = [
    ("paris", "The Eiffel Tower stands in Paris and was finished in 1889.", "fr", 1889),
    ("rome", "The Colosseum in Rome was opened in the year 80.", "it", 80),
    ("london", "Big Ben is the bell of the clock tower at Westminster in London.", "uk", 1859),
    ("berlin", "The Brandenburg Gate in Berlin was built in the 1790s.", "de", 1791),
]


#: The stores the RAG engine runs on: each test runs on both.
STORES = ("sqlite", "postgres")


@pytest.fixture(scope="module")
def rag_database_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def pod_store_env(store: str, url: Callable[[], str]) -> dict[str, str]:
    if store == "sqlite":
        return {}
    return {
        "AIPLATFORM_ENGINES__RAG__STORE": "postgres",
        "AIPLATFORM_ENGINES__RAG__DATABASE_URL": url(),
    }


@pytest.fixture(scope="module")
def rag_pods(
    request: pytest.FixtureRequest, pod_auth_env: Callable[[], dict[str, str]]
) -> Iterator[Callable[[str], ServerProcess]]:
    """A ``serve --engines rag,rerank`` pod per store, started when first asked for."""
    pods: dict[str, ServerProcess] = {}

    def pod(store: str) -> ServerProcess:
        if store not in pods:
            env = {
                **pod_auth_env(),
                **FAKE_EMBEDDINGS_ENV,
                **pod_store_env(store, lambda: request.getfixturevalue("rag_database_url")),
                "AIPLATFORM_ENGINES__RAG__MAX_DOCUMENT_CHARS": "5000",
            }
            pods[store] = ServerProcess(["--engines", "rag,rerank"], env)
            pods[store].start()
        return pods[store]

    yield pod
    for server in pods.values():
        server.stop()


@pytest.fixture(
    params=[(mode, store) for store in STORES for mode in MODES],
    ids=lambda pair: f"{pair[0]}-{pair[1]}",
)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    mode, store = request.param
    settings = RagSettings(data_dir=str(tmp_path / "rag"), max_document_chars=5000)
    if store == "postgres":
        url = request.getfixturevalue("rag_database_url")
        settings = msgspec.structs.replace(settings, store="postgres", database_url=url)
    embeddings = LocalEmbeddingsEngine(EMBEDDINGS)
    local = OwningEngine(LocalRagEngine(settings, embeddings=embeddings), [embeddings])
    pod = lambda: request.getfixturevalue("rag_pods")(store)  # noqa: E731 (started on demand)
    async with in_mode(mode, local, settings, pod) as engine:
        yield engine


@pytest.fixture(params=MODES)
async def reranker(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    settings = RerankSettings()
    embeddings = LocalEmbeddingsEngine(EMBEDDINGS)
    local = OwningEngine(LocalRerankEngine(settings, embeddings=embeddings), [embeddings])
    pod = lambda: request.getfixturevalue("rag_pods")("sqlite")  # noqa: E731
    async with in_mode(request.param, local, settings, pod) as engine:
        yield engine


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def facts_collection(engine: Engine, index: str = "flat") -> str:
    created = await engine.invoke(
        rag.CREATE_COLLECTION,
        CollectionCreateRequest(name=unique("facts"), index=index, metadata={"team": "a"}),  # type: ignore[arg-type]
    )
    documents = [
        DocumentInput(id=key, text=text, metadata={"country": country, "year": year})
        for key, text, country, year in FACTS
    ]
    await engine.invoke(
        rag.ADD_DOCUMENTS, DocumentAddRequest(collection_id=created.id, documents=documents)
    )
    return created.id


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf", "sq8", "ivfpq"])
async def test_documents_are_found_by_meaning_words_and_metadata(
    engine: Engine, index: str
) -> None:
    collection = await facts_collection(engine, index)
    found = await engine.invoke(
        rag.SEARCH,
        SearchRequest(collection_id=collection, query="clock tower London", top_k=2),
    )
    assert found.data[0].document_id == "london"
    assert found.data[0].metadata == {"country": "uk", "year": 1859}
    assert found.data[0].text == FACTS[2][1]
    for mode in ("vector", "lexical"):
        ranked = await engine.invoke(
            rag.SEARCH,
            SearchRequest(collection_id=collection, query="Colosseum Rome", mode=mode, top_k=1),  # type: ignore[arg-type]
        )
        assert [hit.document_id for hit in ranked.data] == ["rome"]
    # the filter is applied inside the search: the best match is excluded, the rest still found
    filtered = await engine.invoke(
        rag.SEARCH,
        SearchRequest(
            collection_id=collection,
            query="clock tower London",
            filter={"year": {"$lt": 1800}},
            top_k=10,
        ),
    )
    assert {hit.document_id for hit in filtered.data} == {"rome", "berlin"}
    either = await engine.invoke(
        rag.SEARCH,
        SearchRequest(
            collection_id=collection,
            query="tower",
            mode="vector",
            filter={"$or": [{"country": "fr"}, {"country": {"$in": ["de"]}}]},
        ),
    )
    assert {hit.document_id for hit in either.data} == {"paris", "berlin"}


async def test_a_score_threshold_drops_weak_matches(engine: Engine) -> None:
    collection = await facts_collection(engine)
    everything = await engine.invoke(
        rag.SEARCH, SearchRequest(collection_id=collection, query="Eiffel Tower Paris", top_k=4)
    )
    assert len(everything.data) == 4
    strong = await engine.invoke(
        rag.SEARCH,
        SearchRequest(
            collection_id=collection, query="Eiffel Tower Paris", top_k=4, score_threshold=0.3
        ),
    )
    assert [hit.document_id for hit in strong.data] == ["paris"]


async def test_collections_are_listed_fetched_and_deleted(engine: Engine) -> None:
    collection = await facts_collection(engine)
    fetched = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=collection))
    assert (fetched.document_count, fetched.chunk_count, fetched.indexed_count) == (4, 4, 4)
    assert fetched.dimension == EMBEDDINGS.dimension
    assert fetched.metadata == {"team": "a"}
    by_name = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=fetched.name))
    assert by_name.id == collection
    listed = await engine.invoke(rag.LIST_COLLECTIONS, CollectionListRequest())
    assert collection in {c.id for c in listed.data}
    with pytest.raises(ConflictError):
        await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name=fetched.name))
    await engine.invoke(rag.DELETE_COLLECTION, CollectionRef(collection_id=collection))
    with pytest.raises(NotFoundError):
        await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=collection))


async def test_documents_are_read_updated_paged_and_deleted(engine: Engine) -> None:
    collection = await facts_collection(engine)
    document = await engine.invoke(
        rag.GET_DOCUMENT, DocumentRef(collection_id=collection, document_id="rome")
    )
    assert document.text == FACTS[1][1]
    assert document.chunk_count == 1
    updated = await engine.invoke(
        rag.UPDATE_DOCUMENT,
        DocumentUpdateRequest(
            collection_id=collection, document_id="rome", metadata={"country": "va"}
        ),
    )
    assert updated.metadata == {"country": "va"}
    moved = await engine.invoke(
        rag.SEARCH,
        SearchRequest(collection_id=collection, query="Colosseum", filter={"country": "va"}),
    )
    assert [hit.document_id for hit in moved.data] == ["rome"]
    first = await engine.invoke(
        rag.LIST_DOCUMENTS, DocumentListRequest(collection_id=collection, limit=3)
    )
    assert [d.id for d in first.data] == ["berlin", "london", "paris"]
    assert first.has_more
    rest = await engine.invoke(
        rag.LIST_DOCUMENTS, DocumentListRequest(collection_id=collection, after="paris")
    )
    assert [d.id for d in rest.data] == ["rome"]
    assert not rest.has_more
    await engine.invoke(
        rag.DELETE_DOCUMENT, DocumentRef(collection_id=collection, document_id="rome")
    )
    gone = await engine.invoke(
        rag.SEARCH, SearchRequest(collection_id=collection, query="Colosseum Rome", top_k=4)
    )
    assert "rome" not in {hit.document_id for hit in gone.data}
    fetched = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=collection))
    assert (fetched.document_count, fetched.chunk_count, fetched.indexed_count) == (3, 3, 3)
    with pytest.raises(NotFoundError):
        await engine.invoke(
            rag.DELETE_DOCUMENT, DocumentRef(collection_id=collection, document_id="rome")
        )


async def test_long_documents_are_chunked_with_offsets(engine: Engine) -> None:
    collection = await facts_collection(engine)
    paragraphs = [f"Paragraph {n} talks about topic{n} at some length." for n in range(12)]
    text = "\n\n".join(paragraphs)
    added = await engine.invoke(
        rag.ADD_DOCUMENTS,
        DocumentAddRequest(
            collection_id=collection,
            documents=[DocumentInput(id="long", text=text)],
            chunking=ChunkingOptions(chunk_size=120, chunk_overlap=0),
        ),
    )
    assert added.data[0].chunk_count > 3
    found = await engine.invoke(
        rag.SEARCH,
        SearchRequest(collection_id=collection, query="topic7", mode="lexical", top_k=1),
    )
    hit = found.data[0]
    assert "topic7" in hit.text
    assert text[hit.start : hit.end] == hit.text


@pytest.mark.parametrize("kind", ["txt", "md", "html", "pdf"])
async def test_uploaded_files_become_searchable_documents(engine: Engine, kind: str) -> None:
    collection = await facts_collection(engine)
    sentence = "The lighthouse keeper of Skerryvore logs every passing ship."
    files = {
        "txt": FilePart(filename="notes.txt", content_type="text/plain", data=sentence.encode()),
        "md": FilePart(
            filename="notes.md",
            content_type="text/markdown",
            data=f"# Log\n\n{sentence}\n".encode(),
        ),
        "html": FilePart(filename="page.html", content_type="text/html", data=html_page(sentence)),
        "pdf": FilePart(
            filename="log.pdf", content_type="application/pdf", data=pdf_file(sentence)
        ),
    }
    added = await engine.invoke(
        rag.UPLOAD_DOCUMENT,
        DocumentFileRequest(
            collection_id=collection, file=files[kind], metadata='{"source": "upload"}'
        ),
    )
    assert added.filename == files[kind].filename
    assert added.metadata == {"source": "upload"}
    document = await engine.invoke(
        rag.GET_DOCUMENT, DocumentRef(collection_id=collection, document_id=added.id)
    )
    assert document.text is not None
    assert "Skerryvore" in document.text
    assert "<" not in document.text
    assert "script" not in document.text
    found = await engine.invoke(
        rag.SEARCH, SearchRequest(collection_id=collection, query="lighthouse Skerryvore")
    )
    assert found.data[0].document_id == added.id


async def test_an_ingest_job_stores_every_document(engine: Engine) -> None:
    collection = await facts_collection(engine)
    documents = [DocumentInput(text=f"Record {n} mentions code{n}.") for n in range(70)]
    documents.insert(5, DocumentInput(text="   "))
    with pytest.raises(InvalidRequestError):  # checked before the job is accepted
        await engine.invoke(
            rag.CREATE_JOB, IngestJobRequest(collection_id=collection, documents=documents)
        )
    del documents[5]
    job = await engine.invoke(
        rag.CREATE_JOB, IngestJobRequest(collection_id=collection, documents=documents)
    )
    assert job.total == 70
    assert len(set(job.document_ids)) == 70
    with anyio.fail_after(30):
        while job.status in ("queued", "running"):
            await anyio.sleep(0.05)
            job = await engine.invoke(rag.GET_JOB, JobRef(job_id=job.id))
    assert (job.status, job.completed, job.failed) == ("succeeded", 70, 0)
    found = await engine.invoke(
        rag.SEARCH, SearchRequest(collection_id=collection, query="code42", mode="lexical")
    )
    assert found.data[0].document_id == job.document_ids[42]
    with pytest.raises(NotFoundError):
        await engine.invoke(rag.GET_JOB, JobRef(job_id="job_missing"))


async def test_conversation_memory_keeps_turns_in_order_and_recalls_them(engine: Engine) -> None:
    conversation = unique("chat")
    with pytest.raises(InvalidRequestError):
        await engine.invoke(
            rag.ADD_MEMORY,
            MemoryAddRequest(
                conversation_id=conversation, messages=[MemoryMessage(role="user", content=" ")]
            ),
        )
    with pytest.raises(NotFoundError):  # the refused turn left nothing behind
        await engine.invoke(rag.LIST_MEMORY, MemoryListRequest(conversation_id=conversation))
    turns = [
        MemoryMessage(role="user", content="My sister Alma lives in Lisbon."),
        MemoryMessage(role="assistant", content="Lisbon is lovely in spring."),
        MemoryMessage(role="user", content="I am allergic to peanuts.", metadata={"pin": True}),
    ]
    stored = await engine.invoke(
        rag.ADD_MEMORY, MemoryAddRequest(conversation_id=conversation, messages=turns[:2])
    )
    assert [t.turn for t in stored.data] == [0, 1]
    await engine.invoke(
        rag.ADD_MEMORY, MemoryAddRequest(conversation_id=conversation, messages=turns[2:])
    )
    listed = await engine.invoke(rag.LIST_MEMORY, MemoryListRequest(conversation_id=conversation))
    assert [(t.turn, t.role, t.content) for t in listed.data] == [
        (n, m.role, m.content) for n, m in enumerate(turns)
    ]
    assert listed.data[2].metadata == {"pin": True}
    latest = await engine.invoke(
        rag.LIST_MEMORY, MemoryListRequest(conversation_id=conversation, limit=1)
    )
    assert [t.turn for t in latest.data] == [2]
    recalled = await engine.invoke(
        rag.SEARCH_MEMORY,
        MemorySearchRequest(conversation_id=conversation, query="peanuts allergic", top_k=1),
    )
    assert recalled.data[0].content == turns[2].content
    assistant = await engine.invoke(
        rag.SEARCH_MEMORY,
        MemorySearchRequest(conversation_id=conversation, query="Lisbon", role="assistant"),
    )
    assert [t.role for t in assistant.data] == ["assistant"]
    # conversations are not collections
    listed_collections = await engine.invoke(rag.LIST_COLLECTIONS, CollectionListRequest())
    assert conversation not in {c.name for c in listed_collections.data}
    await engine.invoke(rag.DELETE_MEMORY, ConversationRef(conversation_id=conversation))
    with pytest.raises(NotFoundError):
        await engine.invoke(rag.LIST_MEMORY, MemoryListRequest(conversation_id=conversation))


async def test_owners_never_see_each_other(engine: Engine) -> None:
    name = unique("private")
    with acting_as("alice"):
        mine = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name=name))
        await engine.invoke(
            rag.ADD_DOCUMENTS,
            DocumentAddRequest(
                collection_id=mine.id, documents=[DocumentInput(id="d", text="alice's secret")]
            ),
        )
        await engine.invoke(
            rag.ADD_MEMORY,
            MemoryAddRequest(
                conversation_id=name, messages=[MemoryMessage(role="user", content="hi")]
            ),
        )
    with acting_as("bob"):
        listed = await engine.invoke(rag.LIST_COLLECTIONS, CollectionListRequest())
        assert name not in {c.name for c in listed.data}
        for ref in (mine.id, name):
            with pytest.raises(NotFoundError):
                await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=ref))
            with pytest.raises(NotFoundError):
                await engine.invoke(rag.SEARCH, SearchRequest(collection_id=ref, query="secret"))
            with pytest.raises(NotFoundError):
                await engine.invoke(
                    rag.GET_DOCUMENT, DocumentRef(collection_id=ref, document_id="d")
                )
            with pytest.raises(NotFoundError):
                await engine.invoke(rag.DELETE_COLLECTION, CollectionRef(collection_id=ref))
        with pytest.raises(NotFoundError):
            await engine.invoke(rag.LIST_MEMORY, MemoryListRequest(conversation_id=name))
        # bob may use the same name for a collection of his own
        theirs = await engine.invoke(rag.CREATE_COLLECTION, CollectionCreateRequest(name=name))
        assert theirs.id != mine.id
    with acting_as("alice"):
        still = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=name))
        assert (still.id, still.document_count) == (mine.id, 1)


async def test_bad_input_is_refused_with_a_clear_error(engine: Engine) -> None:
    collection = await facts_collection(engine)

    async def refused(op: object, request: object) -> InvalidRequestError:
        with pytest.raises(InvalidRequestError) as caught:
            await engine.invoke(op, request)  # type: ignore[arg-type]
        return caught.value

    with pytest.raises(NotFoundError) as missing:
        await engine.invoke(rag.SEARCH, SearchRequest(collection_id="nowhere", query="x"))
    assert missing.value.code == "collection_not_found"
    empty = await refused(
        rag.ADD_DOCUMENTS,
        DocumentAddRequest(collection_id=collection, documents=[DocumentInput(text=" \n ")]),
    )
    assert (empty.code, empty.param) == ("empty_document", "documents[0]")
    huge = await refused(
        rag.ADD_DOCUMENTS,
        DocumentAddRequest(collection_id=collection, documents=[DocumentInput(text="x" * 5001)]),
    )
    assert huge.code == "document_too_large"
    bad_filter = await refused(
        rag.SEARCH,
        SearchRequest(collection_id=collection, query="x", filter={"year": {"$near": 3}}),
    )
    assert (bad_filter.code, bad_filter.param) == ("invalid_filter", "filter")
    mismatch = await refused(
        rag.SEARCH, SearchRequest(collection_id=collection, vector=[0.5, 0.5], mode="vector")
    )
    assert mismatch.code == "dimension_mismatch"
    too_wide = await refused(
        rag.CREATE_COLLECTION, CollectionCreateRequest(name=unique("wide"), dimension=4096)
    )
    assert too_wide.code == "dimension_mismatch"
    no_query = await refused(rag.SEARCH, SearchRequest(collection_id=collection))
    assert no_query.param == "query"
    with pytest.raises(ConflictError):
        await engine.invoke(
            rag.ADD_DOCUMENTS,
            DocumentAddRequest(
                collection_id=collection, documents=[DocumentInput(id="rome", text="again")]
            ),
        )
    not_a_document = await refused(
        rag.UPLOAD_DOCUMENT,
        DocumentFileRequest(
            collection_id=collection,
            file=FilePart(
                filename="x.bin", content_type="application/octet-stream", data=b"\0\1\2"
            ),
        ),
    )
    assert not_a_document.code == "unsupported_file"
    # nothing of the refused requests was stored
    fetched = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=collection))
    assert fetched.document_count == len(FACTS)


async def test_vectors_of_the_collection_size_search_directly(engine: Engine) -> None:
    collection = await facts_collection(engine)
    reference = await engine.invoke(
        rag.SEARCH,
        SearchRequest(collection_id=collection, query="Brandenburg Gate", mode="vector", top_k=1),
    )
    assert reference.data[0].document_id == "berlin"
    smaller = await engine.invoke(
        rag.CREATE_COLLECTION, CollectionCreateRequest(name=unique("short"), dimension=64)
    )
    assert smaller.dimension == 64
    await engine.invoke(
        rag.ADD_DOCUMENTS,
        DocumentAddRequest(
            collection_id=smaller.id,
            documents=[DocumentInput(id=key, text=text) for key, text, *_ in FACTS],
        ),
    )
    found = await engine.invoke(
        rag.SEARCH,
        SearchRequest(collection_id=smaller.id, vector=[0.0] * 63 + [1.0], mode="vector"),
    )
    assert len(found.data) == len(FACTS)


async def test_rerank_orders_documents_by_relevance(reranker: Engine) -> None:
    documents: list[str | RerankDocument] = [
        "Cats sleep most of the day.",
        RerankDocument(text="The Eiffel Tower is in Paris."),
        "Paris is the capital of France, home of the Eiffel Tower.",
    ]
    answer = await reranker.invoke(
        RERANK, RerankRequest(query="Eiffel Tower Paris", documents=documents, top_n=2)
    )
    assert [r.index for r in answer.results] == [1, 2]
    assert answer.results[0].relevance_score >= answer.results[1].relevance_score
    assert answer.results[0].document is not None
    assert answer.results[0].document.text == "The Eiffel Tower is in Paris."
    assert answer.usage.total_tokens > 0
    bare = await reranker.invoke(
        RERANK,
        RerankRequest(query="cats", documents=documents, return_documents=False),
    )
    assert len(bare.results) == 3
    assert bare.results[0].index == 0
    assert all(r.document is None for r in bare.results)
    with pytest.raises(NotFoundError):
        await reranker.invoke(
            RERANK, RerankRequest(query="x", documents=["a"], model="no-such-reranker")
        )
