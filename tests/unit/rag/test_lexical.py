"""The in-memory word index: it ranks chunks as SQLite's FTS5 table did, forgets removed chunks
(in its file too), and turns a file it cannot trust into ``ValueError``."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiplatform.engines.rag import lexical
from aiplatform.engines.rag.index import Ids, Vectors
from aiplatform.engines.rag.lexical import LexicalIndex, cut_words, query_terms, terms, words

_SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "del", "ur", "sen", "pri", "nol", "ba"]
_SYLLABLES += ["fe", "gor", "il", "quin", "sta", "mu"]
#: Made-up words drawn with Zipf frequencies, as words in text are.
VOCABULARY = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES][:5000]
_ZIPF = np.cumsum(1.0 / np.arange(1, len(VOCABULARY) + 1))
_ZIPF /= _ZIPF[-1]
ENGLISH = [
    "The runner was running along the river while other runners ran behind",
    "Café owners in Zürich serve coffee; the cafés open early",
    "Possibly the most possible outcome of technology is more technologies",
    "A naïve approach: connect, connected, connecting, connections",
    "Generalizations generalize; general relativity generally holds",
    "Running shoes for runs in the rain",
    "Hopeful hopes, hoping for hopefulness",
    "Relational databases relate tables; relations relate rows",
]


def zipf_words(rng: np.random.Generator, count: int) -> str:
    return " ".join(VOCABULARY[i] for i in np.searchsorted(_ZIPF, rng.random(count)))


def corpus(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"item{n} {zipf_words(rng, int(rng.integers(12, 40)))}" for n in range(count)]


def ids_of(*values: int) -> Ids:
    return np.array(values, dtype=np.int64)


def indexed(texts: list[str], first_id: int = 1) -> LexicalIndex:
    index = LexicalIndex()
    index.add(np.arange(first_id, first_id + len(texts), dtype=np.int64), texts)
    return index


def found_ids(index: LexicalIndex, text: str, k: int = 10, allowed: Ids | None = None) -> list[int]:
    return [int(i) for i in index.search(text, k, allowed)[1]]


# -- the reference: an FTS5 table as the database kept it ----------------------------------------


def fts5_table(texts: list[str], first_id: int = 1) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE f USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')"
    )
    rows = [(first_id + n, text) for n, text in enumerate(texts)]
    db.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)", rows)
    return db


def fts5_search(
    db: sqlite3.Connection, text: str, k: int, allowed: Ids | None = None
) -> list[tuple[int, float]]:
    """The query the database ran: the OR of the first 64 distinct lower-cased words."""
    unique = list(dict.fromkeys(word.lower() for word in re.findall(r"\w+", text)))
    match = " OR ".join(f'"{word}"' for word in unique[:64])
    only = ""
    if allowed is not None:
        only = f"AND rowid IN ({', '.join(str(i) for i in allowed.tolist())})"
    rows = db.execute(
        f"SELECT rowid, bm25(f) AS rank FROM f WHERE f MATCH ? {only} ORDER BY rank LIMIT ?",
        (match, k),
    )
    return [(int(rowid), -float(rank)) for rowid, rank in rows]


def assert_same_ranking(
    mine: tuple[Vectors, Ids], reference: list[tuple[int, float]], query: str
) -> None:
    """Same scores rank for rank; the same ids except where scores tie at the cut-off."""
    scores, ids = mine
    expected = np.array([score for _, score in reference])
    assert scores.shape == expected.shape, query
    np.testing.assert_allclose(scores, expected, rtol=1e-5, err_msg=query)
    if not reference:
        return
    cutoff = expected[-1] * (1 + 1e-5)
    above_mine = {i for i, s in zip(ids.tolist(), scores.tolist(), strict=True) if s > cutoff}
    above_reference = {i for i, s in reference if s > cutoff}
    assert above_mine == above_reference, query


# -- words -----------------------------------------------------------------------------------------


def test_words_are_letter_and_digit_runs_lower_cased_without_diacritics() -> None:
    assert words("Hello, Wörld_x 42nd  ÉCOLE-naïve") == [
        "hello",
        "world",
        "x",
        "42nd",
        "ecole",
        "naive",
    ]
    assert words("e\u0301te\u0301") == ["ete"]  # combining accents inside a word


def test_terms_are_porter_stems_as_fts5_makes_them() -> None:
    assert terms("running runs cafés connections") == ["run", "run", "cafe", "connect"]
    # Words of fewer than three bytes are left alone, as FTS5 leaves them.
    assert terms("is as") == ["is", "as"]
    # The reference Porter rules FTS5 keeps: -bli → -ble, -logi → -log.
    assert terms("possibly technology") == ["possibl", "technolog"]


def test_a_query_is_its_first_64_distinct_words() -> None:
    many = " ".join(f"w{n}x" for n in range(100))
    assert len(query_terms(many)) == 64
    assert query_terms("Run run RUNNING") == {"run": 2}  # "run" and "running": two words


# -- searching -------------------------------------------------------------------------------------


def test_search_ranks_chunks_holding_more_of_the_query_first() -> None:
    index = indexed(["apple banana", "apple cherry", "banana split", "nothing here"])
    scores, ids = index.search("apple banana", 10)
    assert ids.tolist()[0] == 1
    assert set(ids.tolist()) == {1, 2, 3}
    assert scores.dtype == np.float32
    assert ids.dtype == np.int64
    assert np.all(np.diff(scores) <= 0)
    assert np.all(scores > 0)


def test_search_returns_at_most_k() -> None:
    index = indexed([f"common word{n}" for n in range(50)])
    assert len(found_ids(index, "common", k=7)) == 7
    assert found_ids(index, "common", k=0) == []


def test_ties_come_in_id_order() -> None:
    index = LexicalIndex()
    index.add(ids_of(30, 10, 20), ["same text", "same text", "same text"])
    assert found_ids(index, "same") == [10, 20, 30]
    assert found_ids(index, "same", k=2) == [10, 20]


def test_no_match_and_empty_query_give_empty_arrays() -> None:
    index = indexed(["apple banana"])
    for query in ("", "  ,;  ", "durian"):
        scores, ids = index.search(query, 5)
        assert scores.shape == (0,)
        assert ids.shape == (0,)
        assert scores.dtype == np.float32
        assert ids.dtype == np.int64
    assert LexicalIndex().search("apple", 5)[1].size == 0


def test_accents_case_and_word_forms_match() -> None:
    index = indexed(["Café running club", "tea house"])
    assert found_ids(index, "cafe runs") == [1]
    assert found_ids(index, "CAFÉS") == [1]


def test_allowed_limits_the_results() -> None:
    index = indexed([f"shared word{n}" for n in range(1, 101)])  # id n: word{n}
    allowed = ids_of(5, 50, 77, 1000)  # 1000 is not indexed
    assert found_ids(index, "shared", allowed=allowed) == [5, 50, 77]
    assert found_ids(index, "shared word50", allowed=allowed) == [50, 5, 77]
    assert found_ids(index, "shared", allowed=ids_of()) == []
    index.remove(ids_of(50))
    assert found_ids(index, "shared", allowed=allowed) == [5, 77]


# -- changes ---------------------------------------------------------------------------------------


def test_removed_chunks_are_not_found() -> None:
    index = indexed(["apple banana", "apple cherry", "banana split"])
    index.remove(ids_of(1, 99))  # 99 is not indexed: ignored
    assert sorted(found_ids(index, "apple banana")) == [2, 3]
    assert index.size == 2
    assert index.ids().tolist() == [2, 3]
    index.remove(ids_of(1))
    assert index.size == 2


def test_ids_are_ascending_whatever_the_order_added() -> None:
    index = LexicalIndex()
    index.add(ids_of(40, 7), ["a b", "c d"])
    index.add(ids_of(12), ["e f"])
    assert index.ids().tolist() == [7, 12, 40]
    assert index.size == 3


def test_an_indexed_id_cannot_be_added_again_until_removed() -> None:
    index = indexed(["apple"])
    with pytest.raises(ValueError, match="already"):
        index.add(ids_of(1), ["pear"])
    with pytest.raises(ValueError, match="repeated"):
        index.add(ids_of(5, 5), ["pear", "plum"])
    with pytest.raises(ValueError, match="texts"):
        index.add(ids_of(6), ["pear", "plum"])
    index.remove(ids_of(1))
    index.add(ids_of(1), ["pear"])
    assert found_ids(index, "pear") == [1]
    assert found_ids(index, "apple") == []
    assert index.ids().tolist() == [1]


def test_scores_count_only_live_chunks() -> None:
    """Removing chunks changes the statistics exactly as if they had never been added."""
    texts = corpus(400, seed=3)
    index = indexed(texts)
    gone = np.arange(1, 401, 7, dtype=np.int64)  # under a fifth: removed chunks stay as dead slots
    index.remove(gone)
    survivors = [n for n in range(1, 401) if n not in set(gone.tolist())]
    fresh = LexicalIndex()
    fresh.add(np.array(survivors, dtype=np.int64), [texts[n - 1] for n in survivors])
    rng = np.random.default_rng(4)
    for _ in range(30):
        query = zipf_words(rng, 3)
        mine, expected = index.search(query, 10), fresh.search(query, 10)
        np.testing.assert_allclose(mine[0], expected[0], rtol=1e-6)
        assert mine[1].tolist() == expected[1].tolist()


def test_compaction_keeps_results_and_frees_memory() -> None:
    texts = corpus(1000, seed=5)
    index = indexed(texts)
    rng = np.random.default_rng(6)
    index.remove(np.arange(1, 1001, 7, dtype=np.int64))  # under a fifth: dead slots kept
    queries = [zipf_words(rng, 4) for _ in range(30)]
    before_memory = index.memory_bytes
    before = [index.search(query, 10) for query in queries]
    # Past a fifth of the chunks dead: the index compacts itself.
    index.remove(np.arange(2, 1001, 9, dtype=np.int64))
    index.add(ids_of(5000), ["late arrival"])
    index.remove(ids_of(5000))
    assert index.memory_bytes < before_memory
    survivors = index.ids()
    fresh = LexicalIndex()
    fresh.add(survivors, [texts[n - 1] for n in survivors.tolist()])
    for query, earlier in zip(queries, before, strict=True):
        mine, expected = index.search(query, 10), fresh.search(query, 10)
        np.testing.assert_allclose(mine[0], expected[0], rtol=1e-6)
        assert mine[1].tolist() == expected[1].tolist()
        assert set(mine[1].tolist()) <= set(survivors.tolist())
        assert earlier[0].size == mine[0].size


def test_memory_grows_with_the_chunks() -> None:
    small, large = indexed(corpus(100, seed=1)), indexed(corpus(1000, seed=1))
    assert 0 < small.memory_bytes < large.memory_bytes
    assert LexicalIndex().memory_bytes == 0


def test_concurrent_adds_and_searches_do_not_interfere() -> None:
    index = LexicalIndex()
    texts = corpus(800, seed=8)
    failures: list[BaseException] = []

    def adder(first: int) -> None:
        try:
            for start in range(first, 800, 40):
                ids = np.arange(start + 1, start + 21, dtype=np.int64)
                index.add(ids, texts[start : start + 20])
        except BaseException as exc:
            failures.append(exc)

    def searcher(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(200):
                scores, ids = index.search(zipf_words(rng, 3), 5, allowed=ids_of(*range(1, 400)))
                assert scores.size == ids.size <= 5
                index.ids()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=adder, args=(first,)) for first in (0, 20)]
    threads += [threading.Thread(target=searcher, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert index.ids().tolist() == list(range(1, 801))


# -- files -----------------------------------------------------------------------------------------


def test_save_and_load_give_the_same_index(tmp_path: Path) -> None:
    texts = corpus(500, seed=9)
    index = LexicalIndex()
    index.add(np.arange(500, 0, -1, dtype=np.int64), texts)  # ids in descending order
    index.remove(ids_of(3, 250, 499))
    path = tmp_path / "words.npz"
    index.save(path)
    loaded = LexicalIndex.load(path)
    assert loaded.ids().tolist() == index.ids().tolist()
    assert loaded.size == index.size == 497
    rng = np.random.default_rng(10)
    allowed = np.arange(1, 500, 4, dtype=np.int64)
    for _ in range(20):
        query = zipf_words(rng, 3)
        for subset in (None, allowed):
            mine, theirs = index.search(query, 10, subset), loaded.search(query, 10, subset)
            np.testing.assert_array_equal(mine[0], theirs[0])
            np.testing.assert_array_equal(mine[1], theirs[1])
    loaded.add(ids_of(1000), ["brand new words"])
    assert found_ids(loaded, "brand") == [1000]
    assert not list(tmp_path.glob(".*.tmp"))


def test_words_cut_beforehand_are_indexed_as_their_texts_are() -> None:
    texts = corpus(300, seed=4) + ENGLISH
    ids = np.arange(1, len(texts) + 1, dtype=np.int64)
    from_texts, from_words = LexicalIndex(), LexicalIndex()
    from_texts.add(ids, texts)
    from_words.add(ids, cut_words(texts))
    assert from_words.ids().tolist() == from_texts.ids().tolist()
    assert from_words.memory_bytes == from_texts.memory_bytes
    for query in ["running cafe", "kalomi renta", ENGLISH[3]]:
        mine, theirs = from_words.search(query, 10), from_texts.search(query, 10)
        np.testing.assert_array_equal(mine[0], theirs[0])
        np.testing.assert_array_equal(mine[1], theirs[1])
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        LexicalIndex().add(ids_of(1, 2), cut_words(["one"]))


def test_a_term_new_to_the_vocabulary_gets_one_id_however_often_it_comes() -> None:
    index = LexicalIndex()
    index.add(ids_of(1), ["river"])
    assert index._term_ids(["delta", "river", "delta", "bank"]).tolist() == [1, 0, 1, 2]
    assert index._term_ids(["bank", "river"]).tolist() == [2, 0]


def test_a_file_holds_the_chunks_added_before_it_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = LexicalIndex()
    for start in range(0, 100, 10):  # several segments, merged for the file
        index.add(np.arange(start + 1, start + 11, dtype=np.int64), corpus(10, seed=start))
    merged = lexical._Segment.merged
    added: list[bool] = []

    def merged_meanwhile(segments: Sequence[Any]) -> Any:
        if not added:  # the file's merge, outside the lock: chunks can be added meanwhile
            added.append(True)
            index.add(ids_of(500), ["latecomer words"])
        return merged(segments)

    monkeypatch.setattr(lexical._Segment, "merged", staticmethod(merged_meanwhile))
    path = tmp_path / "words.npz"
    index.write(path)
    assert LexicalIndex.load(path).ids().tolist() == list(range(1, 101))
    assert index.ids().tolist() == [*range(1, 101), 500]
    assert found_ids(index, "latecomer") == [500]
    assert found_ids(LexicalIndex.load(path), "latecomer") == []
    index.write(path)  # nothing added meanwhile: the index keeps the merged segment
    assert len(index._segments) == 1
    assert LexicalIndex.load(path).ids().tolist() == index.ids().tolist()


def test_an_empty_index_saves_and_loads(tmp_path: Path) -> None:
    index = indexed(["only chunk"])
    index.remove(ids_of(1))
    index.save(tmp_path / "words.npz")
    loaded = LexicalIndex.load(tmp_path / "words.npz")
    assert loaded.size == 0
    assert loaded.ids().tolist() == []
    assert found_ids(loaded, "only") == []


def test_removed_words_leave_the_saved_file(tmp_path: Path) -> None:
    others = ["giraffe neck", "giraffe crossing", "lion", "tiger", "bear"]
    index = indexed(["zebra crossing", *others])
    index.remove(ids_of(1))  # a sixth: below the share at which removing compacts
    path = tmp_path / "words.npz"
    index.save(path)
    saved = path.read_bytes()
    assert b"giraff" in saved
    assert b"zebra" not in saved
    assert found_ids(LexicalIndex.load(path), "zebra crossing") == [3]


def test_saving_replaces_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "words.npz"
    index = indexed(["first words"])
    index.save(path)
    index.add(ids_of(2), ["second words"])
    index.save(path)
    assert LexicalIndex.load(path).ids().tolist() == [1, 2]


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "words.npz"
    indexed(corpus(50, seed=11)).save(path)
    good = path.read_bytes()
    damaged = tmp_path / "damaged.npz"
    variants = [b"", b"not an index", good[: len(good) // 2], good[:-1]]
    for position in range(len(good) // 10, len(good), len(good) // 10):
        flipped = bytearray(good)
        flipped[position] ^= 0xFF
        variants.append(bytes(flipped))
    for variant in variants:
        damaged.write_bytes(variant)
        with pytest.raises(ValueError, match=r"damaged\.npz"):
            LexicalIndex.load(damaged)
    with pytest.raises(ValueError, match=r"missing\.npz"):
        LexicalIndex.load(tmp_path / "missing.npz")


def test_a_file_of_another_version_or_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "words.npz"
    indexed(["some words", "more words"]).save(path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    out_of_range = arrays["slots"].copy()
    out_of_range[-1] = arrays["ids"].size
    changes = {
        "version": (np.array([2], dtype=np.int64), "version"),
        "slots": (out_of_range, "out of range"),
        "ids": (arrays["ids"].astype(np.int32), "ids is int32"),
        "vocabulary": (np.frombuffer(b"\xff\xfe", dtype=np.uint8), "decode"),
        "starts": (arrays["starts"][:-1], "vocabulary"),
    }
    for name, (value, reason) in changes.items():
        other = tmp_path / f"{name}.npz"
        np.savez(other, **{**arrays, name: value})
        with pytest.raises(ValueError, match=rf"{name}\.npz.*{reason}"):
            LexicalIndex.load(other)
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, **{k: v for k, v in arrays.items() if k != "freqs"})
    with pytest.raises(ValueError, match=r"incomplete\.npz.*freqs"):
        LexicalIndex.load(incomplete)


# -- agreement with FTS5 ---------------------------------------------------------------------------


@pytest.mark.parametrize("removed_share", [0.0, 0.1, 0.3])
def test_rankings_agree_with_fts5(removed_share: float) -> None:
    texts = corpus(3000, seed=12)
    index, db = indexed(texts), fts5_table(texts)
    rng = np.random.default_rng(13)
    if removed_share:
        gone = rng.choice(np.arange(1, 3001), size=int(removed_share * 3000), replace=False)
        index.remove(gone.astype(np.int64))
        db.executemany("DELETE FROM f WHERE rowid = ?", [(int(i),) for i in gone])
    allowed = np.sort(rng.choice(np.arange(1, 3001), size=300, replace=False)).astype(np.int64)
    for n in range(100):
        query = zipf_words(rng, int(rng.integers(1, 7)))
        if n % 10 == 0:
            query += " unseenword Item42"
        subset = allowed if n % 4 == 0 else None
        assert_same_ranking(
            index.search(query, 10, subset), fts5_search(db, query, 10, subset), query
        )


def test_rankings_agree_with_fts5_on_english() -> None:
    index, db = indexed(ENGLISH), fts5_table(ENGLISH)
    queries = [
        "run running runner",
        "cafe coffee",
        "possible technologies",
        "naive connection",
        "general relativity",
        "hope hoping",
        "relate relational",
        "the",
    ]
    for query in queries:
        reference = fts5_search(db, query, 5)
        assert reference, query
        assert_same_ranking(index.search(query, 5), reference, query)


def test_a_word_left_only_by_removed_chunks_among_wordless_ones_scores_nothing() -> None:
    index = LexicalIndex()
    index.add(np.arange(10, dtype=np.int64), ["hello", *["!!! ???"] * 9])
    index.remove(np.array([0], dtype=np.int64))  # 10 % dead: not compacted, "hello" stays
    scores, ids = index.search("hello", 5)
    assert ids.size == 0
    assert scores.size == 0
