"""Logins, tokens, API keys and the admin operations, over the auth store.

Blocking work (SQLite, Argon2) runs on worker threads: Argon2 is C code that releases the GIL,
and each store call is a point lookup or a small write.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import sys
import time
from pathlib import Path

import anyio.to_thread
import msgspec

from aiplatform.api.auth import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyRequest,
    Tenant,
    TokenResponse,
    User,
    UserRequest,
    UserUpdate,
)
from aiplatform.auth.identity import Identity
from aiplatform.auth.passwords import Passwords
from aiplatform.auth.settings import AuthSettings
from aiplatform.auth.store import AuthStore, KeyRow, UserRow
from aiplatform.auth.tokens import InvalidTokenError, TokenSigner
from aiplatform.engines.settings import default_data_dir
from aiplatform.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from aiplatform.tenant import DEFAULT_TENANT

__all__ = ["KEY_PREFIX", "AuthService"]

logger = logging.getLogger(__name__)

#: Every API key starts with it, so a key is told from a JWT (and found by secret scanners).
KEY_PREFIX = "aip_"
ADMIN = "admin"


def auth_folder(settings: AuthSettings) -> Path:
    return Path(settings.data_dir or Path(default_data_dir()) / "auth")


def _unauthorized(message: str, code: str) -> AuthenticationError:
    return AuthenticationError(message, code=code)


class AuthService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        known_engines: tuple[str, ...] = (),
        storage_key: str | None = None,
    ) -> None:
        self._settings = settings
        self._storage_key = storage_key
        self._known_engines = known_engines
        self._passwords = Passwords(
            time_cost=settings.password_time_cost, memory_kib=settings.password_memory_kib
        )
        self._store: AuthStore | None = None
        self._signer: TokenSigner | None = None
        # compared against when a username is unknown, so the answer takes as long
        self._dummy_hash = ""

    # -- lifetime -------------------------------------------------------------------------------

    async def start(self) -> None:
        folder, key, url = (
            auth_folder(self._settings),
            self._storage_key,
            self._settings.database_url,
        )
        self._store = await anyio.to_thread.run_sync(lambda: AuthStore(folder, key=key, url=url))
        secret = self._settings.jwt_secret
        if secret is None:
            secret = await anyio.to_thread.run_sync(self._stored_secret)
        self._signer = TokenSigner(secret, ttl_s=self._settings.access_token_ttl_s)
        self._dummy_hash = await anyio.to_thread.run_sync(
            self._passwords.hash, secrets.token_urlsafe(16)
        )
        await anyio.to_thread.run_sync(self._first_admin)

    async def stop(self) -> None:
        if self._store is not None:
            await anyio.to_thread.run_sync(self._store.close)
            self._store = None

    @property
    def store(self) -> AuthStore:
        if self._store is None:
            raise RuntimeError("the auth service has not been started")
        return self._store

    @property
    def signer(self) -> TokenSigner:
        if self._signer is None:
            raise RuntimeError("the auth service has not been started")
        return self._signer

    def _stored_secret(self) -> str:
        """The signing key kept in the data directory, made at the first start (mode 0600)."""
        path = self.store.folder / "jwt.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def _first_admin(self) -> None:
        """With no user at all, the admin ``admin`` of tenant ``default``: its password from
        the settings, or a random one shown once, here."""
        store = self.store
        if store.user_count() > 0:
            return
        password = self._settings.admin_password
        generated = password is None
        if password is None:
            password = secrets.token_urlsafe(18)
        store.add_tenant(DEFAULT_TENANT)
        if not store.add_user(ADMIN, DEFAULT_TENANT, "admin", self._passwords.hash(password)):
            return  # another server sharing the database made it first
        if generated:
            # on the terminal, not through logging: a log pipeline keeps what it is given
            print(
                f"aiplatform: created the first admin, user '{ADMIN}', password: {password}\n"
                "aiplatform: it is shown only this once; change it, or set "
                "AIPLATFORM_AUTH__ADMIN_PASSWORD before the first start",
                file=sys.stderr,
                flush=True,
            )
        else:
            logger.warning("created the first admin, user '%s' (password from settings)", ADMIN)

    # -- logins ---------------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> TokenResponse:
        user = await anyio.to_thread.run_sync(self.store.user, username)
        if user is None:
            await anyio.to_thread.run_sync(self._passwords.verify, self._dummy_hash, password)
            raise _unauthorized("Wrong username or password.", "invalid_credentials")
        now = time.time()
        if user.locked_until > now:
            error = _unauthorized(
                "This account is locked after repeated failed logins; try again later.",
                "account_locked",
            )
            error.retry_after_s = user.locked_until - now
            raise error
        ok = await anyio.to_thread.run_sync(self._passwords.verify, user.password_hash, password)
        await anyio.to_thread.run_sync(
            lambda: self.store.record_login(
                username,
                ok=ok,
                max_failed=self._settings.max_failed_logins,
                lockout_s=self._settings.lockout_s,
            )
        )
        if not ok:
            raise _unauthorized("Wrong username or password.", "invalid_credentials")
        return await self._new_session(user)

    async def _new_session(self, user: UserRow) -> TokenResponse:
        session_id = secrets.token_urlsafe(16)
        refresh = secrets.token_urlsafe(32)
        expires_at = time.time() + self._settings.refresh_token_ttl_s
        await anyio.to_thread.run_sync(
            self.store.add_session, session_id, user.username, refresh, expires_at
        )
        return self._tokens(user, session_id, refresh)

    def _tokens(self, user: UserRow, session_id: str, refresh: str) -> TokenResponse:
        access = self.signer.issue(user.username, user.tenant, user.role, session_id)
        return TokenResponse(
            access_token=access, refresh_token=refresh, expires_in=int(self.signer.ttl_s)
        )

    async def refresh(self, refresh_token: str) -> TokenResponse:
        new = secrets.token_urlsafe(32)
        expires_at = time.time() + self._settings.refresh_token_ttl_s
        session_id = await anyio.to_thread.run_sync(
            self.store.rotate_refresh, refresh_token, new, expires_at
        )
        if session_id is None:
            raise _unauthorized("The refresh token is invalid or expired.", "invalid_token")
        session = await anyio.to_thread.run_sync(self.store.session, session_id)
        user = await anyio.to_thread.run_sync(self.store.user, session.username if session else "")
        if user is None:
            raise _unauthorized("The refresh token is invalid or expired.", "invalid_token")
        return self._tokens(user, session_id, new)

    async def logout(self, identity: Identity) -> None:
        if identity.session_id is None:
            raise InvalidRequestError(
                "Logout ends a login session; an API key is revoked with DELETE /v1/keys/{id}.",
                code="not_a_session",
            )
        await anyio.to_thread.run_sync(self.store.revoke_session, identity.session_id)

    # -- who is calling -------------------------------------------------------------------------

    async def authenticate(self, token: str) -> Identity:
        """The identity a bearer token (an API key or an access token) stands for; 401 when
        it stands for none: unknown, forged, expired, revoked."""
        if token.startswith(KEY_PREFIX):
            return await self._key_identity(token)
        try:
            claims = self.signer.verify(token)
        except InvalidTokenError:
            raise _unauthorized(
                "The access token is invalid or expired.", "invalid_token"
            ) from None
        session = await anyio.to_thread.run_sync(self.store.session, claims.session_id)
        if session is None or session.revoked or session.username != claims.username:
            raise _unauthorized("The access token has been revoked.", "token_revoked")
        return Identity(
            kind="user",
            subject=claims.username,
            tenant=claims.tenant,
            role=claims.role,
            session_id=claims.session_id,
        )

    async def _key_identity(self, token: str) -> Identity:
        key_id, _, secret = token.removeprefix(KEY_PREFIX).partition(".")
        row = None
        if key_id and secret:
            row = await anyio.to_thread.run_sync(self.store.key_for, key_id, secret)
        if row is None:
            raise _unauthorized("Incorrect API key provided.", "invalid_api_key")
        if row.expires_at is not None and row.expires_at <= time.time():
            raise _unauthorized("This API key has expired.", "expired_api_key")
        return Identity(
            kind="key",
            subject=row.id,
            tenant=row.tenant,
            role="member",
            key_id=row.id,
            engines=row.engines,
        )

    def is_service(self, presented: str) -> bool:
        expected = self._settings.service_token
        return expected is not None and hmac.compare_digest(presented, expected)

    # -- API keys -------------------------------------------------------------------------------

    async def create_key(self, identity: Identity, request: ApiKeyRequest) -> ApiKeyCreated:
        _require_login(identity)
        if request.expires_at is not None and request.expires_at <= time.time():
            raise InvalidRequestError("expires_at is in the past.", param="expires_at")
        unknown = sorted(set(request.engines or ()) - set(self._known_engines))
        if unknown:
            raise InvalidRequestError(
                f"Unknown engine(s) {', '.join(unknown)}; known: {', '.join(self._known_engines)}.",
                param="engines",
            )
        return await anyio.to_thread.run_sync(self.new_key, identity, request)

    def new_key(self, identity: Identity, request: ApiKeyRequest) -> ApiKeyCreated:
        """A key for ``identity``'s tenant (blocking: the CLI calls it too)."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = self.store.add_key(
            key_id,
            secret,
            tenant=identity.tenant,
            name=request.name,
            engines=request.engines,
            expires_at=request.expires_at,
            created_by=identity.subject,
        )
        return ApiKeyCreated(
            **msgspec.structs.asdict(_key(row)), key=f"{KEY_PREFIX}{key_id}.{secret}"
        )

    async def keys(self, identity: Identity) -> list[ApiKey]:
        rows = await anyio.to_thread.run_sync(self.store.keys, identity.tenant)
        return [_key(row) for row in rows]

    async def delete_key(self, identity: Identity, key_id: str) -> None:
        _require_login(identity)
        if not await anyio.to_thread.run_sync(self.store.delete_key, key_id, identity.tenant):
            raise NotFoundError(f"No API key '{key_id}'.", code="key_not_found")

    # -- admin ----------------------------------------------------------------------------------

    async def add_tenant(self, admin: Identity, name: str) -> Tenant:
        _require_admin(admin)
        if not await anyio.to_thread.run_sync(self.store.add_tenant, name):
            raise ConflictError(f"Tenant '{name}' exists.", code="tenant_exists")
        return Tenant(name=name, created_at=int(time.time()))

    async def tenants(self, admin: Identity) -> list[Tenant]:
        _require_admin(admin)
        rows = await anyio.to_thread.run_sync(self.store.tenants)
        return [Tenant(name=name, created_at=created_at) for name, created_at in rows]

    async def delete_tenant(self, admin: Identity, name: str) -> None:
        _require_admin(admin)
        outcome = await anyio.to_thread.run_sync(self.store.delete_tenant, name)
        if outcome == "missing":
            raise NotFoundError(f"No tenant '{name}'.", code="tenant_not_found")
        if outcome == "in_use":
            raise ConflictError(
                f"Tenant '{name}' still has users or API keys; delete them first.",
                code="tenant_in_use",
            )

    async def add_user(self, admin: Identity, request: UserRequest) -> User:
        _require_admin(admin)
        return await anyio.to_thread.run_sync(self.new_user, request)

    def new_user(self, request: UserRequest) -> User:
        """Blocking: the CLI calls it too."""
        if not self.store.tenant_exists(request.tenant):
            raise InvalidRequestError(f"No tenant '{request.tenant}'.", param="tenant")
        password_hash = self._passwords.hash(request.password)
        if not self.store.add_user(request.username, request.tenant, request.role, password_hash):
            raise ConflictError(f"User '{request.username}' exists.", code="user_exists")
        row = self.store.user(request.username)
        assert row is not None
        return _user(row)

    async def users(self, admin: Identity) -> list[User]:
        _require_admin(admin)
        return [_user(row) for row in await anyio.to_thread.run_sync(self.store.users)]

    async def user(self, admin: Identity, username: str) -> User:
        _require_admin(admin)
        row = await anyio.to_thread.run_sync(self.store.user, username)
        if row is None:
            raise NotFoundError(f"No user '{username}'.", code="user_not_found")
        return _user(row)

    async def update_user(self, admin: Identity, username: str, update: UserUpdate) -> User:
        _require_admin(admin)

        def change() -> User:
            if update.tenant is not None and not self.store.tenant_exists(update.tenant):
                raise InvalidRequestError(f"No tenant '{update.tenant}'.", param="tenant")
            password_hash = (
                self._passwords.hash(update.password) if update.password is not None else None
            )
            changed = self.store.update_user(
                username, tenant=update.tenant, role=update.role, password_hash=password_hash
            )
            row = self.store.user(username)
            if not changed or row is None:
                raise NotFoundError(f"No user '{username}'.", code="user_not_found")
            return _user(row)

        return await anyio.to_thread.run_sync(change)

    async def delete_user(self, admin: Identity, username: str) -> None:
        _require_admin(admin)
        if not await anyio.to_thread.run_sync(self.store.delete_user, username):
            raise NotFoundError(f"No user '{username}'.", code="user_not_found")


def _require_login(identity: Identity) -> None:
    """Keys are made and revoked by people, not by keys: a key limited to some engines or
    to a date could otherwise make itself an unlimited one, or revoke its tenant's others."""
    if identity.kind not in ("user", "anonymous"):
        raise PermissionDeniedError(
            "Making and revoking API keys needs a user's login, not an API key.",
            code="login_required",
        )


def _require_admin(identity: Identity) -> None:
    if identity.role != "admin" or identity.kind not in ("user", "anonymous"):
        raise PermissionDeniedError("This needs an admin's login.", code="admin_only")


def _key(row: KeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        tenant=row.tenant,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        engines=list(row.engines) if row.engines is not None else None,
    )


def _user(row: UserRow) -> User:
    return User(
        username=row.username,
        tenant=row.tenant,
        role=row.role,
        created_at=row.created_at,
        locked_until=row.locked_until,
    )
