"""W3C Trace Context: the ``traceparent`` header a trace is carried in from process to process,
and the random ids of traces and spans.

``traceparent`` is ``00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>``; bit 0 of
the flags says the caller records the trace (sampled). A header that does not parse, or names an
all-zero id, is ignored, as the recommendation says: the request then starts a trace of its own.
A version above ``00`` is read by its first four fields (its format may only grow); ``ff`` is
invalid; a request with two ``traceparent`` headers has none. ``tracestate`` (vendors' own
entries) is passed on as received when it is valid (at most 32 ``key=value`` members and 512
characters of printable ASCII; repeated headers are joined), and dropped otherwise: the trace
goes on without it.
"""

from __future__ import annotations

import os
import random
import re
from typing import NamedTuple

__all__ = [
    "RANDOM",
    "SAMPLED",
    "RemoteParent",
    "format_traceparent",
    "new_ids",
    "new_span_id",
    "parse_traceparent",
    "valid_tracestate",
]

#: The ``sampled`` bit of a ``traceparent``'s flags.
SAMPLED = 0x01
#: Bit 1 (``random``, Trace Context level 2): the trace id's right-most 7 bytes are random. Set
#: for the trace ids made here; a received trace id keeps its caller's bit.
RANDOM = 0x02
_MAX_TRACESTATE = 512
_MAX_MEMBERS = 32
#: One ``key=value`` member: a key (``vendor`` or ``tenant@system``), a value of printable ASCII
#: without ``,`` or ``=``, not ending in a space.
_MEMBER = re.compile(
    r"[a-z0-9][a-z0-9_\-*/]{0,255}(@[a-z][a-z0-9_\-*/]{0,13})?"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)

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
    #: The caller's ``random`` flag: its trace id's right-most 7 bytes are random.
    random: bool = False


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
    flags = int(match["flags"], 16)
    return RemoteParent(
        trace_id,
        span_id,
        sampled=bool(flags & SAMPLED),
        tracestate=valid_tracestate(tracestate),
        random=bool(flags & RANDOM),
    )


def valid_tracestate(value: str | None) -> str | None:
    """``value`` when it is a valid ``tracestate`` (see the module's docstring), else None."""
    if not value:
        return None
    value = value.strip(" \t,")
    if not value or len(value) > _MAX_TRACESTATE:
        return None
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    if len(members) > _MAX_MEMBERS or not all(_MEMBER.fullmatch(m) for m in members):
        return None
    keys = [member.split("=", 1)[0] for member in members]
    if len(set(keys)) != len(keys):
        return None
    return ",".join(members)


def format_traceparent(trace_id: int, span_id: int, *, sampled: bool, random: bool) -> str:
    """The ``traceparent`` naming span ``span_id`` of trace ``trace_id``."""
    flags = (RANDOM if random else 0) | (SAMPLED if sampled else 0)
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
