"""The in-memory metadata index against the filter language's reference: through adds,
removals, updates and compactions it selects exactly the chunks of the documents the reference
selects, refuses what compile_filter refuses with the same 400, and hands back sorted, unique
chunk ids."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiplatform.engines.rag.filters import compile_filter
from aiplatform.engines.rag.metadata_index import MetadataIndex
from aiplatform.errors import InvalidRequestError
from tests.unit.rag.test_filter_properties import (
    FILTERS,
    INVALID_FILTERS,
    METADATA,
    reference_match,
)

# -- against the reference -------------------------------------------------------------------------

DOCUMENTS = 8
#: Each document's chunks: one or two ids, handed out out of order so that sorting shows.
CHUNKS = st.permutations(range(100, 100 + 2 * DOCUMENTS)).flatmap(
    lambda ids: st.lists(st.booleans(), min_size=DOCUMENTS, max_size=DOCUMENTS).map(
        lambda two: [ids[2 * d : 2 * d + 1 + int(two[d])] for d in range(DOCUMENTS)]
    )
)
CHANGE = st.one_of(
    st.tuples(st.just("add"), st.integers(0, DOCUMENTS - 1), METADATA),
    st.tuples(st.just("update"), st.integers(0, DOCUMENTS - 1), METADATA),
    st.tuples(st.just("remove"), st.integers(0, DOCUMENTS - 1), st.none()),
    st.tuples(st.just("compact"), st.none(), st.none()),
)
PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Model:
    """What the index should hold: each document's metadata and chunks, in plain Python."""

    def __init__(self, chunks: list[list[int]]) -> None:
        self.chunks = chunks
        self.metadata: dict[int, dict[str, Any]] = {}

    def apply(self, index: MetadataIndex, change: tuple[str, Any, Any]) -> None:
        kind, document, metadata = change
        if kind == "add":
            index.add(document, metadata, np.array(self.chunks[document], dtype=np.int64))
            self.metadata[document] = metadata
        elif kind == "update" and document in self.metadata:
            index.update(document, metadata)
            self.metadata[document] = metadata
        elif kind == "remove":
            index.remove(document)
            self.metadata.pop(document, None)
        elif kind == "compact":
            index.compact()

    def expected(self, spec: dict[str, Any]) -> list[int]:
        return sorted(
            chunk
            for document, metadata in self.metadata.items()
            if reference_match(spec, metadata)
            for chunk in self.chunks[document]
        )


def _refusal(spec: Any) -> InvalidRequestError | None:
    try:
        compile_filter(spec, "metadata")
    except InvalidRequestError as refused:
        return refused
    return None


@PROPERTY
@given(
    spec=FILTERS | INVALID_FILTERS,
    rows=st.lists(METADATA, min_size=1, max_size=DOCUMENTS),
    changes=st.lists(CHANGE, max_size=8),
    chunks=CHUNKS,
)
def test_the_index_selects_what_the_reference_selects_or_refuses_as_sql_does(
    spec: Any, rows: list[dict[str, Any]], changes: list[tuple[str, Any, Any]], chunks: Any
) -> None:
    index, model = MetadataIndex(), Model(chunks)
    for document, metadata in enumerate(rows):
        model.apply(index, ("add", document, metadata))
    refusal = _refusal(spec)
    if refusal is not None:
        with pytest.raises(InvalidRequestError) as refused:
            index.matching(spec)
        assert (refused.value.message, refused.value.param, refused.value.code) == (
            refusal.message,
            refusal.param,
            refusal.code,
        )
        return
    assert index.matching(spec).tolist() == model.expected(spec)  # built, then changed
    for change in changes:
        model.apply(index, change)
    found = index.matching(spec)
    assert found.dtype == np.int64
    assert found.tolist() == model.expected(spec)
    expected_documents = {d for d, m in model.metadata.items() if reference_match(spec, m)}
    assert index.documents_matching(spec) == expected_documents
    assert index.size == len(model.metadata)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(spec=FILTERS, rows=st.lists(METADATA, min_size=70, max_size=140))
def test_compacting_by_itself_keeps_the_answers(spec: Any, rows: list[dict[str, Any]]) -> None:
    """Removing most documents compacts the index on its own; what is left still answers."""
    index = MetadataIndex()
    for document, metadata in enumerate(rows):
        index.add(document, metadata, [document])
    for document in range(0, len(rows), 3):
        index.update(document, rows[-1 - document])
    for document in range(len(rows)):
        if document % 3:
            index.remove(document)
    kept = {d: rows[-1 - d] for d in range(0, len(rows), 3)}
    expected = sorted(d for d, metadata in kept.items() if reference_match(spec, metadata))
    assert index.matching(spec).tolist() == expected


#: Values that sit on each other's boundaries: equal across types, one apart past 2^53, text
#: against numbers.
OPERANDS: list[Any] = [None, False, True, 0, 1, 1.0, 1.5, -1, 2**53 + 1, float(2**53), 2**63 - 1]
OPERANDS += [1e30, "", "a", "b", "A", "é", "1", "[1]"]
VALUES: list[Any] = [*OPERANDS, [1], [1, "a"], [None], [], {"x": 1}, {"x": "é"}, 10**30]


def test_every_operator_on_every_pair_of_values() -> None:
    rows: list[dict[str, Any]] = [{"v": value} for value in VALUES]
    rows += [{}, {"v": {"w": 1}}, {"v": {"w": None}}]
    index = MetadataIndex()
    for document, metadata in enumerate(rows):
        index.add(document, metadata, [document])
    for operator in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains"):
        for operand in OPERANDS:
            if operand is None and operator in ("$gt", "$gte", "$lt", "$lte"):
                continue
            value = [operand, "b"] if operator in ("$in", "$nin") else operand
            for spec in ({"v": {operator: value}}, {"v.w": {operator: value}}):
                expected = {d for d, metadata in enumerate(rows) if reference_match(spec, metadata)}
                assert index.documents_matching(spec) == expected, spec


# -- typical filters -------------------------------------------------------------------------------

BOOKS: list[dict[str, Any]] = [
    {"year": 1999, "lang": "en", "tags": ["a", "b"], "meta": {"pages": 120}, "draft": True},
    {"year": 2010, "lang": "fr", "tags": ["b"], "meta": {"pages": 300.5}},
    {"year": 2024, "lang": "de", "tags": "a", "draft": False},
    {"year": "unknown", "lang": None, "tags": []},
    {"lang": "en", "meta": {"pages": None, "by": {"name": "x"}}},
]


@pytest.fixture
def books() -> MetadataIndex:
    index = MetadataIndex()
    for document, metadata in enumerate(BOOKS):
        index.add(document, metadata, [10 * document, 10 * document + 1])
    return index


@pytest.mark.parametrize(
    ("spec", "documents"),
    [
        ({}, {0, 1, 2, 3, 4}),
        ({"lang": "en"}, {0, 4}),
        ({"lang": "en", "year": 1999}, {0}),
        ({"year": {"$gte": 2010}}, {1, 2, 3}),  # text sorts after every number
        ({"year": {"$gte": 2010, "$lt": 3000}}, {1, 2}),
        ({"year": {"$lt": "a"}}, {0, 1, 2}),
        ({"lang": {"$in": ["fr", "de"]}}, {1, 2}),
        ({"lang": {"$nin": ["fr", "de"]}}, {0, 3, 4}),  # null and missing are not in the list
        ({"lang": {"$ne": "en"}}, {1, 2, 3}),
        ({"lang": None}, {3}),
        ({"year": {"$eq": None}}, {4}),  # missing is null
        ({"tags": {"$contains": "a"}}, {0, 2}),  # an array's item, or the scalar itself
        ({"meta": {"$contains": 120}}, {0}),  # an object's values
        ({"meta.pages": {"$gt": 200}}, {1}),
        ({"meta.by.name": "x"}, {4}),
        ({"meta.pages": {"$exists": True}}, {0, 1, 4}),
        ({"draft": {"$exists": False}}, {1, 3, 4}),
        ({"draft": True}, {0}),
        ({"draft": 1}, {0}),  # true is 1
        ({"draft": 0.0}, {2}),
        ({"tags": '["b"]'}, {1}),  # an array compares as its JSON text
        ({"$or": [{"lang": "fr"}, {"year": {"$lt": 2000}}]}, {0, 1}),
        ({"$and": [{"lang": "en"}, {"$not": {"draft": True}}]}, {4}),
        ({"$not": {"year": {"$gt": 2000}}}, {0, 4}),
        ({"nowhere": {"$exists": False}, "year": 2024}, {2}),
        ({"nowhere": {"$nin": [1]}}, {0, 1, 2, 3, 4}),
        ({"nowhere": {"$gt": 1}}, set()),
    ],
)
def test_typical_filters(books: MetadataIndex, spec: dict[str, Any], documents: set[int]) -> None:
    assert books.documents_matching(spec) == documents
    expected = sorted(chunk for d in documents for chunk in (10 * d, 10 * d + 1))
    assert books.matching(spec).tolist() == expected
    assert documents == {d for d, metadata in enumerate(BOOKS) if reference_match(spec, metadata)}


def test_an_invalid_filter_is_the_filters_400(books: MetadataIndex) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        books.matching({"year": {"$regex": "19.*"}})
    assert (refused.value.status_code, refused.value.param) == (400, "filter")
    assert refused.value.code == "invalid_filter"


def test_removed_and_updated_documents_answer_as_they_are_now(books: MetadataIndex) -> None:
    books.remove(0)
    books.update(1, {"lang": "en"})
    books.remove(99)  # not there: nothing happens
    assert books.documents_matching({"lang": "en"}) == {1, 4}
    assert books.matching({"lang": "en"}).tolist() == [10, 11, 40, 41]
    assert books.size == 4
    with pytest.raises(KeyError):
        books.update(0, {})


def test_adding_a_document_again_replaces_it(books: MetadataIndex) -> None:
    books.add(2, {"lang": "en"}, [7])
    assert books.matching({"lang": "en"}).tolist() == [0, 1, 7, 40, 41]
    assert books.matching({"year": 2024}).size == 0


# -- chunk ids -------------------------------------------------------------------------------------


def test_chunk_ids_come_back_ascending_and_unique_whatever_the_order_they_came_in() -> None:
    index = MetadataIndex()
    rng = np.random.default_rng(7)
    ids = rng.permutation(np.arange(1, 3001, dtype=np.int64) * 1_000_003)
    for document in range(1000):
        index.add(document, {"shard": document % 4}, ids[3 * document : 3 * document + 3])
    for document in range(0, 1000, 7):  # re-added under new slots, their chunks unchanged
        index.update(document, {"shard": 9})
    found = index.matching({"shard": {"$in": [1, 9]}})
    assert found.dtype == np.int64
    assert bool(np.all(np.diff(found) > 0))
    expected = {
        int(chunk)
        for document in range(1000)
        if document % 7 == 0 or document % 4 == 1
        for chunk in ids[3 * document : 3 * document + 3]
    }
    assert set(found.tolist()) == expected
    assert found.size == len(expected)


def test_an_empty_index_and_a_document_without_chunks_match_no_chunk() -> None:
    index = MetadataIndex()
    assert index.matching({}).tolist() == []
    index.add(1, {"a": 1}, [])
    assert index.matching({"a": 1}).tolist() == []
    assert index.documents_matching({"a": 1}) == {1}


def test_size_and_memory_follow_the_documents() -> None:
    index = MetadataIndex()
    empty = index.memory_bytes
    for document in range(500):
        index.add(document, {"n": document, "tag": f"t{document % 5}"}, [document])
    assert index.size == 500
    index.matching({"n": 1})  # builds the sorted structures
    assert index.memory_bytes > empty + 500 * 16


def test_queries_while_another_thread_adds_see_whole_documents() -> None:
    index = MetadataIndex()
    failures: list[BaseException] = []

    def add_documents() -> None:
        try:
            for document in range(2000):
                index.add(document, {"even": document % 2 == 0}, [2 * document, 2 * document + 1])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    writer = threading.Thread(target=add_documents)
    writer.start()
    while writer.is_alive():
        found = index.matching({"even": True})
        assert bool(np.all(found % 4 < 2)), "a chunk of an odd document"
        assert found.size % 2 == 0, "a document with one of its two chunks"
    writer.join()
    assert not failures
    assert index.matching({"even": True}).size == 2000
