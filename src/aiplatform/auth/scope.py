"""Who may call an operation: an API key limited to some engines only those, and an
operation that changes what every tenant shares only an admin."""

from __future__ import annotations

from aiplatform.auth.identity import current_identity
from aiplatform.errors import PermissionDeniedError

__all__ = ["check_admin", "check_engine_scope", "check_operation_access"]


def check_engine_scope(engine: str) -> None:
    """403 when the caller's API key is not allowed to use ``engine``."""
    identity = current_identity()
    if not identity.may_use(engine):
        raise PermissionDeniedError(
            f"This API key may use only the {', '.join(identity.engines or ())} engine(s), "
            f"not {engine}.",
            code="engine_not_allowed",
        )


def check_operation_access(engine: str, *, admin_only: bool) -> None:
    """403 when the caller may not call this operation of ``engine``."""
    check_engine_scope(engine)
    if admin_only:
        check_admin("This changes what every tenant shares; it needs an admin.")


def check_admin(message: str) -> None:
    """403 ``admin_only`` unless the caller is an admin, or a pod's gateway (the service
    credential: it checked its own caller)."""
    identity = current_identity()
    if identity.role != "admin" and identity.kind != "service":
        raise PermissionDeniedError(message, code="admin_only")
