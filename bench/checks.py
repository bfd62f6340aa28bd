"""Checks that the work a benchmark times really happened, and a clean failure when it did not.

A rate computed from work that never happened is a wrong figure printed with confidence (zero
tokens divided by the time is 0.0 tok/s; an error page answered fast is a fine latency). Every
bench checks what it counts (vectors, tokens, words, hits, 200 statuses) with these helpers
before it prints a figure, and :func:`run_bench` turns a failed check into a clear message on
stderr and exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sized
from typing import NoReturn, TypeVar

__all__ = [
    "BenchCheckError",
    "fail",
    "require",
    "require_count",
    "require_non_empty",
    "require_status",
    "run_bench",
]

T = TypeVar("T")


class BenchCheckError(Exception):
    """The work a benchmark was about to report did not happen as asked."""


def fail(message: str) -> NoReturn:
    raise BenchCheckError(message)


def require(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def require_count(what: str, got: int, expected: int) -> None:
    """``got`` must be exactly ``expected`` (tokens generated, vectors returned, events read)."""
    if got != expected:
        fail(f"{what}: expected {expected}, got {got}")


def require_non_empty(what: str, value: Sized) -> None:
    if len(value) == 0:
        fail(f"{what} is empty")


def require_status(what: str, status: int, body: bytes | str = b"") -> None:
    if status != 200:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        fail(f"{what}: HTTP {status} {text[:300]}")


def run_bench(main: Callable[[], T]) -> T:
    """Run a benchmark's ``main``; a failed check exits with status 1 and says what failed."""
    try:
        return main()
    except BenchCheckError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
