"""The rate headers and the 429's message."""

from __future__ import annotations

import pytest

from aiplatform.limits.headers import go_duration, rate_headers, refusal, too_large
from aiplatform.limits.limiter import Charge, Verdict


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.9994, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (6.25, "6.25s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


KEY_REQUESTS = Charge("key", "k1", "requests", 60, 1.0)
TENANT_REQUESTS = Charge("tenant", "acme", "requests", 1000, 1.0)
KEY_TOKENS = Charge("key", "k1", "tokens", 6000, 500.0)


def test_headers_report_the_tightest_bucket_of_each_unit() -> None:
    verdict = Verdict(allowed=True, levels=(30.0, 4.5, 5500.0))
    headers = dict(rate_headers([KEY_REQUESTS, TENANT_REQUESTS, KEY_TOKENS], verdict))
    assert headers == {
        b"x-ratelimit-limit-requests": b"1000",  # the tenant has 4 left, the key 30
        b"x-ratelimit-remaining-requests": b"4",
        b"x-ratelimit-reset-requests": b"59.73s",
        b"x-ratelimit-limit-tokens": b"6000",
        b"x-ratelimit-remaining-tokens": b"5500",
        b"x-ratelimit-reset-tokens": b"5s",
    }


def test_units_without_a_limit_send_no_headers() -> None:
    headers = dict(rate_headers([KEY_REQUESTS], Verdict(allowed=True, levels=(-2.0,))))
    assert set(headers) == {
        b"x-ratelimit-limit-requests",
        b"x-ratelimit-remaining-requests",
        b"x-ratelimit-reset-requests",
    }
    assert headers[b"x-ratelimit-remaining-requests"] == b"0"  # never negative
    assert headers[b"x-ratelimit-reset-requests"] == b"1m2s"


def test_the_refusal_names_the_limit_that_waits_longest() -> None:
    verdict = Verdict(allowed=False, levels=(10.0, 900.0, 100.0), retry_after_s=4.0)
    error = refusal([KEY_REQUESTS, TENANT_REQUESTS, KEY_TOKENS], verdict)
    assert (error.status_code, error.error_type, error.code) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    assert error.message == (
        "Rate limit reached for tokens per minute (key): limit 6000, requested 500. "
        "Try again in 4s."
    )
    assert error.headers == {"Retry-After": "4"}


def test_a_short_wait_is_still_a_whole_second() -> None:
    verdict = Verdict(allowed=False, levels=(0.99,), retry_after_s=0.01)
    error = refusal([KEY_REQUESTS], verdict)
    assert error.message == (
        "Rate limit reached for requests per minute (key): limit 60. Try again in 1s."
    )
    assert error.headers == {"Retry-After": "1"}


def test_a_request_over_a_whole_minute_is_refused_without_retry() -> None:
    error = too_large(Charge("tenant", "acme", "tokens", 100, 250.0))
    assert error.status_code == 429
    assert "Request too large for tokens per minute (tenant): limit 100, requested 250" in (
        error.message
    )
    assert error.headers == {}
