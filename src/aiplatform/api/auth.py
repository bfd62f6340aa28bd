"""Wire types of logins, API keys and the admin API (``/v1/auth``, ``/v1/keys``, ``/v1/admin``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "ApiKey",
    "ApiKeyCreated",
    "ApiKeyList",
    "ApiKeyRequest",
    "Deleted",
    "LoginRequest",
    "LogoutResponse",
    "RefreshRequest",
    "Tenant",
    "TenantList",
    "TenantRequest",
    "TokenResponse",
    "User",
    "UserList",
    "UserRequest",
    "UserUpdate",
]

#: Names of users, tenants and keys: what a tenant name may be (see aiplatform.tenant).
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
Role = Literal["admin", "member"]


class LoginRequest(msgspec.Struct, kw_only=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class RefreshRequest(msgspec.Struct, kw_only=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    #: Seconds until the access token expires.
    expires_in: int
    token_type: Literal["bearer"] = "bearer"


class LogoutResponse(msgspec.Struct, kw_only=True):
    logged_out: bool = True


class ApiKeyRequest(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    #: Unix time after which the key is refused; unset: it does not expire.
    expires_at: int | None = None
    #: Engine kinds the key may use (``["embeddings", "llm"]``); unset: every engine.
    engines: Annotated[list[str], msgspec.Meta(min_length=1, max_length=64)] | None = None


class ApiKey(msgspec.Struct, kw_only=True):
    id: str
    name: str
    tenant: str
    created_at: int
    created_by: str
    expires_at: int | None = None
    engines: list[str] | None = None
    object: Literal["api_key"] = "api_key"


class ApiKeyCreated(ApiKey, kw_only=True):
    #: The key itself: shown this once, stored only as a digest.
    key: str


class ApiKeyList(msgspec.Struct, kw_only=True):
    data: list[ApiKey]
    object: Literal["list"] = "list"


class TenantRequest(msgspec.Struct, kw_only=True):
    name: Name


class Tenant(msgspec.Struct, kw_only=True):
    name: str
    created_at: int
    object: Literal["tenant"] = "tenant"


class TenantList(msgspec.Struct, kw_only=True):
    data: list[Tenant]
    object: Literal["list"] = "list"


class UserRequest(msgspec.Struct, kw_only=True):
    username: Name
    password: Password
    tenant: Name
    role: Role = "member"


class UserUpdate(msgspec.Struct, kw_only=True):
    password: Password | None = None
    tenant: Name | None = None
    role: Role | None = None


class User(msgspec.Struct, kw_only=True):
    username: str
    tenant: str
    role: Role
    created_at: int
    #: Unix time until which logins are refused after repeated failures (0: not locked).
    locked_until: float = 0.0
    object: Literal["user"] = "user"


class UserList(msgspec.Struct, kw_only=True):
    data: list[User]
    object: Literal["list"] = "list"


class Deleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: str = "deleted"
