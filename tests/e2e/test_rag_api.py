"""RAG over HTTP: the OpenAI SDK's chat completions with the ``rag`` extension in a monolith and
through a gateway whose LLM, embeddings and RAG engines are each a pod of their own; bad input
as OpenAI-shaped 4xx; owners kept apart by the tenant header."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.documents import pdf_file
from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess, running_server

FAKE = {**FAKE_EMBEDDINGS_ENV, "AIPLATFORM_ENGINES__RAG__MAX_DOCUMENT_CHARS": "20000"}
FACTS = [
    "The Zephyr project ships its releases on the first Monday of every month.",
    "The Zephyr project's mascot is a blue heron called Wendell.",
    "Cafeteria lunch is served from noon until two o'clock.",
]


@pytest.fixture(scope="module")
def monolith() -> Iterator[ServerProcess]:
    with running_server(env=FAKE) as server:
        yield server


@pytest.fixture(scope="module")
def gateway() -> Iterator[ServerProcess]:
    """Every engine the RAG chat touches forwarded: LLM, embeddings and RAG pods; the RAG pod
    embeds through the embeddings pod."""
    with (
        running_server("--engines", "embeddings", env=FAKE) as embeddings,
        running_server("--engines", "llm", env=FAKE) as llm,
        running_server(
            "--engines", "rag", env={**FAKE, "AIPLATFORM_ENGINES__EMBEDDINGS__URL": embeddings.url}
        ) as rag,
        running_server(
            env={
                **FAKE,
                "AIPLATFORM_ENGINES__EMBEDDINGS__URL": embeddings.url,
                "AIPLATFORM_ENGINES__LLM__URL": llm.url,
                "AIPLATFORM_ENGINES__RAG__URL": rag.url,
            }
        ) as gateway,
    ):
        yield gateway


def make_collection(url: str, **headers: str) -> str:
    name = f"kb-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        created = http.post("/v1/rag/collections", json={"name": name, "index": "hnsw"})
        assert created.status_code == 200, created.text
        documents = [{"text": text, "metadata": {"n": n}} for n, text in enumerate(FACTS)]
        added = http.post(f"/v1/rag/collections/{name}/documents", json={"documents": documents})
        assert added.status_code == 200, added.text
    return name


@pytest.mark.parametrize("where", ["monolith", "gateway"])
def test_chat_answers_from_a_collection_with_citations(
    request: pytest.FixtureRequest, where: str
) -> None:
    server: ServerProcess = request.getfixturevalue(where)
    collection = make_collection(server.url)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    answer = client.chat.completions.create(
        model=FAKE_LLM_MODEL,
        messages=[{"role": "user", "content": "What is the Zephyr project's mascot?"}],
        extra_body={"rag": {"collection": collection, "top_k": 2}},
    )
    citations = (answer.model_extra or {})["citations"]
    assert len(citations) == 2
    assert citations[0]["text"] == FACTS[1]
    assert [c["index"] for c in citations] == [1, 2]
    assert answer.choices[0].message.content
    stream = client.chat.completions.create(
        model=FAKE_LLM_MODEL,
        messages=[{"role": "user", "content": "When does Zephyr ship releases?"}],
        extra_body={"rag": {"collection": collection, "top_k": 1, "filter": {"n": 0}}},
        stream=True,
    )
    chunks = list(stream)
    streamed = (chunks[0].model_extra or {})["citations"]
    assert [c["text"] for c in streamed] == [FACTS[0]]
    assert all("citations" not in (chunk.model_extra or {}) for chunk in chunks[1:])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("where", ["monolith", "gateway"])
def test_chat_remembers_the_conversation(request: pytest.FixtureRequest, where: str) -> None:
    server: ServerProcess = request.getfixturevalue(where)
    collection = make_collection(server.url)
    conversation = f"talk-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    for question in ("Who is Wendell?", "When is lunch?"):
        client.chat.completions.create(
            model=FAKE_LLM_MODEL,
            messages=[{"role": "user", "content": question}],
            extra_body={"rag": {"collection": collection, "conversation_id": conversation}},
        )
    turns = httpx.get(f"{server.url}/v1/rag/conversations/{conversation}/messages").json()["data"]
    assert [(t["turn"], t["role"]) for t in turns] == [
        (0, "user"), (1, "assistant"), (2, "user"), (3, "assistant"),
    ]  # fmt: skip
    assert turns[2]["content"] == "When is lunch?"


@pytest.mark.parametrize(
    ("disabled", "options", "param"),
    [
        ("RAG", {"collection": "x"}, "rag"),
        ("RERANK", {"collection": "x", "rerank": True}, "rag.rerank"),
    ],
)
def test_rag_without_its_engines_is_a_clear_400(
    disabled: str, options: dict[str, object], param: str
) -> None:
    env = {**FAKE, f"AIPLATFORM_ENGINES__{disabled}__ENABLED": "false"}
    with running_server(env=env) as server:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "rag": options},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_silent_rag_pod_is_a_504(silent_port: int) -> None:
    env = {
        **FAKE,
        "AIPLATFORM_ENGINES__RAG__URL": f"http://127.0.0.1:{silent_port}",
        "AIPLATFORM_ENGINES__RAG__TIMEOUT_S": "1",
    }
    with running_server(env=env, wait_ready=False) as server:
        search = httpx.post(f"{server.url}/v1/rag/collections/kb/search", json={"query": "x"})
        chat = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "rag": {"collection": "kb"}},
        )
    for response in (search, chat):
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"


def test_bad_input_gets_openai_shaped_4xx(monolith: ServerProcess) -> None:
    collection = make_collection(monolith.url)
    base = f"/v1/rag/collections/{collection}"
    search, documents = f"{base}/search", f"{base}/documents"
    cases = [
        ("POST", "/v1/rag/collections/missing/search", {"query": "x"}, 404, "collection_not_found"),
        ("POST", search, {"vector": [1.0, 2.0], "mode": "vector"}, 400, "dimension_mismatch"),
        ("POST", search, {"query": "x", "filter": {"n": {"$regex": "."}}}, 400, "invalid_filter"),
        ("POST", search, {"query": "x", "top_k": 0}, 400, None),
        ("POST", documents, {"documents": [{"text": ""}]}, 400, "empty_document"),
        ("POST", documents, {"documents": [{"text": "y" * 20001}]}, 400, "document_too_large"),
        ("POST", documents, {"documents": []}, 400, None),
        ("POST", "/v1/rag/collections", {"name": "x", "index": "lsh"}, 400, None),
        ("POST", "/v1/rag/collections", {"name": "x", "dimension": 100000}, 400, None),
        ("PATCH", f"{base}/documents/missing", {"metadata": {}}, 404, "document_not_found"),
        ("GET", "/v1/rag/jobs/job_missing", None, 404, "job_not_found"),
        ("POST", "/v1/rerank", {"query": "x", "documents": []}, 400, None),
    ]  # fmt: skip
    with httpx.Client(base_url=monolith.url, timeout=30) as http:
        for method, path, body, status, code in cases:
            response = http.request(method, path, json=body)
            assert response.status_code == status, (path, body, response.text)
            error = response.json()["error"]
            assert error["message"]
            assert error["type"] == "invalid_request_error"
            if code is not None:
                assert error["code"] == code, (path, body, error)
        broken = http.post(
            f"{base}/files",
            files={"file": ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf")},
        )
        assert broken.status_code == 400
        assert broken.json()["error"]["code"] == "invalid_file"
        listed = http.get(f"{base}/documents").json()
        assert len(listed["data"]) == len(FACTS)  # nothing refused was stored


def test_uploads_over_http(monolith: ServerProcess) -> None:
    collection = make_collection(monolith.url)
    sentence = "Quarterly audits of the Zephyr ledger happen in March."
    with httpx.Client(base_url=monolith.url, timeout=30) as http:
        uploaded = http.post(
            f"/v1/rag/collections/{collection}/files",
            files={"file": ("audit.pdf", pdf_file(sentence, pages=2), "application/pdf")},
            data={"metadata": json.dumps({"kind": "audit"}), "chunk_size": "200"},
        )
        assert uploaded.status_code == 200, uploaded.text
        found = http.post(
            f"/v1/rag/collections/{collection}/search",
            json={"query": "ledger audits", "filter": {"kind": "audit"}},
        ).json()["data"]
    assert found[0]["document_id"] == uploaded.json()["id"]
    assert "ledger" in found[0]["text"]


def test_owners_are_kept_apart_by_the_tenant_header(monolith: ServerProcess) -> None:
    collection = make_collection(monolith.url, **{"x-aiplatform-tenant": "acme"})
    with httpx.Client(base_url=monolith.url, timeout=30) as http:
        theirs = http.get("/v1/rag/collections", headers={"x-aiplatform-tenant": "acme"}).json()
        assert collection in {c["name"] for c in theirs["data"]}
        for tenant in ("globex", None):
            headers = {"x-aiplatform-tenant": tenant} if tenant else {}
            listed = http.get("/v1/rag/collections", headers=headers).json()
            assert collection not in {c["name"] for c in listed["data"]}
            search = http.post(
                f"/v1/rag/collections/{collection}/search", json={"query": "x"}, headers=headers
            )
            assert search.status_code == 404
        malformed = http.get("/v1/rag/collections", headers={"x-aiplatform-tenant": "a b/../c"})
        assert malformed.status_code == 400
        assert malformed.json()["error"]["param"] == "x-aiplatform-tenant"
