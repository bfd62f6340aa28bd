"""Which leaser the engines built now lease from: set by the server while it builds them.

An engine kind's factory takes only its own settings section, so the server hands the memory
coordinator to the engines it builds through this context variable (:func:`leasing_from`
around the build); an engine made outside it, or with the coordinator off, gets None and
behaves as without a coordinator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiplatform.coordinator.leases import Leaser

__all__ = ["current_leaser", "leasing_from"]

_leaser: ContextVar[Leaser | None] = ContextVar("aiplatform_leaser", default=None)


def current_leaser() -> Leaser | None:
    """The leaser of the engines being built (None: the coordinator is off)."""
    return _leaser.get()


@contextmanager
def leasing_from(leaser: Leaser | None) -> Iterator[None]:
    """Engines built inside the block lease their memory from ``leaser``."""
    token = _leaser.set(leaser)
    try:
        yield
    finally:
        _leaser.reset(token)
