"""What a client is told about its limits: OpenAI's ``x-ratelimit-*`` headers and the 429."""

from __future__ import annotations

import math
from collections.abc import Sequence

from aiplatform.errors import RateLimitError
from aiplatform.limits.limiter import Charge, Unit, Verdict, reset_s

__all__ = ["RateLimitExceededError", "go_duration", "rate_headers", "refusal", "too_large"]

RawHeaders = list[tuple[bytes, bytes]]

_UNITS: tuple[Unit, ...] = ("requests", "tokens")


class RateLimitExceededError(RateLimitError):
    """A request over a limit (429 ``rate_limit_exceeded``)."""

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        super().__init__(message, code="rate_limit_exceeded", retry_after_s=retry_after_s)


def rate_headers(charges: Sequence[Charge], verdict: Verdict) -> RawHeaders:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for each unit charged, as
    OpenAI sends them, from the tightest bucket of the unit (the one with the least left)."""
    headers: RawHeaders = []
    for unit in _UNITS:
        held = [
            (level, charge)
            for charge, level in zip(charges, verdict.levels, strict=True)
            if charge.unit == unit
        ]
        if not held:
            continue
        level, charge = min(held, key=lambda pair: (pair[0], pair[1].limit))
        headers += [
            (f"x-ratelimit-limit-{unit}".encode(), str(charge.limit).encode()),
            (f"x-ratelimit-remaining-{unit}".encode(), str(max(0, math.floor(level))).encode()),
            (
                f"x-ratelimit-reset-{unit}".encode(),
                go_duration(reset_s(level, charge.limit)).encode(),
            ),
        ]
    return headers


def refusal(charges: Sequence[Charge], verdict: Verdict) -> RateLimitExceededError:
    """The 429 for a refused verdict, naming the limit that keeps the request waiting longest."""
    waits = [
        ((charge.amount - level) / charge.limit, charge)
        for charge, level in zip(charges, verdict.levels, strict=True)
        if level < charge.amount
    ]
    charge = max(waits, key=lambda pair: pair[0])[1] if waits else charges[0]
    wait = max(1, math.ceil(verdict.retry_after_s))
    requested = f", requested {math.ceil(charge.amount)}" if charge.unit == "tokens" else ""
    return RateLimitExceededError(
        f"Rate limit reached for {charge.unit} per minute ({charge.scope}): limit {charge.limit}"
        f"{requested}. Try again in {wait}s.",
        retry_after_s=verdict.retry_after_s,
    )


def too_large(charge: Charge) -> RateLimitExceededError:
    """The 429 for a request that asks more than a whole minute's limit: it can never be served,
    so it carries no ``Retry-After``."""
    return RateLimitExceededError(
        f"Request too large for {charge.unit} per minute ({charge.scope}): limit {charge.limit}, "
        f"requested {math.ceil(charge.amount)}. Ask for fewer (a smaller max_tokens or input).",
        retry_after_s=None,
    )


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers (Go's format): ``20ms``, ``1.5s``,
    ``6m0s``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    text = f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text
