"""W3C ``traceparent``: what is read, what is refused, what is sent; sampling by trace id."""

from __future__ import annotations

import pytest

from aiplatform.observability.spans import Span, Tracer
from aiplatform.observability.trace_context import (
    RemoteParent,
    format_traceparent,
    parse_traceparent,
    valid_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "sampled", "random"),
    [
        (f"00-{TRACE}-{SPAN}-01", True, False),
        (f"00-{TRACE}-{SPAN}-00", False, False),
        (f"00-{TRACE}-{SPAN}-03", True, True),  # the level-2 random bit beside the sampled one
        (f" 00-{TRACE}-{SPAN}-02 ", False, True),
        (f"01-{TRACE}-{SPAN}-01-more-fields", True, False),  # a later version may only grow
    ],
)
def test_a_valid_traceparent_names_the_callers_span(
    header: str, sampled: bool, random: bool
) -> None:
    assert parse_traceparent(header, "vendor=x") == RemoteParent(
        int(TRACE, 16), int(SPAN, 16), sampled, "vendor=x", random
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE.upper()}-{SPAN}-01",  # hex is lower case
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"0-{TRACE}-{SPAN}-01",
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_a_sent_traceparent_reads_back() -> None:
    header = format_traceparent(int(TRACE, 16), int(SPAN, 16), sampled=True, random=True)
    assert header == f"00-{TRACE}-{SPAN}-03"
    assert parse_traceparent(header) == RemoteParent(
        int(TRACE, 16), int(SPAN, 16), True, None, True
    )
    unsampled = format_traceparent(int(TRACE, 16), int(SPAN, 16), sampled=False, random=False)
    assert unsampled.endswith("-00")


def test_a_received_trace_keeps_its_callers_random_flag() -> None:
    """Only the trace ids made here are declared random (Trace Context level 2)."""
    tracer = Tracer(sample_ratio=1.0, on_end=lambda span: None)
    assert tracer.start("root").traceparent().endswith("-03")
    not_random = RemoteParent(int(TRACE, 16), int(SPAN, 16), True, None, False)
    server = tracer.start("server", parent=not_random)
    assert tracer.start("call", parent=server).traceparent().endswith("-01")


@pytest.mark.parametrize(
    ("received", "kept"),
    [
        ("vendor=x", "vendor=x"),
        ("a=1, b@sys=2,,c=3 ", "a=1,b@sys=2,c=3"),
        ("a=1,a=2", None),  # a key twice
        ("Vendor=x", None),  # keys are lower case
        ("a=b,c", None),  # a member without a value
        ("a=caf\u00e9", None),  # not ASCII: not sendable as a header either
        ("a=x,b=y=z", None),
        (",".join(f"k{i}=v" for i in range(33)), None),  # 33 members
        ("k=" + "v" * 600, None),  # longer than 512
        ("", None),
    ],
)
def test_a_tracestate_is_passed_on_only_when_valid(received: str, kept: str | None) -> None:
    assert valid_tracestate(received) == kept
    parent = parse_traceparent(f"00-{TRACE}-{SPAN}-01", received)
    assert parent is not None  # an invalid tracestate drops only itself
    assert parent.tracestate == kept


def test_sampling_decides_by_the_trace_ids_low_64_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's ratio rule: a trace is sampled when its id's low 64 bits fall below
    ratio x 2^64, so every process that sees the id decides alike."""
    from aiplatform.observability import spans

    bound = round(0.25 * (1 << 64))
    tracer = Tracer(sample_ratio=0.25, on_end=lambda span: None)
    high = 0xFFFF << 64  # high bits play no part
    for low, sampled in ((bound - 1, True), (bound, False), (0, True), ((1 << 64) - 1, False)):
        monkeypatch.setattr(spans, "new_ids", lambda low=low: (high | low, 7))
        assert tracer.start("root").sampled is sampled, hex(low)


def roots(ratio: float, count: int) -> list[Span]:
    tracer = Tracer(sample_ratio=ratio, on_end=lambda span: None)
    return [tracer.start("root") for _ in range(count)]


def test_a_sample_ratio_samples_that_share_of_new_traces() -> None:
    assert all(span.sampled for span in roots(1.0, 500))
    assert not any(span.sampled for span in roots(0.0, 500))
    share = sum(span.sampled for span in roots(0.1, 20_000)) / 20_000
    assert 0.08 < share < 0.12  # binomial sd 0.002


def test_a_child_follows_its_parents_decision_and_trace() -> None:
    ended: list[Span] = []
    tracer = Tracer(sample_ratio=0.0, on_end=ended.append)
    remote = RemoteParent(int(TRACE, 16), int(SPAN, 16), True, "vendor=x")
    server = tracer.start("server", parent=remote)
    call = tracer.start("call", parent=server)
    assert (server.trace_id, server.parent_id, server.sampled) == (
        remote.trace_id,
        remote.span_id,
        True,
    )
    assert (call.trace_id, call.parent_id, call.tracestate) == (
        server.trace_id,
        server.span_id,
        "vendor=x",
    )
    assert len({server.span_id, call.span_id, remote.span_id}) == 3
    call.end()
    call.end()  # once only
    server.end()
    assert ended == [call, server]
    unsampled = tracer.start("root")
    tracer.start("child", parent=unsampled).end()
    unsampled.end()
    assert ended == [call, server]  # a trace not sampled sends nothing
