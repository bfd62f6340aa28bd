"""Access tokens: short-lived JWTs (HS256, PyJWT) naming the user, tenant, role and session.

A token is accepted only with this server's signature, audience and issuer, an expiry in the
future and every claim present; ``alg: none`` and any other algorithm are refused by listing
the one accepted. Revocation (logout) is the session's: the authenticator looks the ``sid`` up.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from aiplatform.auth.identity import Role

__all__ = ["AccessClaims", "InvalidTokenError", "TokenSigner"]

ISSUER = "aiplatform"
AUDIENCE = "aiplatform"
ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "sid", "tenant", "role", "jti"]


class InvalidTokenError(Exception):
    """The token is not one this server issued, or it has expired."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    username: str
    tenant: str
    role: Role
    session_id: str
    expires_at: float


class TokenSigner:
    def __init__(self, secret: str, *, ttl_s: float) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, username: str, tenant: str, role: Role, session_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": username,
            "tenant": tenant,
            "role": role,
            "sid": session_id,
            "iat": now,
            "exp": now + int(self.ttl_s),
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        role = claims["role"]
        if role not in ("admin", "member"):
            raise InvalidTokenError("unknown role")
        return AccessClaims(
            username=str(claims["sub"]),
            tenant=str(claims["tenant"]),
            role=role,
            session_id=str(claims["sid"]),
            expires_at=float(claims["exp"]),
        )
