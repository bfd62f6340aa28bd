"""The ``[metrics]`` section of the configuration (kept apart from the metrics themselves so that
reading the settings imports no metrics library)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["MetricsSettings"]


class MetricsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Prometheus metrics at ``GET /metrics`` (see ``docs/operations.md``). It is not under
    ``/v1``: API keys and logins do not reach it; ``token`` guards it."""

    #: Serve ``GET /metrics`` and count requests. Off: no route (404) and no request middleware.
    enabled: bool = True
    #: A bearer token the scraper presents (``Authorization: Bearer <token>``, at least 32
    #: characters, from a Secret). Set: ``/metrics`` answers only it (401 otherwise). Unset:
    #: anyone who reaches the port may scrape, so with authentication on tenant names are left
    #: out of the labels.
    token: Annotated[str, msgspec.Meta(min_length=32)] | None = None
    #: Label request counts with the caller's tenant (with authentication on, only when
    #: ``token`` is set). Off: one series per route and status, whatever the tenant.
    tenant_label: bool = True
    #: Distinct tenants named in the labels; requests of further tenants are counted under
    #: ``_other`` (so a server with many tenants keeps a bounded number of series).
    max_tenants: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
