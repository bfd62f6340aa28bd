"""Crash safety: a process ingesting and deleting documents is killed with SIGKILL at random
points; after each restart every acknowledged document is found, every acknowledged delete
stays deleted, and each index answers for exactly the chunks in the database."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aiplatform.api.rag import CollectionRef, DocumentRef, SearchRequest
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.errors import NotFoundError
from tests.rag_ingest import COLLECTIONS, crash_settings

pytestmark = pytest.mark.anyio

ROUNDS = 6


def ingest_until_killed(data_dir: Path, seed: int, delay_s: float) -> list[str]:
    """Run the ingest process, kill it ``delay_s`` after its first acknowledgement, and return
    the complete lines it printed."""
    errors = data_dir / "ingest.err"
    with errors.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.rag_ingest", str(data_dir), str(seed)],
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


async def test_acknowledged_changes_survive_sigkill(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    added: dict[str, dict[str, str]] = {name: {} for name in COLLECTIONS}
    deleted: dict[str, set[str]] = {name: set() for name in COLLECTIONS}
    for round_number in range(ROUNDS):
        lines = ingest_until_killed(tmp_path, rng.randrange(1 << 30), rng.uniform(0.05, 1.5))
        for line in lines:
            match line.split():
                case ["ADD", collection, document_id, token]:
                    added[collection][document_id] = token
                case ["DELETING", collection, document_id]:
                    # in doubt until acknowledged: either outcome is right
                    added[collection].pop(document_id, None)
                case ["DEL", collection, document_id]:
                    deleted[collection].add(document_id)
        await check_recovered(tmp_path, added, deleted, f"seed {seed}, round {round_number}")
    assert sum(len(documents) for documents in added.values()) > 0


async def check_recovered(
    data_dir: Path, added: dict[str, dict[str, str]], deleted: dict[str, set[str]], where: str
) -> None:
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    engine = LocalRagEngine(crash_settings(str(data_dir)), embeddings=embeddings)
    async with embeddings, engine:
        for name, documents in added.items():
            store = engine.store
            row = store.collection("default", "documents", name)
            store.index_of(row)  # loaded, and caught up, as the first search would
            collection = await engine.invoke(rag.GET_COLLECTION, CollectionRef(collection_id=name))
            assert collection.indexed_count == collection.chunk_count, where
            stored = np.sort(store.matching_chunk_ids(row, {}))
            indexed = np.sort(store.index_of(row).ids())
            assert np.array_equal(stored, indexed), where
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
