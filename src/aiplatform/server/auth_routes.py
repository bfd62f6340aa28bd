"""``/v1/auth`` (login, refresh, logout), ``/v1/keys`` and the admin API ``/v1/admin``."""

from __future__ import annotations

from litestar import Response, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from aiplatform.api.auth import (
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRequest,
    Deleted,
    LoginRequest,
    LogoutResponse,
    RefreshRequest,
    Tenant,
    TenantList,
    TenantRequest,
    TokenResponse,
    User,
    UserList,
    UserRequest,
    UserUpdate,
)
from aiplatform.api.ids import check_id
from aiplatform.auth.identity import current_identity
from aiplatform.auth.service import AuthService
from aiplatform.server.guard.json_body import require_json_body
from aiplatform.server.openapi import JSON_ONLY, error_response

__all__ = ["OPEN_PATHS", "auth_routes"]

#: Routes a caller reaches without a bearer token (they are how one gets a token).
OPEN_PATHS = frozenset({"/v1/auth/login", "/v1/auth/refresh"})


_ERRORS = {
    status: error_response(description)
    for status, description in (
        (400, "Invalid request"),
        (401, "No valid credential (or wrong username or password, or a locked account)"),
        (403, "Not allowed to this caller (the admin API is for admins)"),
        (404, "No such object in the caller's tenant"),
        (409, "Conflicts with what exists (a name taken, a tenant still in use)"),
        (429, "Too many requests: retry later"),
        (503, "The identity database cannot be reached"),
    )
}
#: The routes with a JSON body also refuse other bodies.
_JSON_ERRORS = {**_ERRORS, 415: error_response(JSON_ONLY)}


def auth_routes(auth: AuthService) -> list[HTTPRouteHandler]:
    @post(
        "/v1/auth/login",
        tags=["auth"],
        summary="Log in: an access and a refresh token",
        status_code=200,
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def login(data: JSONBody[LoginRequest]) -> Response[TokenResponse]:
        return Response(await auth.login(data.username, data.password), status_code=200)

    @post(
        "/v1/auth/refresh",
        tags=["auth"],
        summary="A new access token for a refresh token",
        status_code=200,
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def refresh(data: JSONBody[RefreshRequest]) -> Response[TokenResponse]:
        return Response(await auth.refresh(data.refresh_token), status_code=200)

    @post(
        "/v1/auth/logout",
        tags=["auth"],
        summary="End this login session at once",
        status_code=200,
        responses=_ERRORS,
    )
    async def logout() -> Response[LogoutResponse]:
        await auth.logout(current_identity())
        return Response(LogoutResponse(), status_code=200)

    @post(
        "/v1/keys",
        tags=["auth"],
        summary="Create an API key (shown this once)",
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def create_key(data: JSONBody[ApiKeyRequest]) -> Response[ApiKeyCreated]:
        return Response(await auth.create_key(current_identity(), data), status_code=201)

    @get(
        "/v1/keys", tags=["auth"], summary="The API keys of the caller's tenant", responses=_ERRORS
    )
    async def list_keys() -> ApiKeyList:
        return ApiKeyList(data=await auth.keys(current_identity()))

    @delete(
        "/v1/keys/{key_id:str}",
        tags=["auth"],
        summary="Revoke an API key",
        status_code=200,
        responses=_ERRORS,
    )
    async def delete_key(key_id: FromPath[str]) -> Deleted:
        await auth.delete_key(current_identity(), check_id("key_id", key_id))
        return Deleted(id=key_id, object="api_key.deleted")

    @post(
        "/v1/admin/tenants",
        tags=["admin"],
        summary="Create a tenant",
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def create_tenant(data: JSONBody[TenantRequest]) -> Response[Tenant]:
        return Response(await auth.add_tenant(current_identity(), data.name), status_code=201)

    @get("/v1/admin/tenants", tags=["admin"], summary="List tenants", responses=_ERRORS)
    async def list_tenants() -> TenantList:
        return TenantList(data=await auth.tenants(current_identity()))

    @delete(
        "/v1/admin/tenants/{name:str}",
        tags=["admin"],
        summary="Delete a tenant",
        status_code=200,
        responses=_ERRORS,
    )
    async def delete_tenant(name: FromPath[str]) -> Deleted:
        await auth.delete_tenant(current_identity(), name)
        return Deleted(id=name, object="tenant.deleted")

    @post(
        "/v1/admin/users",
        tags=["admin"],
        summary="Create a user",
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def create_user(data: JSONBody[UserRequest]) -> Response[User]:
        return Response(await auth.add_user(current_identity(), data), status_code=201)

    @get("/v1/admin/users", tags=["admin"], summary="List users", responses=_ERRORS)
    async def list_users() -> UserList:
        return UserList(data=await auth.users(current_identity()))

    @get("/v1/admin/users/{username:str}", tags=["admin"], summary="Get a user", responses=_ERRORS)
    async def get_user(username: FromPath[str]) -> User:
        return await auth.user(current_identity(), username)

    @patch(
        "/v1/admin/users/{username:str}",
        tags=["admin"],
        summary="Change a user",
        before_request=require_json_body,
        responses=_JSON_ERRORS,
    )
    async def update_user(username: FromPath[str], data: JSONBody[UserUpdate]) -> User:
        return await auth.update_user(current_identity(), username, data)

    @delete(
        "/v1/admin/users/{username:str}",
        tags=["admin"],
        summary="Delete a user",
        status_code=200,
        responses=_ERRORS,
    )
    async def delete_user(username: FromPath[str]) -> Deleted:
        await auth.delete_user(current_identity(), username)
        return Deleted(id=username, object="user.deleted")

    return [
        login, refresh, logout, create_key, list_keys, delete_key, create_tenant, list_tenants,
        delete_tenant, create_user, list_users, get_user, update_user, delete_user,
    ]  # fmt: skip
