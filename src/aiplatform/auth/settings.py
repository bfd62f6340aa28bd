"""The ``[auth]`` section: who may call the server, and how identities are kept."""

from __future__ import annotations

from typing import Annotated

import msgspec

from aiplatform.engines.settings import PositiveFloat, PositiveInt

__all__ = ["AuthSettings"]


class AuthSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Require ``Authorization: Bearer <API key or access token>`` on every ``/v1`` route and
    #: WebSocket (``/health`` and ``/ready`` stay open). Unset: on, unless the server binds to a
    #: loopback address only. Turning it off on a server others can reach is logged loudly.
    enabled: bool | None = None
    #: The first admin's password (user ``admin``, created at the first start when no user
    #: exists). Unset: a random one, printed once at that start.
    admin_password: str | None = None
    #: Key that signs access tokens (HS256; at least 32 characters). Unset: a random key kept
    #: in the data directory (``auth/jwt.key``); set it (from a Secret) when several servers
    #: must accept each other's tokens.
    jwt_secret: Annotated[str, msgspec.Meta(min_length=32)] | None = None
    #: Shared secret a gateway presents to its engine pods (``x-aiplatform-service-token``); only
    #: a caller presenting it may name the tenant a request acts for (``x-aiplatform-tenant``).
    #: A gateway sends it on every forwarded call; a pod accepts calls bearing it.
    service_token: Annotated[str, msgspec.Meta(min_length=32)] | None = None
    #: Lifetime of an access token (a JWT); logout revokes it at once all the same.
    access_token_ttl_s: PositiveFloat = 900.0
    #: Lifetime of a refresh token; each refresh replaces it with a new one.
    refresh_token_ttl_s: PositiveFloat = 30 * 86400.0
    #: Failed logins in a row after which an account is locked for ``lockout_s``.
    max_failed_logins: PositiveInt = 5
    #: Seconds a locked account refuses every login, the right password included.
    lockout_s: PositiveFloat = 900.0
    #: Argon2id cost: passes over memory (the OWASP baseline: 2 or more).
    password_time_cost: PositiveInt = 3
    #: Argon2id cost: memory in KiB.
    password_memory_kib: Annotated[int, msgspec.Meta(ge=8)] = 65536
    #: Where users, tenants, keys and sessions are kept; unset: ``$XDG_DATA_HOME/aiplatform/auth``.
    data_dir: str | None = None
    #: A PostgreSQL database that keeps them instead (``postgresql://user:password@host/db``;
    #: needs ``aiplatform[postgres]``): what several gateway replicas and pods share, so a key
    #: made or revoked on one holds on all at once. Needs ``jwt_secret``, the same everywhere.
    database_url: Annotated[str, msgspec.Meta(pattern=r"^postgres(ql)?://")] | None = None

    def __post_init__(self) -> None:
        if self.database_url is not None and self.jwt_secret is None:
            raise ValueError(
                "[auth] database_url is shared by several servers, which must all sign access "
                "tokens with one key: set [auth] jwt_secret too"
            )
