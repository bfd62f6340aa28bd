"""Metadata filters refuse what they cannot express; chunks cover the text at its
boundaries."""

from __future__ import annotations

from typing import Any

import pytest

from aiplatform.engines.rag.chunking import split_text
from aiplatform.engines.rag.filters import compile_filter
from aiplatform.errors import InvalidRequestError


@pytest.mark.parametrize(
    "spec",
    [
        {"$where": "1"},
        {"a": {"$regex": "x"}},
        {"a": {}},
        {"a": {"$in": []}},
        {"a": {"$in": "x"}},
        {"a": {"$gt": None}},
        {"a": {"$exists": "yes"}},
        {"a": [1, 2]},
        {"a": {"$eq": {"b": 1}}},
        {"$or": []},
        {"$or": [1]},
        {"bad field'); DROP TABLE chunks; --": 1},
        [],
    ],
)
def test_filters_that_cannot_be_expressed_are_refused(spec: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        compile_filter(spec, "metadata")
    assert caught.value.param == "filter"
    assert caught.value.code == "invalid_filter"


def test_values_are_bound_never_spliced() -> None:
    sql, params = compile_filter({"name": "x' OR '1'='1"}, "metadata")
    assert "OR '1'" not in sql
    assert params == ["x' OR '1'='1"]


def test_chunks_cover_the_text_at_sentence_boundaries() -> None:
    sentences = [f"Sentence number {n} says something about item {n}." for n in range(40)]
    text = " ".join(sentences)
    chunks = split_text(text, 200, 60)
    assert all(len(chunk.text) <= 200 for chunk in chunks)
    assert all(text[chunk.start : chunk.end] == chunk.text for chunk in chunks)
    assert all(chunk.text.endswith(".") for chunk in chunks)
    for sentence in sentences:  # every sentence is whole in some chunk
        assert any(sentence in chunk.text for chunk in chunks)
    # consecutive chunks overlap by whole sentences
    assert chunks[1].start < chunks[0].end
    assert chunks[-1].end == len(text)


def test_text_without_boundaries_is_cut_at_the_size() -> None:
    chunks = split_text("x" * 250, 100, 0)
    assert [len(chunk.text) for chunk in chunks] == [100, 100, 50]
    assert split_text(" \n\n ", 100, 10) == []
