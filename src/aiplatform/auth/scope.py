"""An API key limited to some engines may call only those."""

from __future__ import annotations

from aiplatform.auth.identity import current_identity
from aiplatform.errors import PermissionDeniedError

__all__ = ["check_engine_scope"]


def check_engine_scope(engine: str) -> None:
    """403 when the caller's API key is not allowed to use ``engine``."""
    identity = current_identity()
    if not identity.may_use(engine):
        raise PermissionDeniedError(
            f"This API key may use only the {', '.join(identity.engines or ())} engine(s), "
            f"not {engine}.",
            code="engine_not_allowed",
        )
