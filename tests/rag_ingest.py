"""A process that ingests and deletes documents until it is killed, printing each change once
the engine has acknowledged it: ``ADD <collection> <id> <token>`` or ``DEL <collection> <id>``
(after ``DELETING <collection> <id>``: a delete cut short by the kill may or may not be done).

Run by the crash test: ``python -m tests.rag_ingest DATA_DIR SEED [DATABASE_URL]`` (with a
PostgreSQL URL, on the PostgreSQL store; otherwise on the embedded one under DATA_DIR).
"""

from __future__ import annotations

import contextlib
import random
import sys

import anyio

from aiplatform.api.rag import (
    CollectionCreateRequest,
    DocumentAddRequest,
    DocumentInput,
    DocumentRef,
)
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.rag import operations as rag
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.errors import ConflictError

#: The crash test's collections, by name, with their index types.
COLLECTIONS = {"crash-flat": "flat", "crash-hnsw": "hnsw"}


def crash_settings(data_dir: str, database_url: str | None = None) -> RagSettings:
    if database_url is not None:
        return RagSettings(data_dir=data_dir, store="postgres", database_url=database_url)
    # index files are rewritten every few changes, so kills land in those writes too
    return RagSettings(data_dir=data_dir, checkpoint_every=7)


async def main(data_dir: str, seed: int, database_url: str | None = None) -> None:
    rng = random.Random(seed)
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    async with (
        embeddings,
        LocalRagEngine(crash_settings(data_dir, database_url), embeddings=embeddings) as engine,
    ):
        for name, index in COLLECTIONS.items():
            with contextlib.suppress(ConflictError):  # made by an earlier run
                await engine.invoke(
                    rag.CREATE_COLLECTION,
                    CollectionCreateRequest(name=name, index=index),  # type: ignore[arg-type]
                )
        acked: dict[str, list[str]] = {name: [] for name in COLLECTIONS}
        serial = 0
        while True:
            name = rng.choice(list(COLLECTIONS))
            if acked[name] and rng.random() < 0.15:
                victim = acked[name].pop(rng.randrange(len(acked[name])))
                print(f"DELETING {name} {victim}", flush=True)  # in doubt until DEL
                await engine.invoke(
                    rag.DELETE_DOCUMENT, DocumentRef(collection_id=name, document_id=victim)
                )
                print(f"DEL {name} {victim}", flush=True)
                continue
            batch = []
            for _ in range(rng.randint(1, 4)):
                serial += 1
                token = f"tok{seed}x{serial}"
                body = " ".join(f"filler{rng.randrange(50)}" for _ in range(rng.randint(5, 400)))
                batch.append(
                    DocumentInput(
                        id=f"s{seed}-{serial}",
                        text=f"{token} {body}",
                        metadata={"token": token},
                    )
                )
            await engine.invoke(
                rag.ADD_DOCUMENTS, DocumentAddRequest(collection_id=name, documents=batch)
            )
            for document in batch:
                acked[name].append(document.id or "")
                print(f"ADD {name} {document.id} {document.metadata['token']}", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])
