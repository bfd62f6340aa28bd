"""Which loaded models make room for a waiting load: the coordinator's eviction policy.

A model in use is never unloaded under its requests: it is asked to unload at its next safe
point, when its running requests have finished (and it takes no new ones meanwhile). Who may be
asked, for a load of priority ``p``:

- an idle model (no request running) of priority ``<= p``;
- a busy model of priority ``< p`` (a higher-priority load preempts it once its requests end).

Idle models go before busy ones, then lower priorities before higher, then the least recently
used first. Nothing is asked when all of them together would not make room: the load waits
for something to change (a release, an expiry, a model falling idle) instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Candidate", "choose_victims", "evictable"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A lease as the policy sees it."""

    id: str
    model: str
    size: int
    priority: int
    active: int
    last_used: float


def evictable(candidate: Candidate, priority: int) -> bool:
    """Whether a load of ``priority`` may ask ``candidate`` to unload."""
    if candidate.active:
        return candidate.priority < priority
    return candidate.priority <= priority


def choose_victims(candidates: Iterable[Candidate], *, need: int, priority: int) -> list[Candidate]:
    """The fewest candidates, in policy order, that free ``need`` bytes for a load of
    ``priority``; none when even all of them would not."""
    if need <= 0:
        return []
    ordered = sorted(
        (c for c in candidates if evictable(c, priority)),
        key=lambda c: (c.active > 0, c.priority, c.last_used),
    )
    chosen: list[Candidate] = []
    freed = 0
    for candidate in ordered:
        chosen.append(candidate)
        freed += candidate.size
        if freed >= need:
            return chosen
    return []
