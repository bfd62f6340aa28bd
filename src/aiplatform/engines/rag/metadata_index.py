"""An in-memory inverted index over one collection's document metadata: a filter resolves to
chunk ids without parsing any document's JSON.

Every field path the documents hold (``a``, and ``a.b`` inside a nested object) is a column:
each document's value there as SQLite's JSON functions hand it to SQL (true and false as 1 and
0, integers past 64 bits as floats, arrays and objects as their JSON text), and the members
``$contains`` walks (an array's items, an object's values, a scalar itself). A column numbers
its distinct values and keeps its documents sorted by value (numbers, then text, then nulls)
with each value's bounds, and its members sorted likewise; so equality and ``$in`` are a dict
lookup and a slice, ranges a bisection and a slice, ``$contains`` a slice. Conditions become
boolean masks over document slots, combined with numpy; the selected slots give their chunks
through a chunk-id array kept sorted.

Changes only append: a document takes a new slot, and a removed one's slot is dead (masked)
until :meth:`MetadataIndex.compact` renumbers the live ones, which happens by itself once the
dead are a large share. The sorted structures of the columns that changed are rebuilt in bulk
by the first query after the change.

The language is :mod:`aiplatform.engines.rag.filters`'s, value for value, and a filter is
validated by :func:`~aiplatform.engines.rag.filters.compile_filter` itself: both refuse the
same filters with the same 400.
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from aiplatform.engines.rag.database import json_text
from aiplatform.engines.rag.filters import compile_filter
from aiplatform.engines.rag.index import Ids

__all__ = ["MetadataIndex"]

Mask = npt.NDArray[np.bool_]
Slots = npt.NDArray[np.int32]

#: The characters of one part of a field name (filters.py's ``_FIELD``): keys with others
#: (a dot among them) no filter can name, so they get no column.
_KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_INT64 = range(-(1 << 63), 1 << 63)
_ORDERED = ("$gt", "$gte", "$lt", "$lte")
#: Dead slots are compacted away once they are this share of all slots ...
_COMPACT_SHARE = 0.25
#: ... and at least this many.
_COMPACT_MIN = 64
_NO_SLOTS: Slots = np.zeros(0, dtype=np.int32)


class MetadataIndex:
    """One collection's documents by metadata, each with its chunks' ids. Thread-safe: every
    call takes the index's lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slot_of: dict[int, int] = {}  # live document -> its slot
        self._documents = array("q")  # slot -> document (dead slots keep theirs)
        self._live = bytearray()  # slot -> 1 while its document is in the index
        self._chunk_starts = array("q")  # slot -> its first chunk in the chunk arrays
        self._chunk_ids = array("q")  # chunks in the order they were added ...
        self._chunk_slots = array("i")  # ... with their document's slot
        self._columns: dict[str, _Column] = {}
        self._stale: set[str] = set()  # columns changed since their structures were built
        self._slots_stale = True
        self._alive: Mask = np.zeros(0, dtype=np.bool_)
        self._sorted_chunk_ids: Ids = np.zeros(0, dtype=np.int64)
        self._sorted_chunk_slots: Slots = _NO_SLOTS
        #: memory_bytes as last counted; None once a change may have moved it (counting walks
        #: every document's entry, so it is not done per request)
        self._memory: int | None = None

    # -- changes -------------------------------------------------------------------------------

    def add(self, document: int, metadata: dict[str, Any], chunk_ids: Ids | Sequence[int]) -> None:
        """Index ``document`` (its database key) with its chunks; one already here is replaced."""
        chunks = np.asarray(chunk_ids, dtype=np.int64)
        with self._lock:
            self._remove(document)
            self._add(document, metadata, chunks)

    def remove(self, document: int) -> None:
        """Take ``document`` out of the index (nothing when it is not in it)."""
        with self._lock:
            self._remove(document)

    def update(self, document: int, metadata: dict[str, Any]) -> None:
        """Give ``document`` new metadata; its chunks stay. ``KeyError`` when it is not here."""
        with self._lock:
            slot = self._slot_of[document]
            chunks = self._chunks_of(slot)
            self._remove(document)
            self._add(document, metadata, chunks)

    def compact(self) -> None:
        """Renumber the live documents' slots, dropping what removed documents left behind."""
        with self._lock:
            self._compact()

    # -- reading -------------------------------------------------------------------------------

    def matching(self, spec: dict[str, Any]) -> Ids:
        """The ids of the chunks whose documents match the filter ``spec``, ascending; the
        filter's 400 (:class:`~aiplatform.errors.InvalidRequestError`) when it is invalid."""
        compile_filter(spec, "metadata")  # the SQL is not used: the same checks, the same 400s
        with self._lock:
            self._refresh()
            selected = self._evaluate(spec) & self._alive
            chunk_ids: Ids = self._sorted_chunk_ids[selected[self._sorted_chunk_slots]]
            return chunk_ids

    def documents_matching(self, spec: dict[str, Any]) -> set[int]:
        """The documents that match the filter ``spec``."""
        compile_filter(spec, "metadata")
        with self._lock:
            self._refresh()
            slots = np.flatnonzero(self._evaluate(spec) & self._alive)
            return {int(self._documents[slot]) for slot in slots}

    @property
    def size(self) -> int:
        """Documents in the index."""
        with self._lock:
            return len(self._slot_of)

    @property
    def memory_bytes(self) -> int:
        """About how much memory the index takes: its arrays, and the Python objects of its
        dicts and value lists counted one by one."""
        with self._lock:
            if self._memory is None:
                self._memory = self._count_memory()
            return self._memory

    def _count_memory(self) -> int:
        """Arrays by their sizes, dicts by their entries' count (not walked: this runs after
        every change, so it must not grow with the documents)."""
        arrays = (self._documents, self._live, self._chunk_starts, self._chunk_ids)
        derived = (self._alive, self._sorted_chunk_ids, self._sorted_chunk_slots)
        total = _dict_bytes(self._slot_of, 2 * _INT_BYTES) + _array_bytes(self._chunk_slots)
        total += sum(_array_bytes(a) for a in (*arrays, *derived))
        total += sum(
            sys.getsizeof(name) + column.memory_bytes() for name, column in self._columns.items()
        )
        return total

    # -- under the lock ------------------------------------------------------------------------

    def _add(self, document: int, metadata: dict[str, Any], chunks: Ids) -> None:
        self._memory = None
        slot = len(self._live)
        self._slot_of[document] = slot
        self._documents.append(document)
        self._live.append(1)
        self._chunk_starts.append(len(self._chunk_ids))
        self._chunk_ids.frombytes(chunks.tobytes())
        self._chunk_slots.frombytes(np.full(chunks.size, slot, dtype=np.intc).tobytes())
        self._slots_stale = True
        for path, raw in _fields(metadata):
            column = self._columns.get(path)
            if column is None:
                column = self._columns[path] = _Column()
            column.append(slot, _sql_value(raw), _members(raw))
            self._stale.add(path)

    def _remove(self, document: int) -> None:
        self._memory = None
        slot = self._slot_of.pop(document, None)
        if slot is None:
            return
        self._live[slot] = 0
        self._slots_stale = True
        dead = len(self._live) - len(self._slot_of)
        if dead >= _COMPACT_MIN and dead >= _COMPACT_SHARE * len(self._live):
            self._compact()

    def _chunks_of(self, slot: int) -> Ids:
        start = self._chunk_starts[slot]
        end = self._chunk_starts[slot + 1] if slot + 1 < len(self._live) else len(self._chunk_ids)
        return np.array(self._chunk_ids[start:end], dtype=np.int64)

    def _compact(self) -> None:
        alive = np.frombuffer(self._live, dtype=np.bool_).copy()
        live_slots = np.flatnonzero(alive)
        renumbered = np.full(alive.size, -1, dtype=np.intc)
        renumbered[live_slots] = np.arange(live_slots.size, dtype=np.intc)
        chunk_slots = _copy(self._chunk_slots, np.intc)
        kept = alive[chunk_slots]
        new_chunk_slots = renumbered[chunk_slots[kept]]
        self._chunk_ids = array("q", _copy(self._chunk_ids, np.int64)[kept].tobytes())
        self._chunk_slots = array("i", new_chunk_slots.tobytes())
        starts = np.searchsorted(new_chunk_slots, np.arange(live_slots.size))  # slots ascend
        self._chunk_starts = array("q", starts.astype(np.int64).tobytes())
        documents = _copy(self._documents, np.int64)[live_slots]
        self._documents = array("q", documents.tobytes())
        self._slot_of = {int(document): slot for slot, document in enumerate(documents)}
        self._live = bytearray(b"\x01") * live_slots.size
        for path, column in list(self._columns.items()):
            if not column.compact(alive, renumbered):
                del self._columns[path]
        self._stale = set(self._columns)
        self._slots_stale = True

    def _refresh(self) -> None:
        """Rebuild what changed since the last query."""
        if self._stale or self._slots_stale:
            self._memory = None
        for path in self._stale:
            self._columns[path].build()
        self._stale.clear()
        if self._slots_stale:
            self._alive = np.frombuffer(self._live, dtype=np.bool_).copy()
            ids, slots = _copy(self._chunk_ids, np.int64), _copy(self._chunk_slots, np.intc)
            if ids.size > 1 and not bool(np.all(ids[1:] >= ids[:-1])):
                order = np.argsort(ids, kind="stable")
                ids, slots = ids[order], slots[order]
            self._sorted_chunk_ids, self._sorted_chunk_slots = ids, slots.astype(np.int32)
            self._slots_stale = False

    # -- evaluation ----------------------------------------------------------------------------

    def _evaluate(self, spec: dict[str, Any]) -> Mask:
        """The slots matching a valid filter (dead ones included: the caller masks them)."""
        mask = self._everything()
        for key, value in spec.items():
            if key == "$and":
                for item in value:
                    mask &= self._evaluate(item)
            elif key == "$or":
                either = self._nothing()
                for item in value:
                    either |= self._evaluate(item)
                mask &= either
            elif key == "$not":
                mask &= ~self._evaluate(value)
            else:
                mask &= self._field(self._columns.get(key), value)
        return mask

    def _field(self, column: _Column | None, condition: Any) -> Mask:
        if not isinstance(condition, dict):
            return self._equal(column, _operand(condition))
        mask = self._everything()
        for operator, operand in condition.items():
            mask &= self._operator(column, operator, operand)
        return mask

    def _operator(self, column: _Column | None, operator: str, operand: Any) -> Mask:
        if operator in ("$eq", "$ne"):
            equal = self._equal(column, _operand(operand))
            return equal if operator == "$eq" else ~equal
        if operator in ("$in", "$nin"):
            found = self._any_of(column, [_operand(item) for item in operand])
            return found if operator == "$in" else ~found
        if column is None:  # a field no document has: no order, no member, not there
            absent = operator == "$exists" and not operand
            return self._everything() if absent else self._nothing()
        if operator in _ORDERED:
            return self._of(column.ordered(operator, _operand(operand)))
        if operator == "$contains":
            return self._of(column.contains(_operand(operand)))
        present = self._of(column.present())  # $exists
        return present if operand else ~present

    def _equal(self, column: _Column | None, value: Any) -> Mask:
        """``IS``: null matches a null and a missing field."""
        if value is not None:
            return self._of(column.equal(value) if column else _NO_SLOTS)
        if column is None:
            return self._everything()
        mask = ~self._of(column.present())
        mask[column.nulls()] = True
        return mask

    def _any_of(self, column: _Column | None, values: list[Any]) -> Mask:
        """``IN``: a null in the list matches nothing."""
        mask = self._nothing()
        if column is not None:
            for value in values:
                if value is not None:
                    mask[column.equal(value)] = True
        return mask

    def _of(self, slots: Slots) -> Mask:
        mask = self._nothing()
        mask[slots] = True
        return mask

    def _everything(self) -> Mask:
        return np.ones(len(self._live), dtype=np.bool_)

    def _nothing(self) -> Mask:
        return np.zeros(len(self._live), dtype=np.bool_)


class _Column:
    """One field path. Entries: (slot, code of its value); members: (slot, code of a member);
    codes number the distinct values (null included, 1 and 1.0 one value as in SQL)."""

    __slots__ = (
        "by_member",
        "by_value",
        "codes",
        "entry_codes",
        "entry_slots",
        "member_bounds",
        "member_codes",
        "member_slots",
        "numbers",
        "rank_of_code",
        "texts",
        "value_bounds",
        "value_bytes",
        "values",
    )

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []
        #: the distinct values' objects and their codes' ints, counted as they come
        self.value_bytes = 0
        self.entry_slots, self.entry_codes = array("i"), array("i")
        self.member_slots, self.member_codes = array("i"), array("i")
        # built by build(): the distinct values in order, numbers then text (ranks: numbers
        # 0.., texts after them, null last); the entries' slots sorted by rank, with each rank's
        # bounds; the members' slots sorted by code, with each code's bounds
        self.numbers: list[Any] = []
        self.texts: list[str] = []
        self.rank_of_code: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self.by_value: Slots = _NO_SLOTS
        self.value_bounds: npt.NDArray[np.intp] = np.zeros(1, dtype=np.intp)
        self.by_member: Slots = _NO_SLOTS
        self.member_bounds: npt.NDArray[np.intp] = np.zeros(1, dtype=np.intp)

    def append(self, slot: int, value: Any, members: Iterable[Any]) -> None:
        self.entry_slots.append(slot)
        self.entry_codes.append(self._code(value))
        for member in members:
            self.member_slots.append(slot)
            self.member_codes.append(self._code(member))

    def _code(self, value: Any) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
            self.value_bytes += sys.getsizeof(value) + _INT_BYTES
        return code

    def build(self) -> None:
        self.numbers = sorted(v for v in self.values if v is not None and not isinstance(v, str))
        self.texts = sorted(v for v in self.values if isinstance(v, str))
        distinct = len(self.numbers) + len(self.texts)
        rank = {value: r for r, value in enumerate([*self.numbers, *self.texts])}
        self.rank_of_code = np.fromiter(
            (distinct if value is None else rank[value] for value in self.values),
            dtype=np.intp,
            count=len(self.values),
        )
        ranks = self.rank_of_code[_copy(self.entry_codes, np.intc)]
        self.by_value, self.value_bounds = _grouped(self.entry_slots, ranks, distinct + 1)
        codes = _copy(self.member_codes, np.intc).astype(np.intp)
        self.by_member, self.member_bounds = _grouped(self.member_slots, codes, len(self.values))

    def compact(self, alive: Mask, renumbered: npt.NDArray[np.intc]) -> bool:
        """Keep the live slots' entries, renumbered, and the codes they use; whether any are
        left."""
        slots, codes = _copy(self.entry_slots, np.intc), _copy(self.entry_codes, np.intc)
        member_slots = _copy(self.member_slots, np.intc)
        member_codes = _copy(self.member_codes, np.intc)
        kept, members_kept = alive[slots], alive[member_slots]
        used = np.unique(np.concatenate([codes[kept], member_codes[members_kept]]))
        recoded = np.full(len(self.values), -1, dtype=np.intc)
        recoded[used] = np.arange(used.size, dtype=np.intc)
        self.values = [self.values[code] for code in used.tolist()]
        self.codes = {value: code for code, value in enumerate(self.values)}
        self.value_bytes = sum(sys.getsizeof(value) + _INT_BYTES for value in self.values)
        self.entry_slots = array("i", renumbered[slots[kept]].tobytes())
        self.entry_codes = array("i", recoded[codes[kept]].tobytes())
        self.member_slots = array("i", renumbered[member_slots[members_kept]].tobytes())
        self.member_codes = array("i", recoded[member_codes[members_kept]].tobytes())
        return len(self.entry_slots) > 0

    # -- built structures ----------------------------------------------------------------------

    def present(self) -> Slots:
        return self.by_value

    def nulls(self) -> Slots:
        distinct = len(self.numbers) + len(self.texts)
        return self._ranks(distinct, distinct + 1)

    def equal(self, value: Any) -> Slots:
        code = self.codes.get(value)
        if code is None:
            return _NO_SLOTS
        rank = int(self.rank_of_code[code])
        return self._ranks(rank, rank + 1)

    def ordered(self, operator: str, value: Any) -> Slots:
        """``$gt`` ... ``$lte`` ``value``: numbers sort before text, and nulls match none."""
        if isinstance(value, str):
            offset, keys = len(self.numbers), self.texts
        else:
            offset, keys = 0, self.numbers
        after = operator in ("$gt", "$lte")
        cut = offset + (bisect_right(keys, value) if after else bisect_left(keys, value))
        if operator in ("$gt", "$gte"):
            return self._ranks(cut, len(self.numbers) + len(self.texts))
        return self._ranks(0, cut)

    def contains(self, value: Any) -> Slots:
        code = self.codes.get(value)
        if code is None:
            return _NO_SLOTS
        return self.by_member[self.member_bounds[code] : self.member_bounds[code + 1]]

    def _ranks(self, first: int, end: int) -> Slots:
        """The slots whose values rank from ``first`` up to ``end`` (excluded)."""
        return self.by_value[self.value_bounds[first] : self.value_bounds[end]]

    def memory_bytes(self) -> int:
        # values: the dict's keys, counted as they were coded
        total = _dict_bytes(self.codes, 0) + self.value_bytes + sys.getsizeof(self.values)
        total += sys.getsizeof(self.numbers) + sys.getsizeof(self.texts)
        arrays: list[array[int] | npt.NDArray[Any]] = [
            self.entry_slots,
            self.entry_codes,
            self.member_slots,
            self.member_codes,
            self.rank_of_code,
            self.by_value,
            self.value_bounds,
            self.by_member,
            self.member_bounds,
        ]
        return total + sys.getsizeof(self) + sum(_array_bytes(a) for a in arrays)


# -- values as SQL sees them ----------------------------------------------------------------------


def _fields(metadata: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Each field path a filter can name, with its value (nested objects walked)."""
    for key, value in metadata.items():
        if isinstance(key, str) and key and _KEY_CHARACTERS.issuperset(key):
            path = prefix + key
            yield path, value
            if isinstance(value, dict):
                yield from _fields(value, path + ".")


def _sql_value(raw: Any) -> Any:
    """A JSON value as SQLite's JSON functions hand it to SQL (None: null)."""
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw if raw in _INT64 else _wide_integer(raw)
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None  # stored as null
    if isinstance(raw, list | tuple | dict):
        return json_text(raw)
    return raw


def _wide_integer(value: int) -> float:
    """An integer past 64 bits, read back as a real (infinite past a double's range)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _members(raw: Any) -> list[Any]:
    """What ``json_each`` walks: an array's items, an object's values, a scalar itself."""
    if isinstance(raw, list | tuple):
        return [_sql_value(item) for item in raw]
    if isinstance(raw, dict):
        return [_sql_value(item) for item in raw.values()]
    return [_sql_value(raw)]


def _operand(value: Any) -> Any:
    """A filter's value as SQL binds it (validated already)."""
    return int(value) if isinstance(value, bool) else value


# -- arrays --------------------------------------------------------------------------------------


def _copy(values: array[int], dtype: type[np.intc] | type[np.int64]) -> npt.NDArray[Any]:
    return np.frombuffer(values, dtype=dtype).copy()


def _grouped(
    slots: array[int], keys: npt.NDArray[np.intp], groups: int
) -> tuple[Slots, npt.NDArray[np.intp]]:
    """``slots`` sorted by their ``keys`` (0 to ``groups`` - 1), and each key's bounds."""
    small = keys.astype(np.uint16) if groups <= 1 << 16 else keys  # radix sort when it can
    order = np.argsort(small, kind="stable")
    bounds = np.zeros(groups + 1, dtype=np.intp)
    np.cumsum(np.bincount(keys, minlength=groups), out=bounds[1:])
    return _copy(slots, np.intc)[order].astype(np.int32), bounds


def _array_bytes(values: array[int] | bytearray | npt.NDArray[Any]) -> int:
    if isinstance(values, np.ndarray):
        return int(values.nbytes)
    return sys.getsizeof(values)


#: An int object (keys and slots past the small cached ones).
_INT_BYTES = 28


def _dict_bytes(values: dict[Any, Any], entry_bytes: int) -> int:
    """The dict's table and ``entry_bytes`` for the objects of each entry."""
    return sys.getsizeof(values) + len(values) * entry_bytes
