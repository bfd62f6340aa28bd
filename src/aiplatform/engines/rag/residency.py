"""Which collections' indexes are in memory, and how they agree with the database.

A collection in memory has three indexes, all derived from the database: its vector index
(FAISS), its lexical index (BM25 over the chunks' words) and its metadata index (what filters
resolve to chunk ids with). The vector and lexical indexes are loaded from their files when the
collection is first used, compared with the database then and caught up (chunks missing from
them added, removed ones taken out), or rebuilt from the database when a file is missing or
unreadable; the metadata index is built from the database each time. The vector and lexical
indexes are written (atomically) after ``checkpoint_every`` changes, and when all loaded
collections' indexes together exceed the memory budget the least recently used are written and
dropped. IVF clustering and HNSW graphs with many masked nodes are rebuilt in the background,
while searches use the old index.

Changes to a loaded index are made under the database's write lock, with the write they follow.
The files written after changes (:meth:`IndexResidency.maintain`) are written without it: each
index is copied under its own lock, and the copies written and flushed while writes go on; the
files then replace the old ones under the write lock, unless the collection was deleted (or its
indexes dropped from memory) meanwhile, or a later copy was written first. The changes made
while the files were written still count as unwritten.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiplatform.engines.rag.collections import CollectionRow
from aiplatform.engines.rag.database import Database
from aiplatform.engines.rag.documents import DocumentRow, Documents, PreparedDocument
from aiplatform.engines.rag.index import Ids, IndexParams, VectorIndex
from aiplatform.engines.rag.lexical import ChunkWords, LexicalIndex, cut_words
from aiplatform.engines.rag.metadata_index import MetadataIndex
from aiplatform.storage.durable import fsync_directory

__all__ = ["IndexResidency", "LoadedIndex"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LoadedIndex:
    """A collection's indexes and the changes made since they were last written."""

    index: VectorIndex
    lexical: LexicalIndex
    metadata: MetadataIndex
    dirty: int = 0
    #: Chunks removed since the indexes were last written (their files still hold them).
    removed: int = 0
    rebuilding: bool = False
    #: Snapshots of the indexes taken to be written so far, and the one their files hold
    #: (files are replaced only by those of a later snapshot).
    snapshots: int = 0
    written: int = 0
    #: Whether a snapshot is being written outside the write lock.
    writing: bool = False

    @property
    def memory_bytes(self) -> int:
        return self.index.memory_bytes + self.lexical.memory_bytes + self.metadata.memory_bytes


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
        persist_words: bool = True,
    ) -> None:
        """``persist_words``: whether lexical indexes are written to files (they hold the
        collection's words; with an encrypted database they are not, and are built from it
        each time a collection is loaded)."""
        self._folder = folder
        self._params = params
        self._db = database
        self._documents = documents
        self._checkpoint_every = checkpoint_every
        self._budget = memory_bytes
        self._persist_words = persist_words
        #: Loaded indexes, least recently used first.
        self.indexes: OrderedDict[str, LoadedIndex] = OrderedDict()
        #: Held while a snapshot is copied and written: one copy in memory at a time.
        self._snapshot_lock = threading.Lock()

    def path(self, collection_id: str) -> Path:
        """The vector index's file."""
        return self._folder / f"{collection_id}.faiss"

    def lexical_path(self, collection_id: str) -> Path:
        return self._folder / f"{collection_id}.lexical"

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
            VectorIndex(collection.dimension, collection.index_type, self._params),
            LexicalIndex(),
            MetadataIndex(),
        )
        self._evict(keep=collection.id)

    def dropped(self, collection_id: str) -> None:
        """The collection was deleted: its indexes go, with their files (and any a write cut
        short left behind)."""
        self.indexes.pop(collection_id, None)
        for path in (self.path(collection_id), self.lexical_path(collection_id)):
            for leftover in (f".{path.name}.tmp", f".{path.name}.snapshot"):
                path.with_name(leftover).unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def added(
        self,
        collection: CollectionRow,
        rows: Sequence[DocumentRow],
        documents: Sequence[PreparedDocument],
        chunk_ids: Ids,
        words: ChunkWords | None = None,
    ) -> None:
        """The stored ``documents`` (``rows``; their chunks got ``chunk_ids``, in order), with
        their chunks' ``words`` when they were cut already (:func:`~.lexical.cut_words`)."""
        loaded = self.loaded(collection)
        if words is None:
            words = cut_words([chunk.text for document in documents for chunk in document.chunks])
        vectors = np.concatenate([document.vectors for document in documents])
        loaded.index.add(chunk_ids, np.ascontiguousarray(vectors, dtype=np.float32))
        loaded.lexical.add(chunk_ids, words)
        start = 0
        for row, document in zip(rows, documents, strict=True):
            end = start + len(document.chunks)
            loaded.metadata.add(row.pk, document.metadata, chunk_ids[start:end])
            start = end
        loaded.dirty += int(chunk_ids.size)
        self._evict(keep=collection.id)

    def removed(self, collection: CollectionRow, document_pk: int, ids: Ids) -> None:
        loaded = self.loaded(collection)
        loaded.index.remove(ids)
        loaded.lexical.remove(ids)
        loaded.metadata.remove(document_pk)
        loaded.dirty += int(ids.size)
        loaded.removed += int(ids.size)

    def metadata_changed(
        self, collection: CollectionRow, document_pk: int, metadata: dict[str, Any]
    ) -> None:
        self.loaded(collection).metadata.update(document_pk, metadata)

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
            if loaded is not None:
                self.indexes.move_to_end(collection.id)
                return loaded
            loaded = self._load(collection)
            self._evict(keep=collection.id)
            return loaded

    def forget(self, collection_id: str) -> None:
        """Drop the collection's indexes from memory without writing them: the next use loads
        them and catches them up with the database (after a change that reached the database
        but not all of them)."""
        with self._db.write_lock:
            self.indexes.pop(collection_id, None)

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
        # written when the changes since reach what the file holds (or checkpoint_every): the
        # bytes written while a collection grows stay within about twice its final size
        threshold = max(self._checkpoint_every, loaded.index.size - loaded.dirty)
        if loaded.dirty >= threshold or loaded.removed:
            self._write(collection.id, loaded)

    # -- internals -----------------------------------------------------------------------------

    def _evict(self, *, keep: str) -> None:
        """Write and drop the least recently used indexes while all of them together exceed
        the memory budget (the one in use stays, however large)."""
        if self._budget is None:
            return
        total = sum(loaded.memory_bytes for loaded in self.indexes.values())
        for collection_id in list(self.indexes):
            if total <= self._budget:
                return
            loaded = self.indexes[collection_id]
            if collection_id == keep or loaded.rebuilding:
                continue
            if loaded.dirty:
                self._save(collection_id, loaded)
            total -= loaded.memory_bytes
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
            if self.indexes.get(collection.id) is not loaded:
                return  # the collection was deleted (or its indexes dropped) meanwhile
            self._catch_up(collection.id, fresh)
            loaded.index.replace_with(fresh)
            loaded.dirty += 1  # the files hold the index it replaced
        self._write(collection.id, loaded)
        logger.info(
            "rebuilt the index of %s (%d vectors) in %.1f s",
            collection.id,
            count,
            time.perf_counter() - started,
        )

    def _load(self, collection: CollectionRow) -> LoadedIndex:
        loaded = LoadedIndex(
            self._read_vectors(collection), self._read_lexical(collection), MetadataIndex()
        )
        for pk, metadata, chunk_ids in self._documents.metadata_of(collection.id):
            loaded.metadata.add(pk, metadata, chunk_ids)
        changes = self._catch_up(collection.id, loaded.index)
        changes += self._catch_up_lexical(collection.id, loaded.lexical)
        # in use only once complete: a load that fails leaves nothing half-built behind
        self.indexes[collection.id] = loaded
        if changes:
            logger.info("caught the indexes of %s up by %d changes", collection.id, changes)
            self._save(collection.id, loaded)
        return loaded

    def _read_vectors(self, collection: CollectionRow) -> VectorIndex:
        path = self.path(collection.id)
        if path.exists():
            try:
                return VectorIndex.load(
                    path, collection.dimension, collection.index_type, self._params
                )
            except ValueError as exc:
                logger.warning("rebuilding the vector index of %s: %s", collection.id, exc)
        return VectorIndex(collection.dimension, collection.index_type, self._params)

    def _read_lexical(self, collection: CollectionRow) -> LexicalIndex:
        path = self.lexical_path(collection.id)
        if not self._persist_words:
            path.unlink(missing_ok=True)
            return LexicalIndex()
        if path.exists():
            try:
                return LexicalIndex.load(path)
            except ValueError as exc:
                logger.warning("rebuilding the lexical index of %s: %s", collection.id, exc)
        return LexicalIndex()

    def _catch_up_lexical(self, collection_id: str, lexical: LexicalIndex) -> int:
        """Make ``lexical`` answer for exactly the collection's chunks in the database."""
        extra, missing = self._differences(collection_id, lexical.ids())
        lexical.remove(extra)
        for ids, texts in self._documents.text_batches(collection_id, missing):
            lexical.add(ids, texts)
        return int(extra.size + missing.size)

    def _catch_up(self, collection_id: str, index: VectorIndex) -> int:
        """Make ``index`` answer for exactly the collection's chunks in the database."""
        extra, missing = self._differences(collection_id, index.ids())
        index.remove(extra)
        for ids, vectors in self._documents.vector_batches(collection_id, missing):
            index.add(ids, vectors)
        return int(extra.size + missing.size)

    def _differences(self, collection_id: str, indexed: Ids) -> tuple[Ids, Ids]:
        """The ids an index holds that the database does not, and those it lacks."""
        stored = self._documents.ids(
            "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)
        )
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        return extra, np.setdiff1d(stored, indexed, assume_unique=True)

    def _save(self, collection_id: str, loaded: LoadedIndex) -> None:
        """Write the collection's indexes (under the write lock: nothing changes meanwhile)."""
        loaded.index.save(self.path(collection_id))
        if self._persist_words:
            loaded.lexical.save(self.lexical_path(collection_id))
        loaded.snapshots += 1
        loaded.written = loaded.snapshots
        loaded.dirty = loaded.removed = 0

    def _write(self, collection_id: str, loaded: LoadedIndex) -> None:
        """Write the collection's indexes without the write lock held while the files are
        written (see the module's documentation); nothing when they are being written already
        or the collection is no longer loaded."""
        with self._db.write_lock:
            if self.indexes.get(collection_id) is not loaded or loaded.writing:
                return
            loaded.writing = True
            loaded.snapshots += 1
            number, dirty, removed = loaded.snapshots, loaded.dirty, loaded.removed
        staged: list[tuple[Path, Path]] = []
        try:
            with self._snapshot_lock:
                for path, index in self._files(collection_id, loaded):
                    staged.append((path.with_name(f".{path.name}.snapshot"), path))
                    index.write(staged[-1][0])
            with self._db.write_lock:
                if self.indexes.get(collection_id) is not loaded or loaded.written > number:
                    return  # deleted or dropped meanwhile, or written from a later snapshot
                for temporary, path in staged:
                    os.replace(temporary, path)
                staged.clear()
                fsync_directory(self._folder)
                loaded.written = number
                loaded.dirty -= dirty
                loaded.removed -= removed
        finally:
            for temporary, _ in staged:
                temporary.unlink(missing_ok=True)
            loaded.writing = False

    def _files(
        self, collection_id: str, loaded: LoadedIndex
    ) -> list[tuple[Path, VectorIndex | LexicalIndex]]:
        """The indexes that are written to files, with their files."""
        files: list[tuple[Path, VectorIndex | LexicalIndex]] = [
            (self.path(collection_id), loaded.index)
        ]
        if self._persist_words:
            files.append((self.lexical_path(collection_id), loaded.lexical))
        return files
