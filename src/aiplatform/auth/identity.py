"""The identity a request runs as, set by the authentication middleware.

Like the tenant (:mod:`aiplatform.tenant`), it is a context variable: the middleware sets it
once per request, and whatever needs it (rate limits, engine scopes, the admin routes) reads it
with :func:`current_identity`. With authentication off every request is :data:`ANONYMOUS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from aiplatform.tenant import DEFAULT_TENANT

__all__ = ["ANONYMOUS", "Identity", "IdentityKind", "Role", "acting_identity", "current_identity"]

Role = Literal["admin", "member"]
#: ``user``: a JWT from a login; ``key``: an API key; ``service``: a gateway calling its pod
#: with the service credential; ``anonymous``: authentication is off.
IdentityKind = Literal["user", "key", "service", "anonymous"]


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    #: The user's name, the key's id, or ``service`` / ``anonymous``.
    subject: str
    tenant: str
    role: Role
    #: The API key's id, when the caller used one (rate limits count per key).
    key_id: str | None = None
    #: Engine kinds an API key is limited to; None: every engine.
    engines: tuple[str, ...] | None = None
    #: The login session of an access token (logout revokes it).
    session_id: str | None = None

    def may_use(self, engine: str) -> bool:
        return self.engines is None or engine in self.engines


ANONYMOUS = Identity(kind="anonymous", subject="anonymous", tenant=DEFAULT_TENANT, role="admin")

_current: ContextVar[Identity] = ContextVar("aiplatform_identity", default=ANONYMOUS)


def current_identity() -> Identity:
    """The identity the running request acts as."""
    return _current.get()


@contextmanager
def acting_identity(identity: Identity) -> Iterator[Identity]:
    """Run the enclosed code as ``identity``."""
    token = _current.set(identity)
    try:
        yield identity
    finally:
        _current.reset(token)
