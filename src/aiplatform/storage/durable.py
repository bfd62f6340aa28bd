"""Making a file's contents, and its name in a folder, survive a crash or power loss."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory", "fsync_file"]


def fsync_file(path: Path) -> None:
    """Flush the file's data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(folder: Path) -> None:
    """Flush the folder's entries (a file made or renamed in it) to the disk."""
    fsync_file(folder)
