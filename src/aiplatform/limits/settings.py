"""The ``[limits]`` section of the configuration."""

from __future__ import annotations

from typing import Annotated

import msgspec

from aiplatform.engines.settings import PositiveFloat, PositiveInt

__all__ = ["RateLimitSettings"]


class RateLimitSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Requests and tokens per minute on the ``/v1/`` routes. Each limit is a bucket that holds
    a minute's worth and refills continuously; a request over any limit is refused with 429
    ``rate_limit_exceeded`` and a ``Retry-After`` header, and takes nothing from the others.
    Unset limits do not apply. Calls a gateway makes to its pods with the service credential are
    not counted again."""

    #: Requests per minute per API key (per user for a login's token). With authentication off
    #: callers are anonymous and only the tenant limits apply.
    requests_per_minute: PositiveInt | None = None
    #: Tokens per minute per API key (per user). A request is charged an estimate up front
    #: (its prompt's characters / 4 plus ``max_tokens``), settled against the response's
    #: ``usage`` once it is known.
    tokens_per_minute: PositiveInt | None = None
    #: Requests per minute per tenant, all of its keys and users together.
    tenant_requests_per_minute: PositiveInt | None = None
    #: Tokens per minute per tenant, all of its keys and users together.
    tenant_tokens_per_minute: PositiveInt | None = None
    #: Keep the buckets in this Redis (``redis://host:6379/0``, ``rediss://``, ``unix://``), so
    #: every gateway replica shares them; unset keeps them in this process. When Redis cannot
    #: be reached, limited requests are refused with 503 ``rate_limiter_unavailable``.
    redis_url: Annotated[str, msgspec.Meta(pattern="^(redis|rediss|unix)://")] | None = None
    #: Deadline of each call to Redis (connecting included); past it, 503
    #: ``rate_limiter_unavailable``.
    redis_timeout_s: PositiveFloat = 0.5

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.requests_limited or self.tokens_limited

    @property
    def requests_limited(self) -> bool:
        return self.requests_per_minute is not None or self.tenant_requests_per_minute is not None

    @property
    def tokens_limited(self) -> bool:
        return self.tokens_per_minute is not None or self.tenant_tokens_per_minute is not None
