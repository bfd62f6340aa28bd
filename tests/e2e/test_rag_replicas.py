"""Several RAG replicas on one PostgreSQL store, as a Deployment with replicas runs them: real
``aiplatform serve --engines embeddings,rag`` processes (fake embeddings) sharing one database.
What one replica writes, every other finds at once; names and conversation turn numbers cannot
collide across replicas; and a replica killed with SIGKILL during ingest loses no document it
acknowledged."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess
from tests.unit.auth_store.postgres_server import postgres_server

pytestmark = pytest.mark.slow

REPLICA_ARGS = ["--engines", "embeddings,rag"]


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def replica_env(url: str) -> dict[str, str]:
    return {
        **FAKE_EMBEDDINGS_ENV,
        "AIPLATFORM_ENGINES__RAG__STORE": "postgres",
        "AIPLATFORM_ENGINES__RAG__DATABASE_URL": url,
    }


@pytest.fixture(scope="module")
def replicas(database_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(REPLICA_ARGS, replica_env(database_url))
    second = ServerProcess(REPLICA_ARGS, replica_env(database_url))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda server: server.start(), (first, second)))
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_collection(server: ServerProcess, name: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/rag/collections", json={"name": name}, timeout=30)


def add(server: ServerProcess, collection: str, documents: list[dict[str, object]]) -> None:
    response = httpx.post(
        f"{server.url}/v1/rag/collections/{collection}/documents",
        json={"documents": documents},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def search(server: ServerProcess, collection: str, query: str, **options: object) -> list[str]:
    response = httpx.post(
        f"{server.url}/v1/rag/collections/{collection}/search",
        json={"query": query, "top_k": 5, **options},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return [hit["document_id"] for hit in response.json()["data"]]


def test_what_one_replica_writes_the_other_finds_at_once(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = replicas
    name = unique("shared")
    assert create_collection(first, name).status_code == 200
    add(
        first,
        name,
        [
            {
                "id": "falls",
                "text": "The waterfall of Orvenna drops ninety metres.",
                "metadata": {"k": 1},
            },
            {
                "id": "mill",
                "text": "A paper mill stood by the river in Dastrel.",
                "metadata": {"k": 2},
            },
        ],
    )
    # the second replica never saw the writes: it answers from the shared store
    assert search(second, name, "waterfall Orvenna", mode="lexical")[0] == "falls"
    assert search(second, name, "paper mill", filter={"k": 2}) == ["mill"]
    got = httpx.get(f"{second.url}/v1/rag/collections/{name}/documents/mill", timeout=30)
    assert got.status_code == 200
    assert got.json()["metadata"] == {"k": 2}
    deleted = httpx.delete(f"{second.url}/v1/rag/collections/{name}/documents/falls", timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert "falls" not in search(first, name, "waterfall Orvenna")
    listed = httpx.get(f"{first.url}/v1/rag/collections/{name}", timeout=30).json()
    assert (listed["document_count"], listed["chunk_count"]) == (1, 1)


def test_one_name_is_created_once_across_replicas(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    name = unique("race")
    barrier = threading.Barrier(len(replicas))

    def create(server: ServerProcess) -> int:
        barrier.wait()
        return create_collection(server, name).status_code

    with ThreadPoolExecutor(len(replicas)) as pool:
        statuses = sorted(pool.map(create, replicas))
    assert statuses == [200, 409]


def test_conversation_turns_added_through_both_replicas_never_share_a_number(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    conversation = unique("chat")
    per_replica = 12

    def talk(server: ServerProcess) -> list[int]:
        turns = []
        for n in range(per_replica):
            response = httpx.post(
                f"{server.url}/v1/rag/conversations/{conversation}/messages",
                json={"messages": [{"role": "user", "content": f"{server.port} says {n}"}]},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            turns += [turn["turn"] for turn in response.json()["data"]]
        return turns

    with ThreadPoolExecutor(len(replicas)) as pool:
        numbered = [turn for turns in pool.map(talk, replicas) for turn in turns]
    assert sorted(numbered) == list(range(len(replicas) * per_replica))
    recent = httpx.get(
        f"{replicas[0].url}/v1/rag/conversations/{conversation}/messages",
        params={"limit": 100},
        timeout=30,
    ).json()["data"]
    assert [turn["turn"] for turn in recent] == list(range(len(replicas) * per_replica))


def test_a_replica_killed_during_ingest_loses_no_acknowledged_document(
    database_url: str, replicas: tuple[ServerProcess, ServerProcess]
) -> None:
    survivor = replicas[0]
    doomed = ServerProcess(REPLICA_ARGS, replica_env(database_url))
    doomed.start()
    name = unique("ingest")
    assert create_collection(doomed, name).status_code == 200
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def ingest(worker: int) -> None:
        serial = 0
        while not stop.is_set():
            serial += 1
            ids = [f"w{worker}-{serial}-{n}" for n in range(8)]
            documents = [
                {"id": key, "text": f"token{key.replace('-', 'x')} filler words"} for key in ids
            ]
            try:
                response = httpx.post(
                    f"{doomed.url}/v1/rag/collections/{name}/documents",
                    json={"documents": documents},
                    timeout=30,
                )
            except httpx.HTTPError:
                return  # the replica is gone: this batch was never acknowledged
            if response.status_code != 200:
                return
            with lock:
                acknowledged.extend(ids)

    with ThreadPoolExecutor(3) as pool:
        workers = [pool.submit(ingest, worker) for worker in range(3)]
        while True:
            with lock:
                if len(acknowledged) >= 200:
                    break
            assert not all(worker.done() for worker in workers), "ingest stopped early"
            threading.Event().wait(0.05)
        doomed.kill()
        stop.set()
    doomed.stop()
    stored = set()
    after = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"after": after} if after else {})}
        page = httpx.get(
            f"{survivor.url}/v1/rag/collections/{name}/documents", params=params, timeout=30
        ).json()
        stored.update(document["id"] for document in page["data"])
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged documents lost, e.g. {sorted(missing)[:5]}"
    # and they are searchable, not only listed
    sample = sorted(acknowledged)[:: max(1, len(acknowledged) // 10)]
    for key in sample:
        assert key in search(survivor, name, f"token{key.replace('-', 'x')}", mode="lexical")
