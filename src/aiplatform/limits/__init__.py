"""Rate limits and quotas: requests and tokens per minute, per API key (or user) and per tenant.

Each limit is a token bucket whose capacity is the per-minute limit, refilled continuously.
A request takes from every bucket it touches at once or from none (:mod:`.limiter`); the
buckets live in this process (:mod:`.memory`) or in Redis, shared by every gateway replica
(:mod:`.redis`). :mod:`.middleware` applies them to the ``/v1/`` routes.
"""

from aiplatform.limits.settings import RateLimitSettings

__all__ = ["RateLimitSettings"]
