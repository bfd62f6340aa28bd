"""Who a request acts for: the owner (tenant) every stored collection, document and memory
records, and every query filters by.

The server sets it per request; until authentication exists everyone is :data:`DEFAULT_TENANT`,
unless the request carries :data:`TENANT_HEADER`, which is how a gateway hands the identity it
established to the pods it forwards to (the remote adapter sends it on every call). Engines
read it with :func:`current_tenant` in their async handlers and pass it on explicitly to
blocking work, which runs on other threads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from aiplatform.errors import InvalidRequestError

__all__ = [
    "DEFAULT_TENANT",
    "SERVICE_TOKEN_HEADER",
    "TENANT_HEADER",
    "acting_as",
    "check_tenant",
    "current_tenant",
]

DEFAULT_TENANT = "default"
TENANT_HEADER = "x-aiplatform-tenant"
#: The shared secret a gateway presents to its pods; only with it is :data:`TENANT_HEADER` taken.
SERVICE_TOKEN_HEADER = "x-aiplatform-service-token"

_TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")
_current: ContextVar[str] = ContextVar("aiplatform_tenant", default=DEFAULT_TENANT)


def current_tenant() -> str:
    """The owner the running request acts for."""
    return _current.get()


def check_tenant(name: str) -> str:
    """``name`` if it is a valid tenant name, else a 400."""
    if not _TENANT_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"'{name[:40]}' is not a valid tenant name (letters, digits and ._@:- ; up to 128).",
            param=TENANT_HEADER,
        )
    return name


@contextmanager
def acting_as(tenant: str) -> Iterator[str]:
    """Run the enclosed code as ``tenant``."""
    token = _current.set(check_tenant(tenant))
    try:
        yield tenant
    finally:
        _current.reset(token)
