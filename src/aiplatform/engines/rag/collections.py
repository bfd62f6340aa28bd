"""Collections in the RAG database: one row each.

A collection is only ever found through its owner (and its kind: documents or a conversation's
memory), so one tenant never sees another's.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from aiplatform.engines.rag.database import Database, json_text
from aiplatform.errors import ConflictError, NotFoundError

__all__ = ["CollectionRow", "Collections", "new_collection_row"]


@dataclass(frozen=True, slots=True)
class CollectionRow:
    id: str
    owner: str
    kind: str
    name: str
    embedding_model: str
    dimension: int
    index_type: str
    metadata: dict[str, Any]
    created_at: int
    #: Whether ``dimension`` is shorter than the model's own vectors (the embeddings engine is
    #: then asked for ``dimensions``; otherwise never, as not every upstream takes it).
    shortened: bool = False


class Collections:
    def __init__(self, database: Database) -> None:
        self._db = database

    def insert(self, db: sqlite3.Connection, row: CollectionRow) -> None:
        """Inside a write: the collection; 409 if the owner has one of that name."""
        try:
            db.execute(
                "INSERT INTO collections (id, owner, kind, name, embedding_model, dimension, "
                "shortened, index_type, metadata, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    row.owner,
                    row.kind,
                    row.name,
                    row.embedding_model,
                    row.dimension,
                    int(row.shortened),
                    row.index_type,
                    json_text(row.metadata),
                    row.created_at,
                ),
            )
        except db.IntegrityError:  # the driver's own (SQLite or SQLCipher)
            raise ConflictError(
                f"A collection named '{row.name}' already exists.",
                param="name",
                code="collection_exists",
            ) from None

    def get(self, owner: str, kind: str, ref: str) -> CollectionRow:
        """The owner's collection whose id or name is ``ref``; 404 otherwise."""
        row = (
            self._db.read()
            .execute(
                "SELECT * FROM collections WHERE owner = ? AND kind = ? AND (id = ? OR name = ?) "
                "ORDER BY id = ? DESC LIMIT 1",
                (owner, kind, ref, ref, ref),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(
                f"No collection '{ref}' exists.", param="collection_id", code="collection_not_found"
            )
        return _collection(row)

    def find(self, owner: str, kind: str, name: str) -> CollectionRow | None:
        row = (
            self._db.read()
            .execute(
                "SELECT * FROM collections WHERE owner = ? AND kind = ? AND name = ?",
                (owner, kind, name),
            )
            .fetchone()
        )
        return _collection(row) if row is not None else None

    def of_owner(self, owner: str, kind: str) -> list[CollectionRow]:
        rows = self._db.read().execute(
            "SELECT * FROM collections WHERE owner = ? AND kind = ? ORDER BY created_at, id",
            (owner, kind),
        )
        return [_collection(row) for row in rows.fetchall()]

    def counts(self, collection: CollectionRow) -> tuple[int, int]:
        """Documents and chunks."""
        reader = self._db.read()
        documents = reader.execute(
            "SELECT count(*) FROM documents WHERE collection_id = ?", (collection.id,)
        ).fetchone()[0]
        chunks = reader.execute(
            "SELECT count(*) FROM chunks WHERE collection_id = ?", (collection.id,)
        ).fetchone()[0]
        return int(documents), int(chunks)

    @staticmethod
    def delete(db: sqlite3.Connection, collection: CollectionRow) -> None:
        """Inside a write: the collection, its documents and chunks."""
        db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

    @staticmethod
    def require(db: sqlite3.Connection, collection: CollectionRow) -> None:
        """Inside a write: the collection still exists (it may have been deleted meanwhile)."""
        if (
            db.execute("SELECT 1 FROM collections WHERE id = ?", (collection.id,)).fetchone()
            is None
        ):
            raise NotFoundError(
                f"No collection '{collection.id}' exists.",
                param="collection_id",
                code="collection_not_found",
            )


def new_collection_row(
    owner: str,
    kind: str,
    name: str,
    *,
    embedding_model: str,
    dimension: int,
    index_type: str,
    metadata: dict[str, Any],
    shortened: bool,
) -> CollectionRow:
    return CollectionRow(
        id=f"col_{uuid.uuid4().hex[:20]}",
        owner=owner,
        kind=kind,
        name=name,
        embedding_model=embedding_model,
        dimension=dimension,
        index_type=index_type,
        metadata=metadata,
        created_at=int(time.time()),
        shortened=shortened,
    )


def _collection(row: sqlite3.Row) -> CollectionRow:
    return CollectionRow(
        id=row["id"],
        owner=row["owner"],
        kind=row["kind"],
        name=row["name"],
        embedding_model=row["embedding_model"],
        dimension=int(row["dimension"]),
        index_type=row["index_type"],
        metadata=msgspec.json.decode(row["metadata"]),
        created_at=int(row["created_at"]),
        shortened=bool(row["shortened"]),
    )
