"""One collection's word index: chunks ranked by BM25 in memory, the way SQLite's FTS5 ranks
them with ``tokenize='porter unicode61 remove_diacritics 2'`` and ``bm25()``.

Like the vector index beside it, it is derived from the database and can always be rebuilt
from it; :meth:`LexicalIndex.ids` lets the store compare the two and catch up after a crash.

Words are runs of Unicode letters and digits, lower-cased, without diacritics, Porter-stemmed.
A query is the OR of its first 64 distinct words. Scores follow FTS5's ``bm25`` (k1 = 1.2,
b = 0.75, IDF ``log((N - n + 0.5) / (n + 0.5))`` raised to at least 1e-6) over the live chunks,
with the sign turned so that higher is better.

Layout: each chunk takes the next *slot*. Postings (slot and term frequency, grouped by term)
live in numpy segments: every :meth:`~LexicalIndex.add` freezes its chunks into a small segment,
and segments of similar size are merged, so a chunk is copied O(log n) times however the
chunks arrive. Removed chunks are dead slots until the dead share passes a fifth, or the index
is saved; then the segments are compacted into one that holds neither their slots nor words
that only they used.
"""

from __future__ import annotations

import functools
import importlib
import math
import operator
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiplatform.engines.rag.index import Ids, Vectors
from aiplatform.storage.durable import fsync_directory

__all__ = [
    "MAX_QUERY_WORDS",
    "ChunkWords",
    "LexicalIndex",
    "cut_words",
    "query_terms",
    "terms",
    "words",
]

#: FTS5's bm25 constants.
K1 = 1.2
B = 0.75
_MIN_IDF = 1e-6
#: Distinct query words used, as the FTS5 query took.
MAX_QUERY_WORDS = 64
#: The dead share of slots from which the index compacts itself.
_DEAD_SHARE = 0.2
#: Term frequencies are stored in 16 bits; a word repeated more often in one chunk counts this
#: many times (its BM25 weight has long stopped growing by then).
_MAX_FREQUENCY = np.iinfo(np.uint16).max
#: Rough bytes per vocabulary entry besides its characters: the str, its dict entry, its id.
_TERM_OVERHEAD = 128
_FILE_VERSION = 1
_FILE_ARRAYS = ("version", "ids", "lengths", "vocabulary", "starts", "slots", "freqs")

Postings = tuple[npt.NDArray[np.int32], npt.NDArray[np.uint16]]

# -- words -------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


class _WithoutMarks(dict[int, int | None]):
    """A :meth:`str.translate` table that drops combining marks, filled in as characters are
    met (so no table of all Unicode is built up front)."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        self[code] = kept
        return kept


_WITHOUT_MARKS = _WithoutMarks()
_local = threading.local()


def words(text: str) -> list[str]:
    """The words of ``text`` as FTS5's ``unicode61 remove_diacritics 2`` cuts them: runs of
    letters and digits, lower-cased, diacritics removed ("Café" → "cafe")."""
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_WITHOUT_MARKS)
    return _WORD.findall(text)


@functools.lru_cache(maxsize=1 << 18)
def stem(word: str) -> str:
    """``word`` Porter-stemmed as FTS5 stems it: only words of 3 to 64 bytes, and with the
    reference implementation's two step-2 rules (``-bli`` → ``-ble``, ``-logi`` → ``-log``)
    that Snowball's Porter stemmer leaves out."""
    size = len(word) if word.isascii() else len(word.encode())
    if not 3 <= size <= 64:
        return word
    stemmer = _stemmer()
    stemmed: str = stemmer.stemWord(word)
    if stemmed.endswith("logi") and _has_measure(stemmed[:-4]):
        return stemmed[:-1]
    if stemmed.endswith("bli") and _has_measure(stemmed[:-3]):
        # Snowball runs steps 3 to 5 on "-ble" as FTS5 does after its step 2.
        return str(stemmer.stemWord(stemmed[:-1] + "e"))
    return stemmed


def _stemmer() -> Any:
    """This thread's Porter stemmer (PyStemmer's stemmers are not to be shared by threads;
    :func:`stem` caches instead)."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = importlib.import_module("Stemmer").Stemmer("porter", 0)
    return stemmer


def _has_measure(stem: str) -> bool:
    """Porter's ``m > 0``: a vowel followed later by a consonant (``y`` after a consonant is a
    vowel)."""
    seen_vowel = after_consonant = False
    for letter in stem:
        vowel = letter in "aeiou" or (letter == "y" and after_consonant)
        if seen_vowel and not vowel:
            return True
        seen_vowel = seen_vowel or vowel
        after_consonant = not vowel
    return False


def terms(text: str) -> list[str]:
    """The indexed terms of ``text``, one per word, in order."""
    return list(map(stem, words(text)))


def query_terms(text: str) -> Counter[str]:
    """The terms of a query: its first 64 distinct words, stemmed. Two words with one stem
    count twice, as the two phrases of the FTS5 query did."""
    distinct = list(dict.fromkeys(words(text)))[:MAX_QUERY_WORDS]
    return Counter(map(stem, distinct))


@dataclass(frozen=True, slots=True)
class ChunkWords:
    """Chunks' words as :meth:`LexicalIndex.add` indexes them, cut and stemmed beforehand (by
    :func:`cut_words`, which needs no index: it can run while the chunks are being stored)."""

    #: The distinct terms, in the order they first occur.
    terms: list[str]
    #: Each word's term (its place in ``terms``), chunk after chunk.
    term_at: Ids
    #: Words per chunk.
    lengths: npt.NDArray[np.int64]


def cut_words(texts: Sequence[str]) -> ChunkWords:
    """The words of ``texts`` (one chunk each), as :meth:`LexicalIndex.add` takes them."""
    chunks = [words(text) for text in texts]
    lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    every_word = list(chain.from_iterable(chunks))
    distinct = dict.fromkeys(every_word)
    term_of: dict[str, int] = {}
    word_term = [term_of.setdefault(stem(word), len(term_of)) for word in distinct]
    place = dict(zip(distinct, word_term, strict=True))
    term_at = np.fromiter(map(place.__getitem__, every_word), np.int64, len(every_word))
    return ChunkWords(list(term_of), term_at, lengths)


# -- postings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    """Postings grouped by term: those of term ``terms[i]`` are ``slots[starts[i]:starts[i +
    1]]`` (ascending) with their frequencies in ``freqs``. Never changed once built."""

    terms: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    slots: npt.NDArray[np.int32]
    freqs: npt.NDArray[np.uint16]

    @classmethod
    def grouped(
        cls, terms: npt.NDArray[np.int64], slots: npt.NDArray[np.int32], freqs: npt.NDArray[Any]
    ) -> _Segment:
        """A segment of postings already ordered by term, then slot."""
        bounds = np.flatnonzero(np.diff(terms)) + 1
        starts = np.concatenate(([0], bounds, [terms.size] if terms.size else [])).astype(np.int64)
        unique = terms[starts[:-1]].astype(np.int64)
        return cls(unique, starts, slots, np.minimum(freqs, _MAX_FREQUENCY).astype(np.uint16))

    @classmethod
    def counted(cls, first_slot: int, lengths: npt.NDArray[np.int64], terms: Ids) -> _Segment:
        """The postings of new chunks whose terms, chunk after chunk, are ``terms``."""
        chunks = lengths.size
        local = np.repeat(np.arange(chunks, dtype=np.int64), lengths)
        keys, freqs = np.unique(terms * chunks + local, return_counts=True)
        slots = (keys % chunks + first_slot).astype(np.int32)
        return cls.grouped(keys // chunks, slots, freqs)

    @classmethod
    def merged(cls, segments: Sequence[_Segment]) -> _Segment:
        """One segment holding those of ``segments`` (given in slot order)."""
        if len(segments) == 1:
            return segments[0]
        if not segments:
            return cls.grouped(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint16))
        flat = [segment.flat() for segment in segments]
        terms, slots, freqs = (np.concatenate([part[n] for part in flat]) for n in range(3))
        order = np.argsort(terms, kind="stable")
        return cls.grouped(terms[order], slots[order], freqs[order])

    def flat(self) -> tuple[Ids, npt.NDArray[np.int32], npt.NDArray[np.uint16]]:
        """Every posting as (term, slot, frequency) arrays."""
        return np.repeat(self.terms, np.diff(self.starts)), self.slots, self.freqs

    def postings(self, terms: Ids) -> list[Postings | None]:
        """The postings of each of ``terms`` (``None`` for a term the segment lacks)."""
        at = np.minimum(np.searchsorted(self.terms, terms), max(self.terms.size - 1, 0))
        found: list[Postings | None] = []
        for term, index in zip(terms.tolist(), at.tolist(), strict=True):
            if self.terms.size and self.terms[index] == term:
                start, end = int(self.starts[index]), int(self.starts[index + 1])
                found.append((self.slots[start:end], self.freqs[start:end]))
            else:
                found.append(None)
        return found

    @property
    def size(self) -> int:
        return int(self.slots.size)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.terms, self.starts, self.slots, self.freqs))


def _empty_result() -> tuple[Vectors, Ids]:
    return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)


class LexicalIndex:
    """Thread-safe: searches and changes take the index's lock; words are cut outside it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vocabulary: dict[str, int] = {}
        self._terms: list[str] = []
        self._term_chars = 0
        self._segments: list[_Segment] = []
        self._slot_ids = np.zeros(0, dtype=np.int64)
        self._lengths = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        self._slots = 0
        self._live = 0
        self._live_tokens = 0
        self._ids_ascending = True
        #: At least every id held: ids above it are new without a lookup.
        self._max_id = -1
        self._by_id: tuple[Ids, npt.NDArray[np.int64]] | None = None
        #: Each slot's BM25 length norm, ``k1·(1 - b + b·length/average)``, kept until a change.
        self._norms: Vectors | None = None

    # -- changes -------------------------------------------------------------------------------

    def add(self, ids: Ids, texts: Sequence[str] | ChunkWords) -> None:
        """Index new chunks (their texts, or their words cut already); ``ValueError`` for an id
        already indexed."""
        ids = np.asarray(ids, dtype=np.int64)
        cut = texts if isinstance(texts, ChunkWords) else cut_words(texts)
        if ids.size != cut.lengths.size:
            raise ValueError(f"{ids.size} ids for {cut.lengths.size} texts")
        if ids.size == 0:
            return
        with self._lock:
            self._require_new(ids)
            term_ids = self._term_ids(cut.terms)[cut.term_at]
            first = self._slots
            self._append_slots(ids, cut.lengths)
            if term_ids.size:
                self._segments.append(_Segment.counted(first, cut.lengths, term_ids))
                self._merge_similar()

    def remove(self, ids: Ids) -> None:
        """Drop chunks from the index; ids it does not hold are ignored."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        with self._lock:
            slots = self._live_slots(ids)
            if slots.size == 0:
                return
            self._alive[slots] = False
            self._norms = None
            self._live -= int(slots.size)
            self._live_tokens -= int(self._lengths[slots].sum(dtype=np.int64))
            if self._slots - self._live > _DEAD_SHARE * self._slots:
                self._compact()

    def _require_new(self, ids: Ids) -> None:
        if np.unique(ids).size != ids.size:
            raise ValueError("chunk ids repeated in one addition to the lexical index")
        if int(ids.min()) <= self._max_id and self._live_slots(ids).size:
            raise ValueError("chunk ids already in the lexical index")

    def _term_ids(self, terms: list[str]) -> Ids:
        """The term ids of ``terms``, new ones added to the vocabulary (in order, once each)."""
        vocabulary = self._vocabulary
        new = list(dict.fromkeys(term for term in terms if term not in vocabulary))
        if new:
            first = len(self._terms)
            vocabulary.update(zip(new, range(first, first + len(new)), strict=True))
            self._terms += new
            self._term_chars += sum(map(len, new))
        return np.fromiter(map(vocabulary.__getitem__, terms), np.int64, len(terms))

    def _append_slots(self, ids: Ids, lengths: npt.NDArray[np.int64]) -> None:
        needed = self._slots + ids.size
        if needed > self._slot_ids.size:
            capacity = max(needed, 2 * self._slot_ids.size, 1024)
            self._slot_ids = _resized(self._slot_ids, capacity)
            self._lengths = _resized(self._lengths, capacity)
            self._alive = _resized(self._alive, capacity)
        span = slice(self._slots, needed)
        self._ids_ascending = self._ids_ascending and bool(
            np.all(np.diff(ids) > 0)
            and (self._slots == 0 or ids[0] > self._slot_ids[span.start - 1])
        )
        self._slot_ids[span], self._lengths[span], self._alive[span] = ids, lengths, True
        self._slots, self._live = needed, self._live + int(ids.size)
        self._live_tokens += int(lengths.sum())
        self._max_id = max(self._max_id, int(ids.max()))
        self._by_id = self._norms = None

    def _merge_similar(self) -> None:
        """Merge the newest segments while the one before is at most twice the size of the
        last: O(log n) segments, and each posting copied O(log n) times."""
        segments = self._segments
        while len(segments) >= 2 and segments[-2].size <= 2 * segments[-1].size:
            segments[-2:] = [_Segment.merged(segments[-2:])]

    def _compact(self) -> None:
        """One segment without dead slots; slots renumbered in order, and words no live chunk
        uses dropped from the vocabulary."""
        alive = self._alive[: self._slots]
        renumbered = np.cumsum(alive, dtype=np.int64) - 1
        term_ids, slots, freqs = _Segment.merged(self._segments).flat()
        keep = alive[slots]
        term_ids, freqs = term_ids[keep], freqs[keep]
        slots = renumbered[slots[keep]].astype(np.int32)
        used = np.unique(term_ids)
        self._terms = [self._terms[i] for i in used.tolist()]
        self._vocabulary = {term: i for i, term in enumerate(self._terms)}
        self._term_chars = sum(map(len, self._terms))
        segment = _Segment.grouped(np.searchsorted(used, term_ids), slots, freqs)
        self._segments = [segment] if segment.size else []
        self._slot_ids = self._slot_ids[: self._slots][alive]
        self._lengths = self._lengths[: self._slots][alive]
        self._alive = np.ones(self._live, dtype=bool)
        self._slots = self._live
        self._ids_ascending = bool(np.all(np.diff(self._slot_ids) > 0))
        self._by_id = self._norms = None

    # -- reading -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Chunks that searches can find."""
        with self._lock:
            return self._live

    @property
    def memory_bytes(self) -> int:
        """About how much memory the index takes: its postings, its per-chunk arrays, and an
        estimate for its vocabulary (Python strings in a dict)."""
        with self._lock:
            arrays = sum(segment.nbytes for segment in self._segments)
            arrays += self._slot_ids.nbytes + self._lengths.nbytes + self._alive.nbytes
            if self._by_id is not None:
                arrays += sum(part.nbytes for part in self._by_id)
            if self._norms is not None:
                arrays += self._norms.nbytes
            return arrays + len(self._terms) * _TERM_OVERHEAD + self._term_chars

    def ids(self) -> Ids:
        """Every chunk id the index holds, ascending."""
        with self._lock:
            keys, slots = self._ordered()
            return keys[self._alive[: self._slots] if slots is None else self._alive[slots]]

    def search(self, text: str, k: int, allowed: Ids | None = None) -> tuple[Vectors, Ids]:
        """The ``k`` chunks that best match ``text`` with their BM25 scores (higher is better),
        best first, ties by id; only ids in ``allowed`` when it is given. Empty when no word
        of the query is in any (allowed) chunk."""
        wanted = query_terms(text)
        if k <= 0 or not wanted:
            return _empty_result()
        with self._lock:
            scores = self._scores(wanted)
            if scores is None:
                return _empty_result()
            if allowed is None:
                candidates = _contenders(scores, k)
            else:
                candidates = self._live_slots(np.asarray(allowed, dtype=np.int64))
                candidates = candidates[scores[candidates] > 0]
            values, ids = scores[candidates], self._slot_ids[candidates]
        best = _best(values, ids, k)
        return values[best], ids[best]

    def _scores(self, wanted: Counter[str]) -> npt.NDArray[np.float32] | None:
        """Every slot's BM25 score for the query terms (0 where none occurs or the slot is
        dead); ``None`` when no query term is indexed."""
        known = [(self._vocabulary[t], n) for t, n in wanted.items() if t in self._vocabulary]
        if not known or self._live == 0:
            return None
        term_ids = np.array([term for term, _ in known], dtype=np.int64)
        found = [segment.postings(term_ids) for segment in self._segments]
        scores = np.zeros(self._slots, dtype=np.float32)
        norms = self._length_norms()
        for column, (_, repeats) in enumerate(known):
            parts = self._live_postings([row[column] for row in found])
            hits = sum(slots.size for slots, _ in parts)
            if hits == 0:
                continue
            idf = max(math.log((self._live - hits + 0.5) / (hits + 0.5)), _MIN_IDF)
            weight = np.float32(repeats * idf * (K1 + 1))
            for slots, freqs in parts:  # in place: a common word has a posting in most slots
                frequency = freqs.astype(np.float32)
                denominator = norms[slots]
                denominator += frequency
                np.divide(frequency, denominator, out=frequency)
                frequency *= weight
                scores[slots] += frequency
        return scores

    def _length_norms(self) -> Vectors:
        if self._norms is None:
            # chunks with no words at all (symbols only) make no tokens: no length to divide by
            average = max(self._live_tokens / max(self._live, 1), 1e-9)
            base, scale = np.float32(K1 * (1 - B)), np.float32(K1 * B / average)
            self._norms = base + scale * self._lengths[: self._slots].astype(np.float32)
        return self._norms

    def _live_postings(self, parts: list[Postings | None]) -> list[Postings]:
        """Each segment's postings of one term, dead slots left out."""
        present = [part for part in parts if part is not None]
        if self._live == self._slots:
            return present
        kept = []
        for slots, freqs in present:
            keep = self._alive[slots]
            kept.append((slots[keep], freqs[keep]))
        return kept

    def _ordered(self) -> tuple[Ids, npt.NDArray[np.int64] | None]:
        """Every slot's id in ascending order with its slot (a re-added id's newest slot
        last); no slots when they are the positions, as they are when the ids came in
        ascending, as rowids do. Sorted once per change otherwise."""
        if self._ids_ascending:
            return self._slot_ids[: self._slots], None
        if self._by_id is None:
            order = np.argsort(self._slot_ids[: self._slots], kind="stable")
            self._by_id = (self._slot_ids[order], order.astype(np.int64))
        return self._by_id

    def _live_slots(self, ids: Ids) -> npt.NDArray[np.int64]:
        """The live slots of those of ``ids`` the index holds, each once, ascending."""
        keys, slots = self._ordered()
        if keys.size == 0 or ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        ids = np.sort(ids)  # sorted needles: searchsorted narrows from the last hit
        at = np.searchsorted(keys, ids, side="right") - 1
        at = at[(at >= 0) & (keys[np.maximum(at, 0)] == ids)]
        found = at if slots is None else slots[at]
        found = found[self._alive[found]]
        if 64 * found.size < self._slots:
            return np.unique(found)
        chosen = np.zeros(self._slots, dtype=bool)  # many: a mask beats sorting them
        chosen[found] = True
        return np.flatnonzero(chosen)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically: a crash leaves the old file or the new one.
        Removed chunks are compacted away first, so their words are not written."""
        temporary = path.with_name(f".{path.name}.tmp")
        self.write(temporary)
        os.replace(temporary, path)
        fsync_directory(path.parent)

    def write(self, path: Path) -> None:
        """Write the index to ``path`` and flush it to the disk, for the caller to rename into
        place. Removed chunks are compacted away first (under the lock), so their words are
        not written; the postings are merged into the one segment the file holds outside it
        (segments never change), and that segment then replaces those it was merged from."""
        with self._lock:
            if self._live < self._slots:
                self._compact()
            segments = tuple(self._segments)
            ids = self._slot_ids[: self._slots].copy()
            lengths = self._lengths[: self._slots].copy()
            vocabulary = "\n".join(self._terms).encode()
        merged = _Segment.merged(segments)
        if len(segments) > 1:
            with self._lock:
                held = self._segments[: len(segments)]
                if len(held) == len(segments) and all(map(operator.is_, held, segments)):
                    self._segments[: len(segments)] = [merged]
        with open(path, "wb") as file:
            np.savez(file, allow_pickle=False, **_file_arrays(ids, lengths, vocabulary, merged))
            file.flush()
            os.fsync(file.fileno())

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        """The index saved at ``path``; ``ValueError`` when it is unreadable, damaged or of
        another version (the caller rebuilds it from the database)."""
        try:
            with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
                arrays = {name: data[name] for name in _FILE_ARRAYS}
        except FileNotFoundError as exc:
            raise ValueError(f"no lexical index file {path.name}") from exc
        except Exception as exc:  # damaged bytes surface from zipfile and numpy in many types
            raise ValueError(f"unreadable lexical index file {path.name}: {exc!r}") from exc
        try:
            index = cls._from_arrays(arrays)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"damaged lexical index file {path.name}: {exc}") from exc
        return index

    @classmethod
    def _from_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> LexicalIndex:
        version, ids, lengths = arrays["version"], arrays["ids"], arrays["lengths"]
        starts, slots, freqs = arrays["starts"], arrays["slots"], arrays["freqs"]
        if version.tolist() != [_FILE_VERSION]:
            raise ValueError(f"version {version.tolist()}, not {_FILE_VERSION}")
        _check_types(arrays)
        text = arrays["vocabulary"].tobytes().decode()
        vocabulary = text.split("\n") if text else []
        count = len(vocabulary)
        if (
            starts.size != count + 1
            or starts[0] != 0
            or starts[-1] != slots.size
            or np.any(np.diff(starts) <= 0)
            or len(set(vocabulary)) != count
        ):
            raise ValueError("postings do not match the vocabulary")
        if ids.size != lengths.size or np.unique(ids).size != ids.size:
            raise ValueError("chunk ids and lengths disagree")
        tokens = np.bincount(slots, weights=freqs, minlength=ids.size) if slots.size else None
        if slots.size and (slots.min() < 0 or slots.max() >= ids.size or freqs.min() == 0):
            raise ValueError("postings out of range")
        if tokens is not None and np.any(tokens > lengths):
            raise ValueError("postings exceed the chunk lengths")
        index = cls()
        index._terms, index._vocabulary = vocabulary, {t: i for i, t in enumerate(vocabulary)}
        index._term_chars = sum(map(len, vocabulary))
        if slots.size:
            index._segments = [_Segment(np.arange(count, dtype=np.int64), starts, slots, freqs)]
        index._slot_ids, index._lengths = ids, lengths
        index._alive = np.ones(ids.size, dtype=bool)
        index._slots = index._live = int(ids.size)
        index._live_tokens = int(lengths.sum(dtype=np.int64))
        index._ids_ascending = bool(np.all(np.diff(ids) > 0))
        index._max_id = int(ids.max()) if ids.size else -1
        return index


def _file_arrays(
    ids: Ids, lengths: npt.NDArray[np.int32], vocabulary: bytes, segment: _Segment
) -> dict[str, npt.NDArray[Any]]:
    """A compacted index as its file's arrays: every vocabulary term (``vocabulary``: the
    terms, one a line) has postings in ``segment``, in term order."""
    if segment.size:
        starts, slots, freqs = segment.starts, segment.slots, segment.freqs
    else:
        starts = np.zeros(1, dtype=np.int64)
        slots, freqs = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint16)
    return {
        "version": np.array([_FILE_VERSION], dtype=np.int64),
        "ids": ids,
        "lengths": lengths,
        "vocabulary": np.frombuffer(vocabulary, dtype=np.uint8),
        "starts": starts,
        "slots": slots,
        "freqs": freqs,
    }


def _check_types(arrays: dict[str, npt.NDArray[Any]]) -> None:
    expected = {
        "ids": np.int64,
        "lengths": np.int32,
        "vocabulary": np.uint8,
        "starts": np.int64,
        "slots": np.int32,
        "freqs": np.uint16,
    }
    for name, dtype in expected.items():
        if arrays[name].dtype != dtype or arrays[name].ndim != 1:
            raise ValueError(f"{name} is {arrays[name].dtype}[{arrays[name].ndim}-d]")
    if np.any(arrays["lengths"] < 0):
        raise ValueError("negative chunk length")


def _contenders(scores: Vectors, k: int) -> npt.NDArray[np.intp]:
    """The slots that can be among the ``k`` best: those scoring at least the k-th highest
    maximum of blocks of 64 slots (k distinct slots reach it), and above 0. Far fewer than
    all matches when a query holds a common word."""
    maxima = np.maximum.reduceat(scores, np.arange(0, scores.size, 64)) if scores.size else scores
    if maxima.size > k:
        threshold = np.partition(maxima, maxima.size - k)[maxima.size - k]
        if threshold > 0:
            return np.flatnonzero(scores >= threshold)
    return np.flatnonzero(scores)


def _best(values: Vectors, ids: Ids, k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` highest ``values``, best first, ties by ascending id."""
    if values.size > k:
        threshold = values[np.argpartition(-values, k - 1)[k - 1]]
        chosen = np.flatnonzero(values >= threshold)
    else:
        chosen = np.arange(values.size)
    order = np.lexsort((ids[chosen], -values[chosen]))
    return chosen[order[:k]]


def _resized(array: npt.NDArray[Any], capacity: int) -> npt.NDArray[Any]:
    grown = np.zeros(capacity, dtype=array.dtype)
    grown[: array.size] = array
    return grown
