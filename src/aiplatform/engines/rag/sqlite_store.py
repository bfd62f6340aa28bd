"""The RAG engine's embedded store: SQLite for collections, documents and chunks (with their
text and vectors); per collection in memory a FAISS index, a lexical (BM25) index and a
metadata index, the first two with files beside the database.

Durability: every change is one SQLite transaction in WAL mode with ``synchronous=FULL``, so a
change the engine acknowledges survives a crash or power loss. The indexes are derived
(:mod:`~aiplatform.engines.rag.residency`): written now and then, and caught up with the
database when loaded. Deletes are real: rows go, ``secure_delete`` overwrites the freed pages,
the log is checkpointed, and the index files are rewritten without the deleted chunks.

Every read and write names the owner: a collection is only ever found through its owner, and
documents and chunks only through their collection.

This class binds the repositories (:mod:`~aiplatform.engines.rag.collections`,
:mod:`~aiplatform.engines.rag.documents`) to the index residency, so that each write changes
the database and the loaded index together.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from aiplatform.engines.rag.collections import CollectionRow, Collections, new_collection_row
from aiplatform.engines.rag.database import Database
from aiplatform.engines.rag.documents import ChunkRecord, DocumentRow, Documents, PreparedDocument
from aiplatform.engines.rag.index import Ids, IndexParams, VectorIndex, Vectors
from aiplatform.engines.rag.lexical import cut_words
from aiplatform.engines.rag.residency import IndexResidency, LoadedIndex

__all__ = [
    "ChunkRecord",
    "CollectionRow",
    "DocumentRow",
    "PreparedDocument",
    "SqliteStore",
]

logger = logging.getLogger(__name__)


class SqliteStore:
    def __init__(
        self,
        folder: str | Path,
        params: IndexParams,
        *,
        checkpoint_every: int,
        index_memory_bytes: int | None = None,
        storage_key: str | None = None,
    ) -> None:
        self._folder = Path(folder)
        self._db = Database(self._folder / "rag.sqlite3", key=storage_key)
        self.collections = Collections(self._db)
        self.documents = Documents(self._db)
        self.residency = IndexResidency(
            self._folder / "indexes",
            params,
            self._db,
            self.documents,
            checkpoint_every=checkpoint_every,
            memory_bytes=index_memory_bytes,
            persist_words=storage_key is None,
        )
        #: Whether deleted rows' old pages may still sit in the write-ahead log.
        self._log_holds_deleted = False
        #: Cuts added chunks' words while their transaction commits (while open).
        self._cutter = _closed_cutter()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def database_path(self) -> Path:
        return self._db.path

    @property
    def _indexes(self) -> OrderedDict[str, LoadedIndex]:
        return self.residency.indexes

    def open(self) -> None:
        self.residency.open()
        self._db.open()
        self._cutter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-words")

    def close(self) -> None:
        """Write every changed index, then close the database."""
        with self._db.write_lock:
            self.residency.save_all()
            self._purge_deleted_text()
            self._db.close()
        self._cutter.shutdown()
        self._cutter = _closed_cutter()

    # -- collections ---------------------------------------------------------------------------

    def create_collection(
        self,
        owner: str,
        kind: str,
        name: str,
        *,
        embedding_model: str,
        dimension: int,
        index_type: str,
        metadata: dict[str, Any],
        shortened: bool = False,
    ) -> CollectionRow:
        row = new_collection_row(
            owner,
            kind,
            name,
            embedding_model=embedding_model,
            dimension=dimension,
            index_type=index_type,
            metadata=metadata,
            shortened=shortened,
        )
        with self._db.write_lock:
            with self._db.transaction() as db:
                self.collections.insert(db, row)
            self.residency.created(row)
        return row

    def collection(self, owner: str, kind: str, ref: str) -> CollectionRow:
        """The owner's collection whose id or name is ``ref``; 404 otherwise."""
        return self.collections.get(owner, kind, ref)

    def find_collection(self, owner: str, kind: str, name: str) -> CollectionRow | None:
        return self.collections.find(owner, kind, name)

    def list_collections(self, owner: str, kind: str) -> list[CollectionRow]:
        return self.collections.of_owner(owner, kind)

    def counts(self, collection: CollectionRow) -> tuple[int, int]:
        """Documents and chunks."""
        return self.collections.counts(collection)

    def indexed_count(self, collection: CollectionRow) -> int | None:
        """Vectors the collection's index answers for; None while it is not in memory."""
        return self.residency.size_of(collection)

    def delete_collection(self, collection: CollectionRow) -> None:
        with self._db.write_lock:
            with self._db.transaction() as db:
                Collections.delete(db, collection)
            self._log_holds_deleted = True
            self.residency.dropped(collection.id)

    # -- documents -----------------------------------------------------------------------------

    def add_documents(
        self, collection: CollectionRow, documents: Sequence[PreparedDocument]
    ) -> list[DocumentRow]:
        """Store ``documents`` in one transaction (all or none), then index their chunks.

        Their chunks' words are cut on another thread while the commit is flushed to the disk
        (which lets go of the interpreter)."""
        texts = [chunk.text for document in documents for chunk in document.chunks]
        with self._db.write_lock:
            # loaded (and caught up) before the change, so the change is applied to it once
            self.residency.loaded(collection)
            with self._db.transaction() as db:
                Collections.require(db, collection)
                added, chunk_ids = Documents.insert(db, collection, documents, int(time.time()))
                words = self._cutter.submit(cut_words, texts)
            if chunk_ids:
                with self._indexes_follow(collection):
                    self.residency.added(
                        collection,
                        added,
                        documents,
                        np.asarray(chunk_ids, dtype=np.int64),
                        words.result(),
                    )
        return added

    def existing_document_ids(self, collection: CollectionRow, ids: Sequence[str]) -> set[str]:
        return self.documents.existing_ids(collection, ids)

    def document(self, collection: CollectionRow, document_id: str, *, text: bool) -> DocumentRow:
        return self.documents.get(collection, document_id, text=text)

    def list_documents(
        self, collection: CollectionRow, *, limit: int, after: str | None, order: str = "id"
    ) -> tuple[list[DocumentRow], bool]:
        """A page of documents ordered by id (or by ``pk``: insertion order), and whether more
        follow."""
        return self.documents.page(collection, limit=limit, after=after, order=order)

    def latest_documents(self, collection: CollectionRow, limit: int) -> list[DocumentRow]:
        """The last ``limit`` documents added, oldest first, with their text."""
        return self.documents.latest(collection, limit)

    def delete_document(self, collection: CollectionRow, document_id: str) -> None:
        with self._db.write_lock:
            self.residency.loaded(collection)
            with self._db.transaction() as db:
                pk, chunk_ids = Documents.delete(db, collection, document_id)
            self._log_holds_deleted = True
            with self._indexes_follow(collection):
                self.residency.removed(collection, pk, chunk_ids)

    def update_metadata(
        self, collection: CollectionRow, document_id: str, metadata: dict[str, Any]
    ) -> DocumentRow:
        with self._db.write_lock:
            self.residency.loaded(collection)
            with self._db.transaction() as db:
                pk = Documents.update_metadata(db, collection, document_id, metadata)
            with self._indexes_follow(collection):
                self.residency.metadata_changed(collection, pk, metadata)
        return self.documents.get(collection, document_id, text=False)

    @contextmanager
    def _indexes_follow(self, collection: CollectionRow) -> Iterator[None]:
        """The in-memory indexes following a change the database has committed. Should that
        fail, the change stands (it is durable and was acknowledged) and the indexes are
        dropped from memory, to be loaded and caught up with the database when next used."""
        try:
            yield
        except Exception:
            logger.exception("the indexes of %s are reloaded from the database", collection.id)
            self.residency.forget(collection.id)

    # -- search --------------------------------------------------------------------------------

    def matching_chunk_ids(self, collection: CollectionRow, spec: dict[str, Any]) -> Ids:
        return self.residency.loaded(collection).metadata.matching(spec)

    def vector_search(
        self, collection: CollectionRow, query: Vectors, k: int, allowed: Ids | None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunks most similar to ``query``, among ``allowed`` when given."""
        scores, ids = self.index_of(collection).search(query, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def exact_search(
        self, collection: CollectionRow, query: Vectors, k: int, ids: Ids
    ) -> list[tuple[int, float]]:
        """Scores of every chunk in ``ids`` against ``query``, best ``k`` first: a filtered
        search that matches few chunks reads them and ranks them all."""
        vectors = self.documents.chunk_vectors(collection, ids)
        if not vectors:
            return []
        order = np.fromiter(vectors, dtype=np.int64)
        scores = np.stack([vectors[int(i)] for i in order]) @ query[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(order[i]), float(scores[i])) for i in best]

    def lexical_search(
        self, collection: CollectionRow, text: str, k: int, allowed: Ids | None
    ) -> list[tuple[int, float]]:
        """The ``k`` chunks that best match ``text`` by BM25 (higher is better), among
        ``allowed`` when given."""
        scores, ids = self.residency.loaded(collection).lexical.search(text, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def chunk_records(
        self, collection: CollectionRow, ids: Sequence[int]
    ) -> dict[int, ChunkRecord]:
        return self.documents.chunk_records(collection, ids)

    def chunk_vectors(
        self, collection: CollectionRow, ids: Ids | Sequence[int]
    ) -> dict[int, Vectors]:
        return self.documents.chunk_vectors(collection, ids)

    # -- indexes -------------------------------------------------------------------------------

    def index_of(self, collection: CollectionRow) -> VectorIndex:
        """The collection's index, loaded (and caught up with the database) if it is not."""
        return self.residency.index_of(collection)

    def maintenance_due(self, collection: CollectionRow) -> bool:
        """Never found by a search: this store's changes are all made here, and each schedules
        its maintenance."""
        return False

    def maintain(self, collection: CollectionRow) -> None:
        """Purge deleted text from the files; rebuild or write the collection's index when
        that is due."""
        with self._db.write_lock:
            self._purge_deleted_text()
        self.residency.maintain(collection)

    def _purge_deleted_text(self) -> None:
        """Checkpoint the log, which still holds the pages deleted rows were on."""
        if not self._log_holds_deleted or not self._db.is_open:
            return
        self._db.checkpoint()
        self._log_holds_deleted = False


def _closed_cutter() -> ThreadPoolExecutor:
    """An executor that takes no work (the store is not open)."""
    cutter = ThreadPoolExecutor(max_workers=1)
    cutter.shutdown()
    return cutter
