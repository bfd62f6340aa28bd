"""The store ``[engines.rag] store`` names, made from the section's settings."""

from __future__ import annotations

from pathlib import Path

from aiplatform.engines.rag.index import IndexParams
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.rag.sqlite_store import SqliteStore
from aiplatform.engines.rag.store import RagStore

__all__ = ["index_params", "make_store"]


def index_params(settings: RagSettings) -> IndexParams:
    return IndexParams(
        hnsw_m=settings.hnsw_m,
        hnsw_ef_search=settings.hnsw_ef_search,
        ivf_min_train=settings.ivf_min_train,
        ivf_nprobe=settings.ivf_nprobe,
        sq_min_train=settings.sq_min_train,
        ivfpq_dims_per_code=settings.ivfpq_dims_per_code,
    )


def make_store(settings: RagSettings, folder: Path, *, storage_key: str | None) -> RagStore:
    """The embedded store under ``folder`` (its SQLite file encrypted with ``storage_key`` when
    one is set), or the PostgreSQL store at ``database_url``."""
    budget = settings.index_memory_mb
    if settings.store == "postgres":
        assert settings.database_url is not None  # the settings refuse it otherwise
        from aiplatform.engines.rag.postgres_store import PostgresStore

        return PostgresStore(
            settings.database_url,
            index_params(settings),
            max_connections=settings.database_connections,
            timeout_s=settings.connect_timeout_s,
            index_memory_bytes=budget * 1024 * 1024 if budget is not None else None,
        )
    return SqliteStore(
        folder,
        index_params(settings),
        checkpoint_every=settings.checkpoint_every,
        index_memory_bytes=budget * 1024 * 1024 if budget is not None else None,
        storage_key=storage_key,
    )
