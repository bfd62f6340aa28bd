"""W3C Trace Context: the ``traceparent`` header a trace is carried in from process to process,
and the random ids of traces and spans.

``traceparent`` is ``00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>``; bit 0 of
the flags says the caller records the trace (sampled). A header that does not parse, or names an
all-zero id, is ignored, as the recommendation says: the request then starts a trace of its own.
A version above ``00`` is read by its first four fields (its format may only grow); ``ff`` is
invalid.
"""

from __future__ import annotations

import os
import random
import re
from typing import NamedTuple

__all__ = [
    "SAMPLED",
    "RemoteParent",
    "format_traceparent",
    "new_ids",
    "new_span_id",
    "parse_traceparent",
]

#: The ``sampled`` bit of a ``traceparent``'s flags.
SAMPLED = 0x01
#: Bit 1 (``random``, Trace Context level 2): the trace id's right-most 7 bytes are random, as
#: ours are.
_RANDOM = 0x02

_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})"
    r"(?P<rest>-.*)?"
)


class RemoteParent(NamedTuple):
    """The span of a caller in another process, as its ``traceparent`` named it."""

    trace_id: int
    span_id: int
    sampled: bool
    tracestate: str | None


def parse_traceparent(value: str, tracestate: str | None = None) -> RemoteParent | None:
    """The caller's span named by a ``traceparent`` header; None when it is not valid."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return None
    trace_id, span_id = int(match["trace"], 16), int(match["span"], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return RemoteParent(trace_id, span_id, bool(int(match["flags"], 16) & SAMPLED), tracestate)


def format_traceparent(trace_id: int, span_id: int, *, sampled: bool) -> str:
    """The ``traceparent`` naming span ``span_id`` of trace ``trace_id``."""
    flags = _RANDOM | (SAMPLED if sampled else 0)
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


# One generator for the process, seeded from the OS and again in every child of a fork (two
# workers forked from one parent would otherwise draw the same ids).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_ids() -> tuple[int, int]:
    """A new trace id (128 bits) and span id (64 bits), neither zero."""
    trace_id = _ids.getrandbits(128) or 1
    return trace_id, _ids.getrandbits(64) or 1


def new_span_id() -> int:
    """A new span id (64 bits, not zero)."""
    return _ids.getrandbits(64) or 1
