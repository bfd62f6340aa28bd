"""The in-memory indexes a replica searches a PostgreSQL store's collections with, kept in step
with the database by the collection's version.

PostgreSQL holds the record: every committed change to a collection's documents takes the
collection's next version and says what it changed in ``rag_changes`` (documents added, one
removed, one whose metadata changed), and changes to one collection commit one at a time, in
version order. A replica holds, per collection it has used, the same three indexes as the
embedded store (FAISS, lexical, metadata: :class:`~aiplatform.engines.rag.residency.LoadedIndex`)
and the version they stand at. Before each search it reads the collection's version (one
indexed row); when another replica has changed the collection since, it reads those changes
and applies them first, so every replica searches what was committed before the search began.
A replica's own changes are applied as they commit. A replica too far behind (its versions
pruned from the log) or new to the collection builds the indexes from the chunks, in one
snapshot. Nothing is written to disk: a replica that restarts builds its indexes again when a
collection is first used.

Collections beyond the memory budget are dropped, least recently used first, and built again
when next used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from aiplatform.engines.rag.collections import CollectionRow
from aiplatform.engines.rag.documents import DocumentRow, PreparedDocument
from aiplatform.engines.rag.index import Ids, IndexParams, VectorIndex, Vectors
from aiplatform.engines.rag.lexical import LexicalIndex
from aiplatform.engines.rag.metadata_index import MetadataIndex
from aiplatform.engines.rag.postgres_database import Connection, PostgresConnections
from aiplatform.engines.rag.residency import LoadedIndex
from aiplatform.errors import NotFoundError

__all__ = ["ReplicaIndexes"]

logger = logging.getLogger(__name__)

#: Chunks read per query when indexes are built or caught up.
_READ_BATCH = 8192
#: Documents whose chunks are read per query when catching up.
_DOCUMENTS_PER_READ = 2048
#: Versions of a collection's change log kept: a replica further behind builds its indexes
#: again from the chunks.
KEPT_CHANGES = 10_000


@dataclass(slots=True)
class _Followed:
    """A collection's indexes and the version of the collection they hold."""

    loaded: LoadedIndex
    version: int
    #: Held while the indexes are caught up or changed (from a change's commit until it is
    #: applied, so a search that needs the change waits for it).
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: A change failed half-applied: these indexes are dropped and built again.
    broken: bool = False


@dataclass(slots=True)
class _Changes:
    """What a run of versions changed, net: documents to add (pks), documents to remove (pk and
    chunk ids), and documents whose metadata to read again."""

    added: set[int] = field(default_factory=set)
    removed: dict[int, Ids] = field(default_factory=dict)
    relabelled: set[int] = field(default_factory=set)

    def follow(self, change: str, document_pks: Sequence[int], chunk_ids: Sequence[int]) -> None:
        if change == "added":
            self.added.update(document_pks)
            return
        (pk,) = document_pks
        if change == "metadata":
            if pk not in self.added:
                self.relabelled.add(pk)
            return
        self.relabelled.discard(pk)
        if pk in self.added:
            self.added.discard(pk)  # added and removed since: never indexed here
        else:
            self.removed[pk] = np.asarray(chunk_ids, dtype=np.int64)


class ReplicaIndexes:
    """This replica's indexes of a PostgreSQL store's collections. Thread-safe."""

    def __init__(
        self, db: PostgresConnections, params: IndexParams, *, memory_bytes: int | None
    ) -> None:
        self._db = db
        self._params = params
        self._budget = memory_bytes
        self._lock = threading.Lock()  # guards the dict, not the indexes in it
        #: Least recently used first.
        self._followed: OrderedDict[str, _Followed] = OrderedDict()
        #: Per collection not yet in memory: held while it is built, so it is built once.
        self._building: dict[str, threading.Lock] = {}
        #: Applies this replica's added documents to its indexes while the next write goes to
        #: the database (one at a time, in the order of their versions).
        self._applier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-indexes")

    def close(self) -> None:
        """Finish applying the changes under way."""
        self._applier.shutdown(wait=True)

    # -- use -----------------------------------------------------------------------------------

    def current(self, collection: CollectionRow) -> LoadedIndex:
        """The collection's indexes as of its latest committed version: caught up with the
        changes since they were last used (waiting for this replica's own being applied), or
        built when they are not in memory; 404 if the collection is gone."""
        with self._db.connection() as db:
            version = _version(db, collection)
        if version is None:
            self.dropped(collection.id)
            raise _gone(collection)
        while True:
            followed = self._touch(collection.id) or self._build_once(collection)
            if followed.version >= version and not followed.broken:
                return followed.loaded
            with followed.lock:
                if followed.broken:
                    continue  # dropped: built again
                if followed.version < version:
                    self._catch_up(collection, followed)
                return followed.loaded

    def ensure_loaded(self, collection: CollectionRow) -> None:
        """Before this replica changes the collection: its indexes in memory (built if they are
        not), so that the change is applied to them as it commits — when they stand at the
        version before it; otherwise the next search catches them up."""
        if self._touch(collection.id) is None:
            self._build_once(collection)

    def size_of(self, collection: CollectionRow) -> int | None:
        """Vectors the index answers for (once this replica's changes are applied); None while
        it is not in memory."""
        with self._lock:
            followed = self._followed.get(collection.id)
        if followed is None:
            return None
        with followed.lock:
            return followed.loaded.index.size

    def rebuild_due(self, collection: CollectionRow) -> bool:
        """Whether building the collection's indexes again would pay: an sq8, IVF or IVF-PQ
        collection has grown large enough to train, many HNSW nodes are masked, or many sq8
        vectors clipped (whoever's changes made it so)."""
        with self._lock:
            followed = self._followed.get(collection.id)
        return (
            followed is not None
            and not followed.loaded.rebuilding
            and followed.loaded.index.wants_rebuild()
        )

    def rebuild_if_due(self, collection: CollectionRow) -> None:
        """Build the collection's indexes again from the database when that pays
        (:meth:`rebuild_due`), while searches use the old ones, then swap them in."""
        if not self.rebuild_due(collection):
            return
        with self._lock:
            followed = self._followed.get(collection.id)
        if followed is None:
            return
        followed.loaded.rebuilding = True
        try:
            started = time.perf_counter()
            fresh = self._built(collection)
            with fresh.lock:
                self._catch_up(collection, fresh)
            with self._lock:
                if self._followed.get(collection.id) is not followed:
                    return  # dropped meanwhile
                # changes applied to the old indexes since are in the log: the next search
                # catches the new ones up with them
                self._followed[collection.id] = fresh
            logger.info(
                "rebuilt the indexes of %s (%d vectors) in %.1f s",
                collection.id,
                fresh.loaded.index.size,
                time.perf_counter() - started,
            )
        finally:
            followed.loaded.rebuilding = False

    # -- this replica's own changes, once committed --------------------------------------------

    def created(self, collection: CollectionRow) -> None:
        loaded = LoadedIndex(
            VectorIndex(collection.dimension, collection.index_type, self._params),
            LexicalIndex(),
            MetadataIndex(),
        )
        with self._lock:
            self._followed[collection.id] = _Followed(loaded, 0)

    def dropped(self, collection_id: str) -> None:
        with self._lock:
            self._followed.pop(collection_id, None)

    def added(
        self,
        collection: CollectionRow,
        version: int,
        rows: Sequence[DocumentRow],
        documents: Sequence[PreparedDocument],
        chunk_ids: Sequence[Sequence[int]],
    ) -> None:
        """Documents stored at ``version`` (``chunk_ids``: each one's chunks' ids), applied in
        the background: a search of the collection waits for them."""
        followed = self._claim(collection.id, version)
        if followed is None:
            return
        every_id = np.fromiter(
            (i for ids in chunk_ids for i in ids), dtype=np.int64, count=sum(map(len, chunk_ids))
        )

        def apply(loaded: LoadedIndex) -> None:
            vectors = np.concatenate([document.vectors for document in documents])
            loaded.index.add(every_id, np.ascontiguousarray(vectors, dtype=np.float32))
            loaded.lexical.add(
                every_id, [chunk.text for document in documents for chunk in document.chunks]
            )
            for row, document, ids in zip(rows, documents, chunk_ids, strict=True):
                loaded.metadata.add(row.pk, document.metadata, ids)

        def in_background() -> None:
            self._apply(collection.id, followed, version, apply)
            self._evict(keep=collection.id)

        try:
            self._applier.submit(in_background)
        except RuntimeError:  # closing: applied here
            in_background()

    def removed(self, collection: CollectionRow, version: int, pk: int, chunk_ids: Ids) -> None:
        followed = self._claim(collection.id, version)
        if followed is not None:
            self._apply(
                collection.id, followed, version, lambda loaded: _remove(loaded, pk, chunk_ids)
            )

    def relabelled(
        self, collection: CollectionRow, version: int, pk: int, metadata: dict[str, Any]
    ) -> None:
        followed = self._claim(collection.id, version)
        if followed is not None:
            self._apply(
                collection.id,
                followed,
                version,
                lambda loaded: loaded.metadata.update(pk, metadata),
            )

    # -- internals -----------------------------------------------------------------------------

    def _claim(self, collection_id: str, version: int) -> _Followed | None:
        """The collection's indexes, locked, if they stand at the version before ``version``
        (they then take that change next); None otherwise (the next search catches them up)."""
        with self._lock:
            followed = self._followed.get(collection_id)
        if followed is None:
            return None
        followed.lock.acquire()
        if followed.version != version - 1 or followed.broken:
            followed.lock.release()
            return None
        return followed

    def _apply(
        self,
        collection_id: str,
        followed: _Followed,
        version: int,
        change: Callable[[LoadedIndex], None],
    ) -> None:
        """``change`` made to the claimed indexes, which then stand at ``version``; unlocked
        after. A change that fails drops them, to be built again when next used."""
        try:
            change(followed.loaded)
            followed.version = version
        except Exception:
            logger.exception("the indexes of %s are built again when next used", collection_id)
            followed.broken = True
            self.dropped(collection_id)
        finally:
            followed.lock.release()

    def _touch(self, collection_id: str) -> _Followed | None:
        with self._lock:
            followed = self._followed.get(collection_id)
            if followed is not None:
                self._followed.move_to_end(collection_id)
            return followed

    def _build_once(self, collection: CollectionRow) -> _Followed:
        """The collection's indexes, built from the database unless another thread built them
        meanwhile."""
        with self._lock:
            building = self._building.setdefault(collection.id, threading.Lock())
        try:
            with building:
                followed = self._touch(collection.id)
                if followed is not None:
                    return followed
                followed = self._built(collection)
                with self._lock:
                    self._followed[collection.id] = followed
            self._evict(keep=collection.id)
            return followed
        finally:
            with self._lock:
                self._building.pop(collection.id, None)

    @contextmanager
    def _snapshot(self, collection: CollectionRow) -> Iterator[tuple[Connection, int]]:
        """A transaction that reads one snapshot of the database, and the collection's version
        in it; 404 if the collection is gone."""
        with self._db.connection() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            version = _version(db, collection)
            if version is None:
                raise _gone(collection)
            yield db, version

    def _built(self, collection: CollectionRow) -> _Followed:
        """The collection's indexes built from one snapshot of its chunks and documents."""
        started = time.perf_counter()
        lexical = LexicalIndex()
        metadata = MetadataIndex()
        with self._snapshot(collection) as (db, version):
            found = db.execute(
                "SELECT count(*) FROM rag_chunks WHERE collection_id = %s", (collection.id,)
            ).fetchone()
            count = int(found[0]) if found is not None else 0
            batches = _with_words(_chunk_batches(db, collection.id), lexical)
            empty = VectorIndex(collection.dimension, collection.index_type, self._params)
            index = empty.rebuilt(batches, count)
            rows = db.execute(
                "SELECT pk, metadata::text, chunk_ids FROM rag_documents WHERE collection_id = %s",
                (collection.id,),
            )
            for pk, text, chunk_ids in rows:
                metadata.add(int(pk), msgspec.json.decode(text), chunk_ids)
        logger.info(
            "built the indexes of %s (%d chunks) in %.1f s",
            collection.id,
            count,
            time.perf_counter() - started,
        )
        return _Followed(LoadedIndex(index, lexical, metadata), version)

    def _catch_up(self, collection: CollectionRow, followed: _Followed) -> None:
        """Apply the changes committed since ``followed``'s version (under its lock); built
        again when the log no longer holds them all."""
        with self._snapshot(collection) as (db, version):
            log = db.execute(
                "SELECT version, change, document_pks, chunk_ids FROM rag_changes "
                "WHERE collection_id = %s AND version > %s ORDER BY version",
                (collection.id, followed.version),
            ).fetchall()
            if len(log) != version - followed.version or (
                log and int(log[0][0]) != followed.version + 1
            ):
                complete = None  # pruned meanwhile: build afresh below
            else:
                changes = _Changes()
                for _, change, pks, chunk_ids in log:
                    changes.follow(change, pks, chunk_ids or [])
                complete = _read_changes(db, changes)
        if complete is None:
            fresh = self._built(collection)
            followed.loaded, followed.version = fresh.loaded, fresh.version
            return
        try:
            complete.apply_to(followed.loaded)
        except Exception:
            followed.broken = True  # half-applied: built afresh when next used
            self.dropped(collection.id)
            raise
        followed.version = version

    def _evict(self, *, keep: str) -> None:
        """Drop the least recently used collections' indexes while all of them together exceed
        the memory budget (the one in use stays, however large)."""
        if self._budget is None:
            return
        with self._lock:
            total = sum(f.loaded.memory_bytes for f in self._followed.values())
            for collection_id in list(self._followed):
                if total <= self._budget:
                    return
                followed = self._followed[collection_id]
                if collection_id == keep or followed.loaded.rebuilding:
                    continue
                total -= followed.loaded.memory_bytes
                del self._followed[collection_id]
                logger.debug("dropped the indexes of %s from memory", collection_id)


@dataclass(slots=True)
class _ReadChanges:
    """Changes with what applying them needs, read from the database."""

    removed: dict[int, Ids]
    added: list[tuple[int, dict[str, Any], list[int]]]
    chunks: list[tuple[Ids, Vectors, list[str]]]
    relabelled: list[tuple[int, dict[str, Any]]]

    def apply_to(self, loaded: LoadedIndex) -> None:
        for pk, removed in self.removed.items():
            _remove(loaded, pk, removed)
        for ids, vectors, texts in self.chunks:
            loaded.index.add(ids, vectors)
            loaded.lexical.add(ids, texts)
        for pk, metadata, chunk_ids in self.added:
            loaded.metadata.add(pk, metadata, chunk_ids)
        for pk, metadata in self.relabelled:
            loaded.metadata.update(pk, metadata)


def _read_changes(db: Connection, changes: _Changes) -> _ReadChanges:
    added: list[tuple[int, dict[str, Any], list[int]]] = []
    chunks: list[tuple[Ids, Vectors, list[str]]] = []
    pks = sorted(changes.added)
    for start in range(0, len(pks), _DOCUMENTS_PER_READ):
        some = pks[start : start + _DOCUMENTS_PER_READ]
        # by primary keys (those the collection's log names), whatever the planner's statistics
        # say of the collection
        rows = db.execute(
            "SELECT pk, metadata::text, chunk_ids FROM rag_documents WHERE pk = ANY(%s)", (some,)
        ).fetchall()
        added.extend((int(pk), msgspec.json.decode(text), ids) for pk, text, ids in rows)
        found = db.execute(
            "SELECT id, text, embedding FROM rag_chunks WHERE id = ANY(%s) ORDER BY id",
            (sorted(i for _, _, ids in rows for i in ids),),
            binary=True,
        ).fetchall()
        if found:
            chunks.append(_columns(found))
    relabelled = []
    if changes.relabelled:
        rows = db.execute(
            "SELECT pk, metadata::text FROM rag_documents WHERE pk = ANY(%s)",
            (sorted(changes.relabelled),),
        ).fetchall()
        relabelled = [(int(pk), msgspec.json.decode(text)) for pk, text in rows]
    return _ReadChanges(changes.removed, added, chunks, relabelled)


def _remove(loaded: LoadedIndex, pk: int, chunk_ids: Ids) -> None:
    loaded.index.remove(chunk_ids)
    loaded.lexical.remove(chunk_ids)
    loaded.metadata.remove(pk)


def _chunk_batches(db: Connection, collection_id: str) -> Iterator[tuple[Ids, Vectors, list[str]]]:
    """The collection's chunks in id order, a batch at a time."""
    after = -1
    while True:
        found = db.execute(
            "SELECT id, text, embedding FROM rag_chunks WHERE collection_id = %s AND id > %s "
            "ORDER BY id LIMIT %s",
            (collection_id, after, _READ_BATCH),
            binary=True,
        ).fetchall()
        if not found:
            return
        batch = _columns(found)
        yield batch
        after = int(batch[0][-1])


def _with_words(
    batches: Iterator[tuple[Ids, Vectors, list[str]]], lexical: LexicalIndex
) -> Iterator[tuple[Ids, Vectors]]:
    """The batches' ids and vectors, each batch's words put in ``lexical`` as it is read (so
    the chunks are read once for both indexes)."""
    for ids, vectors, texts in batches:
        lexical.add(ids, texts)
        yield ids, vectors


def _columns(rows: Sequence[tuple[Any, ...]]) -> tuple[Ids, Vectors, list[str]]:
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.ascontiguousarray(np.stack([row[2] for row in rows]), dtype=np.float32)
    return ids, vectors, [row[1] for row in rows]


def _version(db: Connection, collection: CollectionRow) -> int | None:
    found = db.execute(
        "SELECT version FROM rag_collections WHERE id = %s", (collection.id,)
    ).fetchone()
    return int(found[0]) if found is not None else None


def _gone(collection: CollectionRow) -> NotFoundError:
    return NotFoundError(
        f"No collection '{collection.id}' exists.",
        param="collection_id",
        code="collection_not_found",
    )
