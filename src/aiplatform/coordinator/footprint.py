"""How much memory a model takes: estimated from its files before it loads, measured as it loads.

A load is measured as the growth of what its device holds across it: for ``cpu`` the process's
resident memory (RSS, read from ``/proc``: Linux); for ``cuda:N`` torch's allocated bytes on the
device (a model torch loads) or, for a library that allocates by itself (llama.cpp offloading
layers), the device's used memory as torch reads it, when torch is already imported. Loads and
unloads of the process take turns (one lock), so two loads at once do not count each other.

An unload gives the freed memory back to the system: the C heap is trimmed (glibc keeps freed
memory otherwise, and the next model would seem to need none), torch's CUDA cache emptied.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CudaReading",
    "file_bytes",
    "measured_load",
    "measured_unload",
    "resident_bytes",
]

logger = logging.getLogger(__name__)

#: How a CUDA device's memory is read: torch's allocations, or the device's used memory.
CudaReading = Literal["allocated", "used"]

#: The files whose sizes estimate a model folder's weights.
_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth")

_TURNS = threading.Lock()


def measured_load(
    device: str, load: Callable[[], None], *, cuda: CudaReading = "allocated"
) -> int | None:
    """Run ``load``; the bytes it added on ``device`` (None: it cannot be read here)."""
    with _TURNS:
        before = _reading(device, cuda)
        load()
        after = _reading(device, cuda)
    if before is None or after is None:
        return None
    return max(after - before, 0)


def measured_unload(device: str, unload: Callable[[], None]) -> None:
    """Run ``unload`` and give what it freed back to the system."""
    with _TURNS:
        unload()
        gc.unfreeze()  # objects a loader froze out of the collector's reach (NeMo's) count too
        gc.collect()
        _give_back(device)


def resident_bytes() -> int | None:
    """The process's resident memory now (Linux; None elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _page_size()
    except (OSError, IndexError, ValueError):
        return None


@cache
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def file_bytes(path: Path) -> int:
    """The size of a model's weights on disk: a file, or the weight files of a folder."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(
            item.stat().st_size
            for item in path.rglob("*")
            if item.is_file() and item.suffix in _WEIGHT_SUFFIXES
        )
    return 0


def _reading(device: str, cuda: CudaReading) -> int | None:
    if device == "cpu":
        return resident_bytes()
    if device.startswith("cuda"):
        return _cuda_bytes(device, cuda)
    return None


def _cuda_bytes(device: str, how: CudaReading) -> int | None:
    torch: Any = sys.modules.get("torch")
    if torch is None:  # nothing in this process allocated through torch yet
        return 0 if how == "allocated" else None
    try:
        if not torch.cuda.is_available():
            return None
        if how == "allocated":
            allocated: int = torch.cuda.memory_allocated(device)
            return allocated
        free, total = torch.cuda.mem_get_info(device)
        return int(total - free)
    except Exception:  # a device that cannot be read is left to the estimate
        logger.debug("cannot read the memory of %s", device, exc_info=True)
        return None


def _give_back(device: str) -> None:
    if device == "cpu":
        _trim_heap()
        return
    torch: Any = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda"):
        try:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            logger.debug("cannot empty the CUDA cache", exc_info=True)


def _trim_heap() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        function: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return function
