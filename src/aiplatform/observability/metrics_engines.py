"""What the engines measure as they work: LLM token timing, remote calls, embedding batches.

These instruments belong to the process, like the engines' models and queues (a server runs
one process; see ``docs/operations.md``): the engines record into them wherever they run,
in a request or in a background job, and every app's ``/metrics`` exports them
(:data:`ENGINE_INSTRUMENTS`). They are registered with no registry of their own, so nothing is
exported that an app did not ask for. Recording costs a few dictionary look-ups and additions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "BATCH_SIZE",
    "COMPLETION_TOKENS",
    "ENGINE_INSTRUMENTS",
    "GENERATION_SECONDS",
    "INTER_TOKEN",
    "REMOTE_DURATION",
    "REMOTE_ERRORS",
    "TIME_TO_FIRST_TOKEN",
    "GenerationTiming",
    "observe_batch",
    "remote_call",
    "remote_stream",
]

T = TypeVar("T")

#: Seconds, from a few milliseconds to the minutes a long generation or analytic run takes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

TIME_TO_FIRST_TOKEN = Histogram(
    "aiplatform_llm_time_to_first_token_seconds",
    "Seconds from a generation's arrival at the LLM engine (a slot's queue and an on-demand "
    "model load included) to its first token.",
    ["model"],
    buckets=_TTFT_BUCKETS,
    registry=None,
)
INTER_TOKEN = Histogram(
    "aiplatform_llm_inter_token_latency_seconds",
    "Seconds between tokens of a generation, one sample per token after the first; tokens "
    "delivered together share their gap evenly.",
    ["model"],
    buckets=_ITL_BUCKETS,
    registry=None,
)
COMPLETION_TOKENS = Counter(
    "aiplatform_llm_completion_tokens",
    "Tokens generated.",
    ["model"],
    registry=None,
)
GENERATION_SECONDS = Counter(
    "aiplatform_llm_generation_seconds",
    "Seconds generations spent on a slot, from the prompt's start to the last token (tokens "
    "per second: the rate of completion tokens over the rate of this).",
    ["model"],
    registry=None,
)
REMOTE_DURATION = Histogram(
    "aiplatform_remote_request_duration_seconds",
    "Seconds a forwarded call took: to the whole answer, or to a stream's first event.",
    ["engine", "operation"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
REMOTE_ERRORS = Counter(
    "aiplatform_remote_errors",
    "Forwarded calls that failed, by the status of the error passed on (502 bad answer, 503 "
    "unreachable or open circuit, 504 timed out, or the upstream's own 4xx).",
    ["engine", "status"],
    registry=None,
)
BATCH_SIZE = Histogram(
    "aiplatform_embeddings_batch_size",
    "Texts per call of the embeddings model (requests merged by the micro-batcher).",
    buckets=_BATCH_BUCKETS,
    registry=None,
)

#: Every instrument above, for the collector that exports them.
ENGINE_INSTRUMENTS: tuple[MetricWrapperBase, ...] = (
    TIME_TO_FIRST_TOKEN,
    INTER_TOKEN,
    COMPLETION_TOKENS,
    GENERATION_SECONDS,
    REMOTE_DURATION,
    REMOTE_ERRORS,
    BATCH_SIZE,
)


class GenerationTiming:
    """The token timing of one generation: made when it arrives, told when it starts on a slot
    and of each piece of text it delivers, closed when it ends (or its client leaves)."""

    __slots__ = ("_arrived", "_inter_token", "_last", "_seconds", "_started", "_tokens", "_ttft")

    def __init__(self, model: str) -> None:
        self._ttft = TIME_TO_FIRST_TOKEN.labels(model)
        self._inter_token = INTER_TOKEN.labels(model)
        self._tokens = COMPLETION_TOKENS.labels(model)
        self._seconds = GENERATION_SECONDS.labels(model)
        self._arrived = time.perf_counter()
        self._started: float | None = None
        self._last: float | None = None

    def started(self) -> None:
        """The generation has a slot, and its prompt fits."""
        self._started = time.perf_counter()

    def piece(self, tokens: int) -> None:
        """A piece of ``tokens`` tokens has been delivered (the last piece may hold none)."""
        if tokens <= 0:
            return
        now = time.perf_counter()
        self._tokens.inc(tokens)
        if self._last is None:
            self._ttft.observe(now - self._arrived)
        else:
            gap = (now - self._last) / tokens
            for _ in range(tokens):
                self._inter_token.observe(gap)
        self._last = now

    def close(self) -> None:
        """The generation is over: its time on the slot is counted."""
        if self._started is not None and self._last is not None:
            self._seconds.inc(max(self._last - self._started, 0.0))
        self._started = None


@contextmanager
def remote_call(engine: str, operation: str) -> Iterator[None]:
    """Time one forwarded call and count it when it fails (a cancelled call is neither)."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        _failed(engine, operation, start, exc)
        raise
    REMOTE_DURATION.labels(engine, operation).observe(time.perf_counter() - start)


async def remote_stream(
    engine: str, operation: str, chunks: AsyncGenerator[T, None]
) -> AsyncIterator[T]:
    """``chunks`` (a forwarded stream), timed to its first event and counted when it fails."""
    start = time.perf_counter()
    timed = False
    async with aclosing(chunks):
        try:
            async for chunk in chunks:
                if not timed:
                    timed = True
                    REMOTE_DURATION.labels(engine, operation).observe(time.perf_counter() - start)
                yield chunk
        except Exception as exc:
            if timed:
                REMOTE_ERRORS.labels(engine, _status(exc)).inc()
            else:
                _failed(engine, operation, start, exc)
            raise
    if not timed:  # an empty stream: timed to its end
        REMOTE_DURATION.labels(engine, operation).observe(time.perf_counter() - start)


def _failed(engine: str, operation: str, start: float, exc: Exception) -> None:
    REMOTE_DURATION.labels(engine, operation).observe(time.perf_counter() - start)
    REMOTE_ERRORS.labels(engine, _status(exc)).inc()


def _status(exc: Exception) -> str:
    """The HTTP status the error reaches clients with (an unexpected one is a 500)."""
    status = getattr(exc, "status_code", None)
    return str(status) if isinstance(status, int) else "500"


def observe_batch(size: int) -> None:
    """One call of the embeddings model on ``size`` texts."""
    BATCH_SIZE.observe(size)
