"""How much memory a loaded LLM model holds: what the backend reports, or what loading it added.

A backend may report its size itself (a ``memory_bytes`` attribute: bytes, or None when it
cannot tell). Otherwise :class:`MeasuredModel` measures the process's resident memory before
and after each load. That figure is approximate: it is the host memory the load added (not an
accelerator's), a model whose weights are memory-mapped grows as pages are first read, and
another load or a large request at the same moment shifts it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiplatform.engines.llm.generation import (
        LLMModel,
        Piece,
        PreparedPrompt,
        SamplingParams,
    )

__all__ = ["MeasuredModel", "memory_bytes", "resident_bytes"]


class MeasuredModel:
    """``model``, whose loads are measured; every call passes through to it."""

    def __init__(self, model: LLMModel) -> None:
        self.inner = model
        self._measured: int | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    @property
    def slots(self) -> int:
        return self.inner.slots

    @property
    def memory_bytes(self) -> int | None:
        """What the backend reports, else what its last load added (None: not loaded here)."""
        reported = memory_bytes(self.inner)
        return reported if reported is not None else self._measured

    def load(self) -> None:
        before = resident_bytes()
        self.inner.load()
        after = resident_bytes()
        if before is not None and after is not None:
            self._measured = max(after - before, 0)

    def unload(self) -> None:
        self._measured = None
        self.inner.unload()

    def prepare_chat(self, messages: Sequence[dict[str, str]]) -> PreparedPrompt:
        return self.inner.prepare_chat(messages)

    def prepare_text(self, prompt: str) -> PreparedPrompt:
        return self.inner.prepare_text(prompt)

    def generate(
        self, prompt: PreparedPrompt, params: SamplingParams, cancelled: threading.Event
    ) -> Iterator[Piece]:
        return self.inner.generate(prompt, params, cancelled)


def memory_bytes(model: object) -> int | None:
    """The size ``model`` reports (its ``memory_bytes``), or None."""
    size = getattr(model, "memory_bytes", None)
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    return None


def resident_bytes() -> int | None:
    """The process's resident memory now (Linux; None elsewhere)."""
    page = _page_size()
    if page is None:
        return None
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * page
    except (OSError, IndexError, ValueError):
        return None


@cache
def _page_size() -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    return os.sysconf("SC_PAGE_SIZE")
