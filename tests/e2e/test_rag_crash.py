"""Crash safety, on both stores: a process ingesting and deleting documents is killed with
SIGKILL at random points; after each restart every acknowledged document is found, every
acknowledged delete stays deleted, and (embedded store) each index, vector and lexical, answers
for exactly the chunks in the database."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from aiplatform.api.rag import CollectionRef, DocumentRef, SearchRequest
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.postgres_store import PostgresStore
from aiplatform.engines.rag.sqlite_store import SqliteStore
from aiplatform.errors import NotFoundError
from tests.rag_ingest import COLLECTIONS, crash_settings
from tests.unit.auth_store.postgres_server import postgres_server

pytestmark = pytest.mark.anyio

ROUNDS = 6


def ingest_until_killed(
    data_dir: Path, seed: int, delay_s: float, database_url: str | None
) -> list[str]:
    """Run the ingest process, kill it ``delay_s`` after its first acknowledgement, and return
    the complete lines it printed."""
    errors = data_dir / "ingest.err"
    with errors.open("ab") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.rag_ingest",
                str(data_dir),
                str(seed),
                *([database_url] if database_url else []),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=Path(__file__).resolve().parents[2],
        )
    with process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first, f"the ingest process printed nothing: {errors.read_text()}"
        time.sleep(delay_s)
        os.kill(process.pid, signal.SIGKILL)
        output = (first + process.stdout.read()).decode()
    # a line cut by the kill was never acknowledged
    return output.splitlines() if output.endswith("\n") else output.splitlines()[:-1]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded store; the URL of a fresh PostgreSQL for the other."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_server() as url:
        yield url


async def test_acknowledged_changes_survive_sigkill(
    tmp_path: Path, database_url: str | None
) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    added: dict[str, dict[str, str]] = {name: {} for name in COLLECTIONS}
    deleted: dict[str, set[str]] = {name: set() for name in COLLECTIONS}
    for round_number in range(ROUNDS):
        lines = ingest_until_killed(
            tmp_path, rng.randrange(1 << 30), rng.uniform(0.05, 1.5), database_url
        )
        for line in lines:
            match line.split():
                case ["ADD", collection, document_id, token]:
                    added[collection][document_id] = token
                case ["DELETING", collection, document_id]:
                    # in doubt until acknowledged: either outcome is right
                    added[collection].pop(document_id, None)
                case ["DEL", collection, document_id]:
                    deleted[collection].add(document_id)
        where = f"seed {seed}, round {round_number}"
        await check_recovered(tmp_path, database_url, added, deleted, where)
    assert sum(len(documents) for documents in added.values()) > 0


async def check_recovered(
    data_dir: Path,
    database_url: str | None,
    added: dict[str, dict[str, str]],
    deleted: dict[str, set[str]],
    where: str,
) -> None:
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    engine = LocalRagEngine(crash_settings(str(data_dir), database_url), embeddings=embeddings)
    async with embeddings, engine:
        for name, documents in added.items():
            if isinstance(engine.store, SqliteStore):
                check_indexes_agree(engine.store, name, where)
            collection = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=name))
            if isinstance(engine.store, PostgresStore):
                assert database_url is not None
                check_replica_indexes_agree(engine.store, database_url, name, where)
                collection = await engine.invoke(
                    rag.GET_COLLECTION, CollectionRef(collection_id=name)
                )
            assert collection.indexed_count == collection.chunk_count, where
            for document_id, token in documents.items():
                hits = await engine.invoke(
                    rag.SEARCH,
                    SearchRequest(
                        collection_id=name,
                        query=token,
                        mode="vector",
                        top_k=1,
                        filter={"token": token},
                    ),
                )
                assert [hit.document_id for hit in hits.data] == [document_id], where
                lexical = await engine.invoke(
                    rag.SEARCH,
                    SearchRequest(collection_id=name, query=token, mode="lexical", top_k=1),
                )
                assert [hit.document_id for hit in lexical.data] == [document_id], where
            for document_id in deleted[name]:
                with pytest.raises(NotFoundError):
                    await engine.invoke(
                        rag.GET_DOCUMENT, DocumentRef(collection_id=name, document_id=document_id)
                    )


def check_indexes_agree(store: SqliteStore, name: str, where: str) -> None:
    """The embedded store's vector and lexical indexes, loaded (and caught up) as the first
    search would load them, answer for exactly the chunks in the database."""
    row = store.collection("default", "documents", name)
    loaded = store.residency.loaded(row)
    stored = store.documents.ids(
        "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (row.id,)
    )
    assert np.array_equal(stored, np.sort(loaded.index.ids())), where
    assert np.array_equal(stored, loaded.lexical.ids()), where
    assert np.array_equal(stored, loaded.metadata.matching({})), where


def check_replica_indexes_agree(
    store: PostgresStore, database_url: str, name: str, where: str
) -> None:
    """A replica's indexes, built from the database as its first search builds them, answer
    for exactly the chunks in the database."""
    row = store.collection("default", "documents", name)
    loaded = store.indexes.current(row)
    with psycopg.connect(database_url) as db:
        found = db.execute(
            "SELECT id FROM rag_chunks WHERE collection_id = %s ORDER BY id", (row.id,)
        ).fetchall()
    stored = np.asarray([r[0] for r in found], dtype=np.int64)
    assert np.array_equal(stored, np.sort(loaded.index.ids())), where
    assert np.array_equal(stored, loaded.lexical.ids()), where
    assert np.array_equal(stored, loaded.metadata.matching({})), where
