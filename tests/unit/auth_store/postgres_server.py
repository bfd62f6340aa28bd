"""A throwaway PostgreSQL server (``pgserver``: PostgreSQL 16 shipped in a wheel) in a temp
folder, reached over its Unix socket."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["postgres_server"]


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a fresh database, dropped with its files when the block ends."""
    with warnings.catch_warnings():
        # platformdirs warns on import where XDG_RUNTIME_DIR is unset (CI machines)
        warnings.simplefilter("ignore")
        import pgserver

    folder = Path(tempfile.mkdtemp(prefix="aiplatform-postgres-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
