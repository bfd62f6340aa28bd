"""The RAG store: what it acknowledges survives, its indexes agree with its database however
they were left, and deleted text leaves the disk."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiplatform.api.rag import SearchRequest
from aiplatform.engines.rag.chunking import split_text
from aiplatform.engines.rag.index import IndexParams, VectorIndex, Vectors
from aiplatform.engines.rag.search import search_collection
from aiplatform.engines.rag.sqlite_store import CollectionRow, PreparedDocument, SqliteStore
from aiplatform.errors import ConflictError

DIMENSION = 16


def vectors(count: int, seed: int) -> Vectors:
    rows = np.random.default_rng(seed).normal(size=(count, DIMENSION)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def document(key: str, seed: int, words: str = "") -> PreparedDocument:
    text = f"Document {key} {words}".strip()
    return PreparedDocument(
        id=key,
        text=text,
        metadata={"n": seed},
        chunks=split_text(text, 1000, 0),
        vectors=vectors(1, seed),
    )


def open_store(folder: Path, **params: int) -> SqliteStore:
    store = SqliteStore(folder, IndexParams(**params), checkpoint_every=10)
    store.open()
    return store


def new_collection(store: SqliteStore, index: str = "flat") -> CollectionRow:
    return store.create_collection(
        "owner",
        "documents",
        f"c-{index}",
        embedding_model="m",
        dimension=DIMENSION,
        index_type=index,
        metadata={},
    )


def consistent(store: SqliteStore, collection: CollectionRow) -> bool:
    """The index answers for exactly the chunks in the database."""
    _, chunks = store.counts(collection)
    indexed = store.index_of(collection).size
    stored = set(store.matching_chunk_ids(collection, {}).tolist())
    index = store.index_of(collection)
    return chunks == indexed and set(index.ids().tolist()) == stored


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf", "sq8", "ivfpq"])
def test_acknowledged_documents_survive_a_lost_index_file(tmp_path: Path, index: str) -> None:
    store = open_store(tmp_path, ivf_min_train=256, sq_min_train=256)
    collection = new_collection(store, index)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(300)])
    store.maintain(collection)
    store.delete_document(collection, "d7")
    # a crash: the process dies without closing; the index file is whatever was last written
    store = open_store(tmp_path, ivf_min_train=256, sq_min_train=256)
    assert consistent(store, collection)
    query = vectors(1, 42)
    found = store.vector_search(collection, query, 1, None)
    assert found[0][0] in store.matching_chunk_ids(collection, {"n": 42})
    assert not store.matching_chunk_ids(collection, {"n": 7}).size
    store.close()
    (tmp_path / "indexes" / f"{collection.id}.faiss").unlink()
    store = open_store(tmp_path)
    assert consistent(store, collection)
    assert store.counts(collection)[1] == 299


@pytest.mark.parametrize("damage", ["lost", "truncated", "stale"])
def test_the_lexical_index_is_caught_up_or_rebuilt_from_the_database(
    tmp_path: Path, damage: str
) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    store.add_documents(collection, [document(f"d{n}", n, f"word{n} common") for n in range(30)])
    store.close()
    path = tmp_path / "indexes" / f"{collection.id}.lexical"
    if damage == "lost":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:  # written before the last changes: a crash between checkpoints
        store = open_store(tmp_path)
        store.add_documents(collection, [document("late", 99, "latecomer common")])
        store.delete_document(collection, "d3")
        store._db.close()  # dies without writing its indexes
    store = open_store(tmp_path)
    loaded = store.residency.loaded(collection)
    stored = store.documents.ids(
        "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection.id,)
    )
    assert np.array_equal(loaded.lexical.ids(), stored)
    found = store.lexical_search(collection, "word7", 3, None)
    assert [store.chunk_records(collection, [found[0][0]])[found[0][0]].document_id] == ["d7"]
    if damage == "stale":
        assert not store.lexical_search(collection, "word3", 3, None)
        (late,) = store.lexical_search(collection, "latecomer", 3, None)
        assert store.chunk_records(collection, [late[0]])[late[0]].document_id == "late"
    store.close()


def test_a_damaged_index_file_is_rebuilt_from_the_database(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(20)])
    store.close()
    path = tmp_path / "indexes" / f"{collection.id}.faiss"
    path.write_bytes(path.read_bytes()[:100])
    store = open_store(tmp_path)
    assert consistent(store, collection)
    assert store.index_of(collection).size == 20


def test_masked_hnsw_nodes_are_rebuilt_away(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store, "hnsw")
    store.add_documents(collection, [document(f"d{n}", n) for n in range(50)])
    for n in range(15):
        store.delete_document(collection, f"d{n}")
    index = store.index_of(collection)
    assert index.wants_rebuild()
    hits = store.vector_search(collection, vectors(1, 3), 50, None)
    assert len(hits) == 35  # deleted ones are never returned, even before the rebuild
    store.maintain(collection)
    assert not index.wants_rebuild()
    assert consistent(store, collection)


def test_an_ivf_collection_is_clustered_once_large_enough(tmp_path: Path) -> None:
    store = open_store(tmp_path, ivf_min_train=256)
    collection = new_collection(store, "ivf")
    store.add_documents(collection, [document(f"d{n}", n) for n in range(100)])
    index = store.index_of(collection)
    store.maintain(collection)
    assert not index.is_ivf
    store.add_documents(collection, [document(f"e{n}", 1000 + n) for n in range(200)])
    store.maintain(collection)
    assert index.is_ivf
    assert consistent(store, collection)
    target = store.matching_chunk_ids(collection, {"n": 1100})
    hits = store.vector_search(collection, vectors(1, 1100), 1, None)
    assert hits[0][0] == int(target[0])


def test_deleted_text_leaves_every_file(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    secret = "zanzibarquokka"
    store.add_documents(
        collection, [document("keep", 1, "ordinary words"), document("gone", 2, secret)]
    )
    store.close()
    store = open_store(tmp_path)
    store.delete_document(collection, "gone")
    store.maintain(collection)
    assert store.lexical_search(collection, secret, 5, None) == []
    on_disk = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    assert secret.encode() not in on_disk
    assert b"ordinary" in on_disk
    store.close()


def test_filters_select_inside_the_database(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    docs = [document(f"d{n}", n) for n in range(10)]
    docs[3] = PreparedDocument(
        id="d3",
        text="tagged",
        metadata={"tags": ["a", "b"], "nested": {"level": 2}},
        chunks=split_text("tagged", 100, 0),
        vectors=vectors(1, 3),
    )
    store.add_documents(collection, docs)

    def ids(spec: dict[str, object]) -> set[int]:
        return set(store.matching_chunk_ids(collection, spec).tolist())

    all_ids = ids({})
    assert len(all_ids) == 10
    assert len(ids({"n": {"$gte": 5}})) == 5
    assert len(ids({"n": {"$ne": 4}})) == 9  # the tagged one has no n and is "not 4"
    assert len(ids({"n": {"$nin": [1, 2]}})) == 8
    assert len(ids({"n": {"$exists": False}})) == 1
    assert ids({"tags": {"$contains": "b"}}) == ids({"nested.level": 2})
    assert len(ids({"$not": {"n": {"$lt": 8}}})) == 3
    assert ids({"$and": [{"n": {"$gt": 1}}, {"n": {"$lt": 3}}]}) == ids({"n": 2})


def test_indexes_beyond_the_memory_budget_are_written_and_dropped(tmp_path: Path) -> None:
    one_index = 20 * (4 * DIMENSION + 8)
    store = SqliteStore(
        tmp_path, IndexParams(), checkpoint_every=1000, index_memory_bytes=one_index
    )
    store.open()
    collections = [
        store.create_collection(
            "owner", "documents", f"c{n}", embedding_model="m", dimension=DIMENSION,
            index_type="flat", metadata={},
        )
        for n in range(3)
    ]  # fmt: skip
    for number, collection in enumerate(collections):
        store.add_documents(collection, [document(f"d{n}", 100 * number + n) for n in range(20)])
        loaded = [key for key, value in store._indexes.items() if value.index.size]
        assert loaded == [collection.id]  # only the one in use stays
    for number, collection in enumerate(collections):
        assert (tmp_path / "indexes" / f"{collection.id}.faiss").exists()
        hits = store.vector_search(collection, vectors(1, 100 * number + 5), 1, None)
        assert hits[0][0] in store.matching_chunk_ids(collection, {"n": 100 * number + 5})
        assert consistent(store, collection)
    store.close()


def test_a_filtered_graph_search_finds_every_match_it_asks_for(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store, "hnsw")
    store.add_documents(collection, [document(f"d{n}", n) for n in range(400)])
    wanted = {"n": {"$in": list(range(0, 400, 8))}}  # 50 scattered matches
    request = SearchRequest(query="x", mode="vector", top_k=50, filter=wanted)
    hits = search_collection(store, collection, request, vectors(1, 9999), exact_filter_limit=10)
    assert len(hits) == 50
    assert {hit.metadata["n"] for hit in hits} == set(range(0, 400, 8))


def test_a_batch_with_a_taken_id_is_refused_whole(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    store.add_documents(collection, [document("d1", 1)])
    for batch, named in (
        ([document("d2", 2), document("d1", 3)], "'d1'"),
        ([document("d3", 3), document("d3", 4)], "'d3'"),
    ):
        with pytest.raises(ConflictError) as refused:
            store.add_documents(collection, batch)
        assert (refused.value.status_code, refused.value.param) == (409, "id")
        assert named in refused.value.message
        assert store.counts(collection) == (1, 1)  # all or none
    store.add_documents(collection, [document("d2", 2)])  # the keys the refused ones took
    assert store.counts(collection) == (2, 2)
    assert consistent(store, collection)
    store.close()


def test_changes_made_while_the_index_files_are_written_stay_unwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(20)])
    write = VectorIndex.write
    seen: list[bool] = []

    def write_meanwhile(index: VectorIndex, path: Path) -> None:
        write(index, path)  # the snapshot: taken before the changes below
        seen.append(free_elsewhere(store._db.write_lock))
        store.add_documents(collection, [document(f"late{n}", 100 + n) for n in range(3)])
        store.delete_document(collection, "d0")

    monkeypatch.setattr(VectorIndex, "write", write_meanwhile)
    store.maintain(collection)
    assert seen == [True]  # the files were written without the write lock held
    loaded = store.residency.loaded(collection)
    assert (loaded.dirty, loaded.removed) == (4, 1)
    assert loaded.written == loaded.snapshots == 1
    folder = tmp_path / "indexes"
    saved = VectorIndex.load(folder / f"{collection.id}.faiss", DIMENSION, "flat", IndexParams())
    assert saved.size == 20
    assert not list(folder.glob(".*"))
    # a crash now: the files hold the snapshot, the database the changes after it
    store = open_store(tmp_path)
    assert consistent(store, collection)
    assert store.counts(collection) == (22, 22)


def test_a_collection_deleted_while_its_index_files_are_written_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(20)])
    write = VectorIndex.write

    def write_meanwhile(index: VectorIndex, path: Path) -> None:
        write(index, path)
        store.delete_collection(collection)

    monkeypatch.setattr(VectorIndex, "write", write_meanwhile)
    store.maintain(collection)
    assert list((tmp_path / "indexes").iterdir()) == []
    store.close()


def test_a_later_snapshot_written_first_is_not_replaced_by_an_earlier_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(20)])
    write = VectorIndex.write

    def write_meanwhile(index: VectorIndex, path: Path) -> None:
        write(index, path)
        store.add_documents(collection, [document("late", 99)])
        store.close()  # writes every changed index, under the write lock, at once

    monkeypatch.setattr(VectorIndex, "write", write_meanwhile)
    store.maintain(collection)
    folder = tmp_path / "indexes"
    saved = VectorIndex.load(folder / f"{collection.id}.faiss", DIMENSION, "flat", IndexParams())
    assert saved.size == 21
    assert not list(folder.glob(".*"))


def test_commits_leave_the_log_to_the_checkpointing_thread(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    collection = new_collection(store)
    for n in range(5):
        store.add_documents(collection, [document(f"d{n}-{m}", 100 * n + m) for m in range(20)])
    reader = sqlite3.connect(store.database_path)
    pages = reader.execute("PRAGMA page_count").fetchone()[0]
    size = pages * reader.execute("PRAGMA page_size").fetchone()[0]
    reader.close()
    deadline = time.monotonic() + 10
    # far fewer pages than make a commit checkpoint the log itself: the thread copies them
    # into the database file, beside the writes
    while store.database_path.stat().st_size < size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.database_path.stat().st_size == size
    thread = checkpointer(store)
    assert thread.is_alive()
    store.close()
    assert not thread.is_alive()


def checkpointer(store: SqliteStore) -> threading.Thread:
    thread: threading.Thread = store._db._checkpointer._thread  # type: ignore[union-attr]
    return thread


def free_elsewhere(lock: Any) -> bool:
    """Whether another thread can take ``lock`` now."""
    taken: list[bool] = []

    def take() -> None:
        taken.append(lock.acquire(blocking=False))
        if taken[0]:
            lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    return taken == [True]
