"""Spans: what one traced piece of work records, and the tracer that makes them.

A span costs a few microseconds: an object with ids, a name, two clocks and a dict of
attributes, handed on when it ends to whatever sends spans (:mod:`aiplatform.observability.otlp`).
A span of a trace that is not sampled records nothing; it exists to carry the trace's ids (and
the decision not to record) on to the calls made under it.

The span in progress is a context variable, so each request (and each task under it) has its
own; it refers to its tracer, so two apps in one process (a test's gateway and pod) keep theirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from enum import IntEnum
from typing import NamedTuple

from aiplatform.observability.trace_context import (
    RemoteParent,
    format_traceparent,
    new_ids,
    new_span_id,
)

__all__ = [
    "AttributeValue",
    "Span",
    "SpanEvent",
    "SpanKind",
    "StatusCode",
    "Tracer",
    "current_span",
]

#: What an attribute may hold (OTLP's scalar values).
AttributeValue = str | int | float | bool

_LOW_64 = (1 << 64) - 1


class SpanKind(IntEnum):
    """A span's role (OTLP's numbering)."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3


class StatusCode(IntEnum):
    """A span's outcome (OTLP's numbering). A span that ends without error stays UNSET."""

    UNSET = 0
    OK = 1
    ERROR = 2


class SpanEvent(NamedTuple):
    name: str
    time_ns: int
    attributes: dict[str, AttributeValue]


class Span:
    """One traced piece of work, from its start to :meth:`end`."""

    __slots__ = (
        "attributes",
        "end_ns",
        "events",
        "kind",
        "name",
        "parent_id",
        "random",
        "sampled",
        "span_id",
        "start_ns",
        "status",
        "status_message",
        "trace_id",
        "tracer",
        "tracestate",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        *,
        kind: SpanKind,
        ids: tuple[int, int, int],
        sampled: bool,
        random: bool,
        tracestate: str | None,
        attributes: dict[str, AttributeValue],
    ) -> None:
        self.tracer = tracer
        self.name = name
        self.kind = kind
        self.trace_id, self.span_id, self.parent_id = ids  # parent_id 0: a trace's root
        self.sampled = sampled
        self.random = random  # the trace id's right-most 7 bytes are random (W3C level 2)
        self.tracestate = tracestate
        self.attributes = attributes
        self.events: list[SpanEvent] = []
        self.status = StatusCode.UNSET
        self.status_message = ""
        self.start_ns = time.time_ns()
        self.end_ns = 0

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value

    def set_status(self, status: StatusCode, message: str = "") -> None:
        self.status, self.status_message = status, message

    def record_exception(self, exc: BaseException) -> None:
        """Mark the span failed by ``exc``, with OpenTelemetry's ``exception`` event."""
        kind = type(exc)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        attributes: dict[str, AttributeValue] = {
            "exception.type": name,
            "exception.message": str(exc),
        }
        self.events.append(SpanEvent("exception", time.time_ns(), attributes))
        self.set_status(StatusCode.ERROR, str(exc))

    def end(self) -> None:
        """End the span (once; a second call does nothing) and, when sampled, send it."""
        if self.end_ns:
            return
        self.end_ns = time.time_ns()
        if self.sampled:
            self.tracer.on_end(self)

    def traceparent(self) -> str:
        """The ``traceparent`` that makes this span the parent of a call to another process."""
        return format_traceparent(
            self.trace_id, self.span_id, sampled=self.sampled, random=self.random
        )


#: The span in progress in this context; None: no traced request.
current_span: ContextVar[Span | None] = ContextVar("aiplatform_span", default=None)


class Tracer:
    """Makes spans: a trace begun here is sampled by its id (OpenTelemetry's ratio rule: its low
    64 bits below ``sample_ratio`` of 2^64), a span under a parent follows the parent's
    decision. Ended, sampled spans go to ``on_end``."""

    def __init__(self, *, sample_ratio: float, on_end: Callable[[Span], None]) -> None:
        self._bound = round(sample_ratio * (1 << 64))
        self.on_end = on_end

    def start(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: Span | RemoteParent | None = None,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> Span:
        if parent is None:
            trace_id, span_id = new_ids()
            ids = (trace_id, span_id, 0)
            sampled = (trace_id & _LOW_64) < self._bound
            random, tracestate = True, None
        else:
            ids = (parent.trace_id, new_span_id(), parent.span_id)
            sampled, random, tracestate = parent.sampled, parent.random, parent.tracestate
        return Span(
            self,
            name,
            kind=kind,
            ids=ids,
            sampled=sampled,
            random=random,
            tracestate=tracestate,
            attributes=attributes or {},
        )
