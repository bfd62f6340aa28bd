"""What one request is charged: whose buckets (the caller's and its tenant's), which units, and
the settling of its token estimate against the usage it reports. Shared by the HTTP middleware
and the WebSocket routes, which charge each generation as the HTTP route would."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio

from aiplatform.auth.identity import Identity
from aiplatform.limits.limiter import Charge, Limiter, RateLimiterUnavailableError
from aiplatform.limits.settings import RateLimitSettings

__all__ = ["charges_for", "limit_of", "owners_of", "settle"]

logger = logging.getLogger(__name__)


def owners_of(identity: Identity, tenant: str) -> list[tuple[str, str, bool]]:
    """Whose buckets a request is counted in: (scope, name, whether it is the caller's own
    rather than the tenant's)."""
    if identity.kind == "service":
        return []
    owners = [("tenant", tenant, False)]
    if identity.kind == "key":
        owners.insert(0, ("key", identity.key_id or identity.subject, True))
    elif identity.kind == "user":
        owners.insert(0, ("user", identity.subject, True))
    return owners


def limit_of(settings: RateLimitSettings, subject: bool, unit: str) -> int | None:
    if unit == "requests":
        return settings.requests_per_minute if subject else settings.tenant_requests_per_minute
    return settings.tokens_per_minute if subject else settings.tenant_tokens_per_minute


def charges_for(
    owners: Sequence[tuple[str, str, bool]],
    settings: RateLimitSettings,
    estimate: int,
    counts_tokens: bool,
) -> list[Charge]:
    charges = []
    for scope, name, subject in owners:
        requests = limit_of(settings, subject, "requests")
        if requests is not None:
            charges.append(Charge(scope, name, "requests", requests, 1.0))
        tokens = limit_of(settings, subject, "tokens")
        if tokens is not None and counts_tokens:
            charges.append(Charge(scope, name, "tokens", tokens, float(estimate)))
    return charges


async def settle(
    limiter: Limiter, charges: Sequence[Charge], difference: int, *, what: str
) -> None:
    """Charge (or refund) ``difference`` tokens on each of ``charges``: what a request used
    beyond (or below) its estimate. Shielded, so a caller that went away is settled too; an
    unreachable limiter is logged, not raised (the request was answered)."""
    if difference == 0 or not charges:
        return
    adjustments = [Charge(c.scope, c.name, c.unit, c.limit, float(difference)) for c in charges]
    with anyio.CancelScope(shield=True):
        try:
            await limiter.settle(adjustments)
        except RateLimiterUnavailableError:
            logger.warning("rate limiter: usage of %s not settled", what)
