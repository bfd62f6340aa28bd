"""Which collections' vector indexes are in memory, and how they agree with the database.

An index is loaded when its collection is first used, compared with the database then and
caught up (vectors missing from it added, removed ones taken out), or rebuilt from the database
when its file is missing or unreadable. Indexes are derived data: each is written (atomically)
after ``checkpoint_every`` changes, and when all loaded ones together exceed the memory budget
the least recently used are written and dropped. IVF clustering and HNSW graphs with many
masked nodes are rebuilt in the background, while searches use the old index.

Changes to a loaded index are made under the database's write lock, with the write they follow.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiplatform.engines.rag.collections import CollectionRow
from aiplatform.engines.rag.database import Database
from aiplatform.engines.rag.documents import Documents
from aiplatform.engines.rag.index import Ids, IndexParams, VectorIndex, Vectors

__all__ = ["IndexResidency", "LoadedIndex"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadedIndex:
    """A collection's index and the changes made since it was last written."""

    index: VectorIndex
    dirty: int = 0
    #: Vectors removed since the index was last written (their file still holds them).
    removed: int = 0
    rebuilding: bool = False


class IndexResidency:
    def __init__(
        self,
        folder: Path,
        params: IndexParams,
        database: Database,
        documents: Documents,
        *,
        checkpoint_every: int,
        memory_bytes: int | None,
    ) -> None:
        self._folder = folder
        self._params = params
        self._db = database
        self._documents = documents
        self._checkpoint_every = checkpoint_every
        self._budget = memory_bytes
        #: Loaded indexes, least recently used first.
        self.indexes: OrderedDict[str, LoadedIndex] = OrderedDict()

    def path(self, collection_id: str) -> Path:
        return self._folder / f"{collection_id}.faiss"

    def open(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)

    def save_all(self) -> None:
        """Write every changed index (at shutdown)."""
        with self._db.write_lock:
            for collection_id, loaded in self.indexes.items():
                if loaded.dirty:
                    self._save(collection_id, loaded)

    # -- following the database's changes (under its write lock) -------------------------------

    def created(self, collection: CollectionRow) -> None:
        self.indexes[collection.id] = LoadedIndex(
            VectorIndex(collection.dimension, collection.index_type, self._params)
        )
        self._evict(keep=collection.id)

    def dropped(self, collection_id: str) -> None:
        self.indexes.pop(collection_id, None)
        self.path(collection_id).unlink(missing_ok=True)

    def added(self, collection: CollectionRow, ids: Ids, vectors: Vectors) -> None:
        loaded = self.loaded(collection)
        loaded.index.add(ids, vectors)
        loaded.dirty += int(ids.size)
        self._evict(keep=collection.id)

    def removed(self, collection: CollectionRow, ids: Ids) -> None:
        loaded = self.loaded(collection)
        loaded.index.remove(ids)
        loaded.dirty += int(ids.size)
        loaded.removed += int(ids.size)

    # -- use -----------------------------------------------------------------------------------

    def index_of(self, collection: CollectionRow) -> VectorIndex:
        """The collection's index, loaded (and caught up with the database) if it is not."""
        return self.loaded(collection).index

    def size_of(self, collection: CollectionRow) -> int | None:
        """Vectors the index answers for; None while it is not in memory (it is not loaded
        just to be counted)."""
        loaded = self.indexes.get(collection.id)
        return loaded.index.size if loaded is not None else None

    def loaded(self, collection: CollectionRow) -> LoadedIndex:
        with self._db.write_lock:
            loaded = self.indexes.get(collection.id)
            if loaded is None:
                loaded = self._load(collection)
            self.indexes.move_to_end(collection.id)
            self._evict(keep=collection.id)
            return loaded

    def maintain(self, collection: CollectionRow) -> None:
        """Rebuild the collection's index when that pays (IVF clustering, masked HNSW nodes)
        and write it when enough has changed since it was last written, or when vectors were
        removed (so that deleted documents leave the index file as their text leaves the
        database; an HNSW graph is rebuilt from the database for it, outside the write
        lock)."""
        loaded = self.indexes.get(collection.id)
        if loaded is None or loaded.rebuilding:
            return
        if loaded.index.wants_rebuild() or loaded.index.masked_count:
            loaded.rebuilding = True
            try:
                self._rebuild(collection, loaded)
            finally:
                loaded.rebuilding = False
            return
        threshold = max(self._checkpoint_every, loaded.index.size // 4)
        if loaded.dirty >= threshold or loaded.removed:
            with self._db.write_lock:
                self._save(collection.id, loaded)

    # -- internals -----------------------------------------------------------------------------

    def _evict(self, *, keep: str) -> None:
        """Write and drop the least recently used indexes while all of them together exceed
        the memory budget (the one in use stays, however large)."""
        if self._budget is None:
            return
        total = sum(loaded.index.memory_bytes for loaded in self.indexes.values())
        for collection_id in list(self.indexes):
            if total <= self._budget:
                return
            loaded = self.indexes[collection_id]
            if collection_id == keep or loaded.rebuilding:
                continue
            if loaded.dirty:
                self._save(collection_id, loaded)
            total -= loaded.index.memory_bytes
            del self.indexes[collection_id]
            logger.debug("dropped the index of %s from memory", collection_id)

    def _rebuild(self, collection: CollectionRow, loaded: LoadedIndex) -> None:
        """A new index from the database, built while searches use the old one, then caught up
        with the changes made meanwhile and swapped in."""
        started = time.perf_counter()
        count = int(
            self._db.read()
            .execute("SELECT count(*) FROM chunks WHERE collection_id = ?", (collection.id,))
            .fetchone()[0]
        )
        fresh = loaded.index.rebuilt(self._documents.vector_batches(collection.id, None), count)
        with self._db.write_lock:
            self._catch_up(collection.id, fresh)
            loaded.index.replace_with(fresh)
            self._save(collection.id, loaded)
        logger.info(
            "rebuilt the index of %s (%d vectors) in %.1f s",
            collection.id,
            count,
            time.perf_counter() - started,
        )

    def _load(self, collection: CollectionRow) -> LoadedIndex:
        path = self.path(collection.id)
        index = None
        if path.exists():
            try:
                index = VectorIndex.load(
                    path, collection.dimension, collection.index_type, self._params
                )
            except ValueError as exc:
                logger.warning("rebuilding the index of %s: %s", collection.id, exc)
        if index is None:
            index = VectorIndex(collection.dimension, collection.index_type, self._params)
        loaded = LoadedIndex(index)
        self.indexes[collection.id] = loaded
        changes = self._catch_up(collection.id, index)
        if changes:
            logger.info("caught the index of %s up by %d changes", collection.id, changes)
            self._save(collection.id, loaded)
        return loaded

    def _catch_up(self, collection_id: str, index: VectorIndex) -> int:
        """Make ``index`` answer for exactly the collection's chunks in the database."""
        stored = self._documents.ids(
            "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)
        )
        indexed = index.ids()
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        missing = np.setdiff1d(stored, indexed, assume_unique=True)
        index.remove(extra)
        for ids, vectors in self._documents.vector_batches(collection_id, missing):
            index.add(ids, vectors)
        return int(extra.size + missing.size)

    def _save(self, collection_id: str, loaded: LoadedIndex) -> None:
        loaded.index.save(self.path(collection_id))
        loaded.dirty = loaded.removed = 0
