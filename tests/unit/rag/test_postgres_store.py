"""The PostgreSQL store end to end on a real PostgreSQL with pgvector: collections per owner,
documents, the three searches and filters, several stores (replicas) on one database whose
in-memory indexes follow each other's changes, and a database that cannot be reached."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import psycopg
import pytest

from aiplatform.api.rag import SearchRequest
from aiplatform.engines.rag import postgres_store
from aiplatform.engines.rag.chunking import split_text
from aiplatform.engines.rag.index import IndexParams
from aiplatform.engines.rag.postgres_store import PostgresStore
from aiplatform.engines.rag.search import search_collection
from aiplatform.engines.rag.store import CollectionRow, PreparedDocument
from aiplatform.errors import (
    AIPlatformError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from tests.unit.auth_store.postgres_server import postgres_server
from tests.unit.rag.postgres import DIMENSION, document, unit_vectors


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def new_store(url: str, params: IndexParams | None = None, **options: Any) -> PostgresStore:
    return PostgresStore(url, params or IndexParams(), **{"timeout_s": 2.0, **options})


def open_store(url: str, **options: Any) -> PostgresStore:
    store = new_store(url, **options)
    store.open()
    return store


@pytest.fixture
def store(database_url: str) -> Iterator[PostgresStore]:
    opened = open_store(database_url)
    yield opened
    opened.close()


@pytest.fixture
def owner() -> str:
    """An owner of this test's own (the database is shared by the module's tests)."""
    return f"owner-{uuid.uuid4().hex[:8]}"


def new_collection(
    store: PostgresStore, owner: str, index: str = "flat", dimension: int = DIMENSION
) -> CollectionRow:
    return store.create_collection(
        owner,
        "documents",
        f"c-{index}-{uuid.uuid4().hex[:6]}",
        embedding_model="m",
        dimension=dimension,
        index_type=index,
        metadata={"purpose": "test"},
    )


def text_document(key: str, text: str, seed: int = 0, **metadata: Any) -> PreparedDocument:
    return PreparedDocument(
        id=key,
        text=text,
        metadata=metadata,
        chunks=split_text(text, 1000, 0),
        vectors=unit_vectors(1, seed),
    )


def raises(error: type[AIPlatformError], call: Callable[[], object]) -> AIPlatformError:
    with pytest.raises(error) as caught:
        call()
    return caught.value


# -- collections ---------------------------------------------------------------------------------


def test_collections_are_found_only_through_their_owner_and_kind(
    store: PostgresStore, owner: str
) -> None:
    first = store.create_collection(
        owner, "documents", "notes", embedding_model="m", dimension=8, index_type="flat",
        metadata={"b": 1, "a": [2]}, shortened=True,
    )  # fmt: skip
    second = new_collection(store, owner)
    other = f"{owner}-other"
    theirs = store.create_collection(
        other, "documents", "notes", embedding_model="m", dimension=8, index_type="flat",
        metadata={},
    )  # fmt: skip
    assert store.collection(owner, "documents", "notes") == first
    assert store.collection(owner, "documents", first.id) == first
    assert store.find_collection(owner, "documents", "notes") == first
    assert store.find_collection(owner, "memory", "notes") is None
    in_order = sorted([first, second], key=lambda row: (row.created_at, row.id))
    assert store.list_collections(owner, "documents") == in_order
    assert store.list_collections(owner, "memory") == []
    assert store.collection(other, "documents", "notes") == theirs
    missing = raises(NotFoundError, lambda: store.collection(owner, "documents", theirs.id))
    assert (missing.param, missing.code) == ("collection_id", "collection_not_found")
    taken = raises(
        ConflictError,
        lambda: store.create_collection(
            owner, "documents", "notes", embedding_model="m", dimension=8, index_type="hnsw",
            metadata={},
        ),
    )  # fmt: skip
    assert (taken.status_code, taken.param, taken.code) == (409, "name", "collection_exists")
    store.delete_collection(first)
    assert store.find_collection(owner, "documents", "notes") is None
    assert store.collection(other, "documents", "notes") == theirs


def test_deleting_a_collection_takes_its_rows_its_log_and_its_indexes(
    store: PostgresStore, owner: str, database_url: str
) -> None:
    collection = new_collection(store, owner, "hnsw")
    kept = new_collection(store, owner, "hnsw")
    store.add_documents(collection, [document(f"d{n}", n) for n in range(5)])
    store.add_documents(kept, [document("k", 1)])
    assert store.indexed_count(collection) == 5
    store.delete_collection(collection)
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            "SELECT (SELECT count(*) FROM rag_documents WHERE collection_id = %s), "
            "(SELECT count(*) FROM rag_chunks WHERE collection_id = %s), "
            "(SELECT count(*) FROM rag_changes WHERE collection_id = %s)",
            (collection.id, collection.id, collection.id),
        ).fetchone()
    assert rows == (0, 0, 0)
    assert store.indexed_count(collection) is None
    assert store.counts(kept) == (1, 1)
    gone = raises(
        NotFoundError, lambda: store.vector_search(collection, unit_vectors(1, 1), 1, None)
    )
    assert gone.code == "collection_not_found"
    adding = raises(NotFoundError, lambda: store.add_documents(collection, [document("x", 1)]))
    assert adding.code == "collection_not_found"


def test_dimensions_beyond_pgvector_are_refused(store: PostgresStore, owner: str) -> None:
    refused = raises(InvalidRequestError, lambda: new_collection(store, owner, "hnsw", 16_001))
    assert (refused.param, refused.code) == ("dimension", "dimension_too_large")
    wide = new_collection(store, owner, "hnsw", 2_001)  # beyond pgvector's indexes: ours serve
    vectors = unit_vectors(3, 5, 2_001)
    store.add_documents(
        wide,
        [
            PreparedDocument(
                id=str(n), text=f"t{n}", metadata={}, chunks=split_text(f"t{n}", 100, 0),
                vectors=vectors[n : n + 1],
            )
            for n in range(3)
        ],
    )  # fmt: skip
    hits = store.vector_search(wide, vectors[1:2], 3, None)
    assert store.chunk_records(wide, [hits[0][0]])[hits[0][0]].document_id == "1"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)


# -- documents -----------------------------------------------------------------------------------


def test_documents_are_added_read_paged_updated_and_deleted(
    store: PostgresStore, owner: str
) -> None:
    collection = new_collection(store, owner)
    added = store.add_documents(
        collection,
        [
            text_document("b", "Second text", 2, tag="x"),
            text_document("a", "First text", 1, tag="y"),
            text_document("é", "Third text", 3),
            text_document("Z", "Fourth text", 4),
        ],
    )
    assert [row.id for row in added] == ["b", "a", "é", "Z"]
    assert [row.pk for row in added] == sorted(row.pk for row in added)
    assert store.counts(collection) == (4, 4)
    assert store.indexed_count(collection) == 4
    read = store.document(collection, "a", text=True)
    assert (read.text, read.metadata, read.characters, read.chunk_count) == (
        "First text", {"tag": "y"}, 10, 1,
    )  # fmt: skip
    assert store.document(collection, "a", text=False).text is None
    # ids in code point order, as SQLite orders them
    page, more = store.list_documents(collection, limit=2, after=None)
    assert ([row.id for row in page], more) == (["Z", "a"], True)
    page, more = store.list_documents(collection, limit=2, after="a")
    assert ([row.id for row in page], more) == (["b", "é"], False)
    by_insertion, _ = store.list_documents(collection, limit=10, after=None, order="pk")
    assert [row.id for row in by_insertion] == ["b", "a", "é", "Z"]
    after_first, _ = store.list_documents(collection, limit=10, after=str(added[0].pk), order="pk")
    assert [row.id for row in after_first] == ["a", "é", "Z"]
    assert [row.id for row in store.latest_documents(collection, 2)] == ["é", "Z"]
    assert store.latest_documents(collection, 2)[0].text == "Third text"
    assert store.existing_document_ids(collection, ["a", "q", "Z"]) == {"a", "Z"}
    updated = store.update_metadata(collection, "a", {"tag": "x", "n": {"k": [1, 2]}})
    assert updated.metadata == {"tag": "x", "n": {"k": [1, 2]}}
    assert len(store.matching_chunk_ids(collection, {"tag": "x"})) == 2
    store.delete_document(collection, "b")
    assert store.counts(collection) == (3, 3)
    for call in (
        lambda: store.delete_document(collection, "b"),
        lambda: store.document(collection, "b", text=False),
        lambda: store.update_metadata(collection, "b", {}),
    ):
        gone = raises(NotFoundError, call)
        assert (gone.param, gone.code) == ("document_id", "document_not_found")


def test_a_batch_with_a_taken_id_is_refused_whole(store: PostgresStore, owner: str) -> None:
    collection = new_collection(store, owner)
    store.add_documents(collection, [document("d1", 1)])
    taken = raises(
        ConflictError,
        lambda: store.add_documents(collection, [document("d2", 2), document("d1", 3)]),
    )
    assert (taken.status_code, taken.param, taken.code) == (409, "id", "document_exists")
    assert "'d1'" in taken.message
    twice = raises(
        ConflictError,
        lambda: store.add_documents(collection, [document("d3", 3), document("d3", 4)]),
    )
    assert "'d3'" in twice.message
    assert store.counts(collection) == (1, 1)  # all or none


def test_metadata_keys_order_and_text_survive_and_u0000_is_handled(
    store: PostgresStore, owner: str
) -> None:
    collection = new_collection(store, owner)
    metadata: dict[str, Any] = {"z": 1, "a": {"y": [1.5, "é"], "b": None}, "k": "a\x00"}
    store.add_documents(collection, [text_document("d", "a\x00b", **metadata)])
    read = store.document(collection, "d", text=True)
    assert list(read.metadata) == ["z", "a", "k"]
    assert read.metadata == metadata  # the exact JSON text, escapes and all
    assert read.text == "a\ufffdb"  # PostgreSQL's text cannot hold U+0000; offsets still hold
    assert store.update_metadata(collection, "d", {"k\x00": 1}).metadata == {"k\x00": 1}
    assert store.matching_chunk_ids(collection, {"a.y": {"$contains": "é"}}).size == 0


# -- search --------------------------------------------------------------------------------------


def exact_ranking(query: np.ndarray, vectors: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-(vectors @ query[0]), kind="stable")]


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_vector_search_ranks_by_cosine_similarity(
    store: PostgresStore, owner: str, index: str
) -> None:
    collection = new_collection(store, owner, index)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(200)])
    chunk_of = {int(store.matching_chunk_ids(collection, {"n": n})[0]): n for n in range(200)}
    stored = np.concatenate([unit_vectors(1, n) for n in range(200)])
    query = unit_vectors(1, 9999)
    hits = store.vector_search(collection, query, 10, None)
    assert [chunk_of[chunk] for chunk, _ in hits] == exact_ranking(query, stored)[:10]
    expected = np.sort(stored @ query[0])[::-1][:10]
    np.testing.assert_allclose([score for _, score in hits], expected, atol=1e-5)
    own = store.vector_search(collection, unit_vectors(1, 42), 1, None)
    assert chunk_of[own[0][0]] == 42
    assert own[0][1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_a_filtered_search_keeps_to_the_matching_chunks(
    store: PostgresStore, owner: str, index: str
) -> None:
    collection = new_collection(store, owner, index)
    store.add_documents(collection, [document(f"d{n}", n) for n in range(400)])
    wanted = {"n": {"$in": list(range(0, 400, 8))}}  # 50 scattered matches
    allowed = store.matching_chunk_ids(collection, wanted)
    assert allowed.tolist() == sorted(allowed.tolist())
    assert allowed.size == 50
    found = store.vector_search(collection, unit_vectors(1, 3), 10, allowed)
    assert {chunk for chunk, _ in found} <= set(allowed.tolist())
    request = SearchRequest(query="x", mode="vector", top_k=50, filter=wanted)
    hits = search_collection(
        store, collection, request, unit_vectors(1, 9999), exact_filter_limit=10
    )
    assert {hit.metadata["n"] for hit in hits} == set(range(0, 400, 8))


def test_exact_search_scores_every_given_chunk(store: PostgresStore, owner: str) -> None:
    collection = new_collection(store, owner, "hnsw")
    store.add_documents(collection, [document(f"d{n}", n) for n in range(30)])
    ids = store.matching_chunk_ids(collection, {"n": {"$lt": 10}})
    query = unit_vectors(1, 5)
    hits = store.exact_search(collection, query, 4, ids)
    vectors = store.chunk_vectors(collection, ids)
    scores = {chunk: float(vector @ query[0]) for chunk, vector in vectors.items()}
    best = sorted(scores, key=lambda chunk: -scores[chunk])[:4]
    assert [chunk for chunk, _ in hits] == best
    np.testing.assert_allclose([s for _, s in hits], [scores[c] for c in best], atol=1e-5)
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)  # d5 itself


def test_lexical_search_stems_ranks_and_keeps_to_allowed(store: PostgresStore, owner: str) -> None:
    collection = new_collection(store, owner)
    store.add_documents(
        collection,
        [
            text_document("run", "The runners were running along the river.", kind="a"),
            text_document("cat", "A cat sleeps on the warm windowsill.", kind="b"),
            text_document("both", "Cats run; a cat runs.", kind="b"),
            text_document("none", "Nothing to see here.", kind="a"),
        ],
    )
    chunk_of = {
        record.document_id: chunk
        for chunk, record in store.chunk_records(
            collection, store.matching_chunk_ids(collection, {}).tolist()
        ).items()
    }
    hits = store.lexical_search(collection, "cats running", 10, None)
    assert hits[0][0] == chunk_of["both"]  # both words, stemmed
    assert {chunk for chunk, _ in hits} == {chunk_of[key] for key in ("run", "cat", "both")}
    assert all(score > 0 for _, score in hits)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
    allowed = store.matching_chunk_ids(collection, {"kind": "a"})
    assert store.lexical_search(collection, "cats running", 10, allowed) == [
        hit for hit in hits if hit[0] == chunk_of["run"]
    ]
    assert store.lexical_search(collection, "zebras", 10, None) == []
    assert store.lexical_search(collection, "!!! ...", 10, None) == []
    hostile = "cat' & | !( :* <-> \\ \" ) run:A ''"
    assert {chunk for chunk, _ in store.lexical_search(collection, hostile, 10, None)} == {
        chunk_of[key] for key in ("run", "cat", "both")
    }


def test_chunk_records_and_vectors_are_read_back(store: PostgresStore, owner: str) -> None:
    collection = new_collection(store, owner)
    other = new_collection(store, owner)
    text = "One sentence here. " * 20
    prepared = PreparedDocument(
        id="long", text=text, metadata={"k": 1}, chunks=split_text(text, 120, 0),
        vectors=unit_vectors(len(split_text(text, 120, 0)), 3),
    )  # fmt: skip
    store.add_documents(collection, [prepared])
    store.add_documents(other, [document("x", 1)])
    ids = store.matching_chunk_ids(collection, {}).tolist()
    assert len(ids) == len(prepared.chunks) > 1
    records = store.chunk_records(collection, ids)
    for chunk_id, chunk in zip(ids, prepared.chunks, strict=True):
        record = records[chunk_id]
        assert (record.document_id, record.text, record.start, record.end, record.metadata) == (
            "long", chunk.text, chunk.start, chunk.end, {"k": 1},
        )  # fmt: skip
    vectors = store.chunk_vectors(collection, np.asarray(ids))
    np.testing.assert_array_equal(np.stack([vectors[i] for i in ids]), prepared.vectors)
    assert vectors[ids[0]].dtype == np.float32
    foreign = int(store.matching_chunk_ids(other, {})[0])
    assert store.chunk_records(collection, [foreign]) == {}
    assert store.chunk_vectors(collection, [foreign]) == {}


def test_filters_select_the_matching_documents_chunks(store: PostgresStore, owner: str) -> None:
    collection = new_collection(store, owner)
    docs = [document(f"d{n}", n) for n in range(10)]
    docs[3] = document("d3", 3, metadata={"tags": ["a", "b"], "nested": {"level": 2}})
    store.add_documents(collection, docs)

    def ids(spec: dict[str, object]) -> set[int]:
        return set(store.matching_chunk_ids(collection, spec).tolist())

    assert len(ids({})) == 10
    assert len(ids({"n": {"$gte": 5}})) == 5
    assert len(ids({"n": {"$ne": 4}})) == 9
    assert len(ids({"n": {"$nin": [1, 2]}})) == 8
    assert len(ids({"n": {"$exists": False}})) == 1
    assert ids({"tags": {"$contains": "b"}}) == ids({"nested.level": 2})
    assert len(ids({"$not": {"n": {"$lt": 8}}})) == 3
    assert ids({"$and": [{"n": {"$gt": 1}}, {"n": {"$lt": 3}}]}) == ids({"n": 2})
    bad = raises(InvalidRequestError, lambda: ids({"n": {"$regex": "x"}}))
    assert (bad.param, bad.code) == ("filter", "invalid_filter")


# -- replicas --------------------------------------------------------------------------------------


def test_two_stores_on_one_database_see_each_others_writes_at_once(
    database_url: str, owner: str
) -> None:
    first, second = open_store(database_url), open_store(database_url)
    try:
        collection = new_collection(first, owner, "hnsw")
        assert second.collection(owner, "documents", collection.name) == collection
        first.add_documents(collection, [text_document("falls", "The waterfall drops.", 1)])
        assert second.counts(collection) == (1, 1)
        found = second.lexical_search(collection, "waterfalls", 5, None)
        assert [second.chunk_records(collection, [found[0][0]])[found[0][0]].document_id] == [
            "falls"
        ]
        assert second.vector_search(collection, unit_vectors(1, 1), 1, None)[0][0] == found[0][0]
        second.delete_document(collection, "falls")
        assert first.counts(collection) == (0, 0)
        assert first.vector_search(collection, unit_vectors(1, 1), 1, None) == []
        second.delete_collection(collection)
        assert first.find_collection(owner, "documents", collection.name) is None
    finally:
        first.close()
        second.close()


def indexed(
    store: PostgresStore, collection: CollectionRow
) -> tuple[list[int], list[int], list[int]]:
    """The chunk ids that the store's vector, lexical and metadata indexes of ``collection``
    hold."""
    loaded = store.indexes.current(collection)
    return (
        sorted(loaded.index.ids().tolist()),
        sorted(loaded.lexical.ids().tolist()),
        sorted(loaded.metadata.matching({}).tolist()),
    )


def stored_chunks(database_url: str, collection: CollectionRow) -> list[int]:
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            "SELECT id FROM rag_chunks WHERE collection_id = %s ORDER BY id", (collection.id,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def builds(caplog: pytest.LogCaptureFixture, collection: CollectionRow) -> int:
    return sum(f"built the indexes of {collection.id}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_a_replica_catches_its_indexes_up_with_anothers_changes(
    database_url: str, owner: str, index: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiplatform.engines.rag.postgres_indexes")
    first, second = open_store(database_url), open_store(database_url)
    try:
        collection = new_collection(first, owner, index)
        first.add_documents(collection, [document(f"d{n}", n, "alpha") for n in range(6)])
        assert len(second.lexical_search(collection, "alpha", 10, None)) == 6  # built here
        first.add_documents(collection, [text_document("new", "A zebra grazes.", 50, tag="z")])
        first.delete_document(collection, "d2")
        first.update_metadata(collection, "d4", {"tag": "z"})
        first.add_documents(collection, [document("gone", 60)])
        first.delete_document(collection, "gone")  # added and removed: never indexed there
        hits = second.lexical_search(collection, "zebra", 5, None)
        assert [second.chunk_records(collection, [hits[0][0]])[hits[0][0]].document_id] == ["new"]
        tagged = second.matching_chunk_ids(collection, {"tag": "z"})
        records = second.chunk_records(collection, tagged.tolist())
        assert sorted(record.document_id for record in records.values()) == ["d4", "new"]
        assert len(second.lexical_search(collection, "alpha", 10, None)) == 5
        own = second.vector_search(collection, unit_vectors(1, 50), 1, None)
        assert own[0][0] == hits[0][0]
        expected = stored_chunks(database_url, collection)
        assert indexed(second, collection) == (expected, expected, expected)
        assert indexed(first, collection) == (expected, expected, expected)
        assert builds(caplog, collection) == 1  # caught up from the log, never built again
    finally:
        first.close()
        second.close()


def test_a_replica_behind_the_kept_log_builds_its_indexes_again(
    database_url: str, owner: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiplatform.engines.rag.postgres_indexes")
    monkeypatch.setattr(postgres_store, "KEPT_CHANGES", 2)
    first, second = open_store(database_url), open_store(database_url)
    try:
        collection = new_collection(first, owner)
        first.add_documents(collection, [document("d0", 0)])
        assert second.indexed_count(collection) is None
        second.vector_search(collection, unit_vectors(1, 0), 1, None)
        for n in range(1, 6):
            first.add_documents(collection, [document(f"d{n}", n)])
        first.delete_document(collection, "d0")
        first.maintain(collection)
        with psycopg.connect(database_url) as db:
            kept = db.execute(
                "SELECT version FROM rag_changes WHERE collection_id = %s ORDER BY version",
                (collection.id,),
            ).fetchall()
        assert [row[0] for row in kept] == [6, 7]
        expected = stored_chunks(database_url, collection)
        assert indexed(second, collection) == (expected, expected, expected)
        assert builds(caplog, collection) == 2  # first use, then the log no longer reached
    finally:
        first.close()
        second.close()


def test_a_replica_trains_an_index_that_others_changes_grew(database_url: str, owner: str) -> None:
    """Maintenance is scheduled by a replica's own writes; one that only catches up says when a
    rebuild is due, and its maintenance trains the index from the database."""
    first = open_store(database_url)
    second = new_store(database_url, params=IndexParams(ivf_min_train=256))
    second.open()
    try:
        collection = new_collection(first, owner, "ivf")
        first.add_documents(collection, [document("d0", 0)])
        second.vector_search(collection, unit_vectors(1, 0), 1, None)
        first.add_documents(collection, [document(f"d{n}", n) for n in range(1, 400)])
        assert not second.maintenance_due(collection)  # not caught up yet
        own = second.vector_search(collection, unit_vectors(1, 7), 1, None)
        assert not second.indexes.current(collection).index.is_trained
        assert second.maintenance_due(collection)
        second.maintain(collection)
        assert not second.maintenance_due(collection)
        trained = second.indexes.current(collection).index
        assert trained.is_trained
        assert trained.size == 400
        assert second.vector_search(collection, unit_vectors(1, 7), 1, None) == own
    finally:
        first.close()
        second.close()


def test_replicas_writing_one_collection_at_once_keep_every_index_whole(
    database_url: str, owner: str
) -> None:
    stores = [open_store(database_url) for _ in range(3)]
    try:
        collection = new_collection(stores[0], owner)

        def write(n: int) -> None:
            store = stores[n % 3]
            store.add_documents(collection, [document(f"w{n}-{k}", 100 * n + k) for k in range(3)])
            if n % 4 == 0:
                store.delete_document(collection, f"w{n}-0")
            if n % 5 == 0:
                store.update_metadata(collection, f"w{n}-1", {"tag": "late"})
            store.vector_search(collection, unit_vectors(1, n), 3, None)

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(write, range(40)))
        expected = stored_chunks(database_url, collection)
        assert len(expected) == 40 * 3 - 10
        for store in stores:
            assert indexed(store, collection) == (expected, expected, expected)
            assert store.matching_chunk_ids(collection, {"tag": "late"}).size == 8
    finally:
        for store in stores:
            store.close()


def race(stores: list[PostgresStore], call: Callable[[PostgresStore], object]) -> list[str]:
    """``call`` on every store at the same moment: "ok", or the error code of each."""
    barrier = threading.Barrier(len(stores))

    def run(store: PostgresStore) -> str:
        barrier.wait()
        try:
            call(store)
        except AIPlatformError as error:
            return str(error.code)
        return "ok"

    with ThreadPoolExecutor(len(stores)) as pool:
        return sorted(pool.map(run, stores))


def test_stores_racing_for_one_document_id_or_name_let_one_win(
    database_url: str, owner: str
) -> None:
    stores = [open_store(database_url) for _ in range(3)]
    try:
        collection = new_collection(stores[0], owner)
        for turn in range(5):
            batch = [document(f"turn-{turn}", turn)]
            outcome = race(stores, lambda store: store.add_documents(collection, batch))  # noqa: B023
            assert outcome == ["document_exists", "document_exists", "ok"]
        assert stores[1].counts(collection) == (5, 5)
        outcome = race(stores, lambda store: new_collection_named(store, owner, "same"))
        assert outcome == ["collection_exists", "collection_exists", "ok"]
    finally:
        for store in stores:
            store.close()


def new_collection_named(store: PostgresStore, owner: str, name: str) -> CollectionRow:
    return store.create_collection(
        owner, "memory", name, embedding_model="m", dimension=DIMENSION, index_type="hnsw",
        metadata={},
    )  # fmt: skip


def test_stores_opening_together_on_an_empty_database_make_its_tables_once(
    database_url: str,
) -> None:
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    url = database_url.replace("/postgres?", f"/{name}?")
    stores = [new_store(url, timeout_s=5.0) for _ in range(4)]
    assert race(stores, lambda store: store.open()) == ["ok"] * 4
    collection = new_collection(stores[0], "owner", "hnsw")
    stores[0].add_documents(collection, [document("d", 1)])
    assert stores[3].counts(collection) == (1, 1)
    for store in stores:
        store.close()


# -- an unreachable database -----------------------------------------------------------------------


def test_an_unreachable_database_is_a_503_at_open(tmp_path: Any) -> None:
    store = new_store(f"postgresql://nobody@/none?host={tmp_path}", timeout_s=1.0)
    lost = raises(ServiceUnavailableError, store.open)
    assert (lost.status_code, lost.code) == (503, "rag_database_unavailable")
    store.close()


def test_a_database_lost_after_open_is_a_503_not_a_hang(owner: str) -> None:
    with postgres_server() as url:
        store = open_store(url, max_connections=2, timeout_s=1.0)
        collection = new_collection(store, owner)
        store.add_documents(collection, [document("d", 1)])
    # the server and its files are gone
    for call in (
        lambda: store.counts(collection),
        lambda: store.add_documents(collection, [document("e", 2)]),
        lambda: store.vector_search(collection, unit_vectors(1, 1), 1, None),
    ):
        lost = raises(ServiceUnavailableError, call)
        assert (lost.status_code, lost.code) == (503, "rag_database_unavailable")
    store.close()
