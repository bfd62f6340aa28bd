"""Authentication: logins, tokens, API keys, tenants from identities, and the admin API."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from aiplatform.server.app import create_app
from aiplatform.settings import Settings
from aiplatform.testing import fake_settings

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "correct horse battery staple"
SERVICE_TOKEN = "s" * 40
JWT_SECRET = "j" * 40


def auth_settings(tmp_path: Path, **auth: Any) -> Settings:
    settings = fake_settings(tmp_path)
    section = {
        "enabled": True,
        "admin_password": ADMIN_PASSWORD,
        "jwt_secret": JWT_SECRET,
        "service_token": SERVICE_TOKEN,
        "data_dir": str(tmp_path / "auth"),
        # the cheapest Argon2id the library takes: these tests check logic, not cost
        "password_time_cost": 1,
        "password_memory_kib": 8,
        "max_failed_logins": 3,
        **auth,
    }
    return msgspec.structs.replace(settings, auth=msgspec.convert(section, type(settings.auth)))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(auth_settings(tmp_path))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as test_client:
        yield test_client


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def admin_token(client: httpx.AsyncClient) -> str:
    return str((await login(client, "admin", ADMIN_PASSWORD))["access_token"])


async def embed(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    return await client.post("/v1/embeddings", json={"input": "hi"}, headers=headers)


def assert_401(response: httpx.Response, code: str | None = None) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    if code is not None:
        assert error["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_v1_route_needs_a_token_and_health_stays_open(
    client: httpx.AsyncClient,
) -> None:
    assert_401(await embed(client, None), "missing_api_key")
    assert_401(await client.get("/v1/models"), "missing_api_key")
    assert (await client.get("/health")).status_code == 200
    token = await admin_token(client)
    assert (await embed(client, token)).status_code == 200
    listed = await client.get("/v1/models", headers=bearer(token))
    assert listed.status_code == 200


async def test_tokens_that_are_not_ours_or_no_longer_valid_are_401(
    client: httpx.AsyncClient,
) -> None:
    good = await admin_token(client)
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(claims, "x" * 40, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, JWT_SECRET, algorithm="HS256")
    other_audience = jwt.encode({**claims, "aud": "someone-else"}, JWT_SECRET, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    no_session = jwt.encode({**claims, "sid": "nope"}, JWT_SECRET, algorithm="HS256")
    for token in (forged, expired, other_audience, unsigned, "garbage", good + "x"):
        assert_401(await embed(client, token), "invalid_token")
    assert_401(await embed(client, no_session), "token_revoked")
    assert (await embed(client, good)).status_code == 200


async def test_logout_revokes_at_once_and_refresh_rotates(client: httpx.AsyncClient) -> None:
    tokens = await login(client, "admin", ADMIN_PASSWORD)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    again = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_401(again, "invalid_token")  # a refresh token is good once
    access = refreshed.json()["access_token"]
    assert (await embed(client, access)).status_code == 200
    out = await client.post("/v1/auth/logout", headers=bearer(access))
    assert out.status_code == 200, out.text
    assert_401(await embed(client, access), "token_revoked")
    assert_401(await embed(client, tokens["access_token"]), "token_revoked")  # same session
    after = await client.post(
        "/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert_401(after, "invalid_token")


async def test_repeated_failed_logins_lock_the_account(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        wrong = await client.post("/v1/auth/login", json={"username": "admin", "password": "no"})
        assert_401(wrong, "invalid_credentials")
    locked = await client.post(
        "/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert_401(locked, "account_locked")
    assert int(locked.headers["retry-after"]) > 0
    unknown = await client.post("/v1/auth/login", json={"username": "who", "password": "x"})
    assert_401(unknown, "invalid_credentials")  # the same answer as a wrong password


async def test_api_keys_are_shown_once_scoped_and_revoked_at_once(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_token(client)
    created = await client.post("/v1/keys", json={"name": "ci"}, headers=bearer(admin))
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("aip_")
    listed = (await client.get("/v1/keys", headers=bearer(admin))).json()["data"]
    assert [item["name"] for item in listed] == ["ci"]
    assert all("key" not in item for item in listed)
    assert key not in (await client.get("/v1/keys", headers=bearer(admin))).text
    assert (await embed(client, key)).status_code == 200
    assert_401(await embed(client, key[:-2] + "xx"), "invalid_api_key")

    scoped = await client.post(
        "/v1/keys", json={"name": "llm only", "engines": ["llm"]}, headers=bearer(admin)
    )
    refused = await embed(client, scoped.json()["key"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "engine_not_allowed"
    # a limited key cannot make itself an unlimited one, nor revoke its tenant's other keys
    for made_by_key in (
        await client.post(
            "/v1/keys", json={"name": "escape"}, headers=bearer(scoped.json()["key"])
        ),
        await client.delete(
            f"/v1/keys/{created.json()['id']}", headers=bearer(scoped.json()["key"])
        ),
    ):
        assert made_by_key.status_code == 403
        assert made_by_key.json()["error"]["code"] == "login_required"
    bad_scope = await client.post(
        "/v1/keys", json={"name": "x", "engines": ["nope"]}, headers=bearer(admin)
    )
    assert bad_scope.status_code == 400

    soon = await client.post(
        "/v1/keys", json={"name": "soon", "expires_at": int(time.time()) + 1}, headers=bearer(admin)
    )
    deleted = await client.delete(f"/v1/keys/{created.json()['id']}", headers=bearer(admin))
    assert deleted.status_code == 200
    assert_401(await embed(client, key), "invalid_api_key")
    await anyio.sleep(1.1)
    assert_401(await embed(client, soon.json()["key"]), "expired_api_key")


async def test_tenants_come_from_identities_not_from_headers(client: httpx.AsyncClient) -> None:
    admin = await admin_token(client)
    for tenant in ("alpha", "beta"):
        made = await client.post("/v1/admin/tenants", json={"name": tenant}, headers=bearer(admin))
        assert made.status_code == 201, made.text
        user = {"username": f"{tenant}-user", "password": "password-1", "tenant": tenant}
        assert (
            await client.post("/v1/admin/users", json=user, headers=bearer(admin))
        ).status_code == 201
    alpha = (await login(client, "alpha-user", "password-1"))["access_token"]
    beta = (await login(client, "beta-user", "password-1"))["access_token"]

    made = await client.post("/v1/rag/collections", json={"name": "secret"}, headers=bearer(alpha))
    assert made.status_code in (200, 201), made.text
    seen_by_alpha = await client.get("/v1/rag/collections/secret", headers=bearer(alpha))
    assert seen_by_alpha.status_code == 200
    for method, path in (
        ("GET", "/v1/rag/collections/secret"),
        ("DELETE", "/v1/rag/collections/secret"),
    ):
        assert (await client.request(method, path, headers=bearer(beta))).status_code == 404
    listed = await client.get("/v1/rag/collections", headers=bearer(beta))
    assert listed.json()["data"] == []

    # a client may not name its tenant: the header is refused, with any credential
    spoofed = await client.get(
        "/v1/rag/collections", headers={**bearer(beta), "x-aiplatform-tenant": "alpha"}
    )
    assert spoofed.status_code == 403
    assert spoofed.json()["error"]["code"] == "tenant_header_not_allowed"
    # members cannot use the admin API
    member = await client.get("/v1/admin/users", headers=bearer(beta))
    assert member.status_code == 403


async def test_a_pod_honours_the_tenant_header_only_with_the_service_credential(
    client: httpx.AsyncClient,
) -> None:
    headers = {"x-aiplatform-service-token": SERVICE_TOKEN, "x-aiplatform-tenant": "gamma"}
    made = await client.post("/v1/rag/collections", json={"name": "g"}, headers=headers)
    assert made.status_code in (200, 201), made.text
    listed = await client.get("/v1/rag/collections", headers=headers)
    assert [c["name"] for c in listed.json()["data"]] == ["g"]
    wrong = await client.get(
        "/v1/rag/collections",
        headers={"x-aiplatform-service-token": "t" * 40, "x-aiplatform-tenant": "gamma"},
    )
    assert_401(wrong, "invalid_service_token")
    bare = await client.get("/v1/rag/collections", headers={"x-aiplatform-tenant": "gamma"})
    assert bare.status_code == 403


async def test_admin_api_manages_users_and_tenants(client: httpx.AsyncClient) -> None:
    admin = await admin_token(client)
    headers = bearer(admin)
    assert (
        await client.post("/v1/admin/tenants", json={"name": "t1"}, headers=headers)
    ).status_code == 201
    assert (
        await client.post("/v1/admin/tenants", json={"name": "t1"}, headers=headers)
    ).status_code == 409
    user = {"username": "u1", "password": "password-1", "tenant": "t1", "role": "member"}
    assert (await client.post("/v1/admin/users", json=user, headers=headers)).status_code == 201
    missing_tenant = {**user, "username": "u2", "tenant": "none"}
    assert (
        await client.post("/v1/admin/users", json=missing_tenant, headers=headers)
    ).status_code == 400
    token = (await login(client, "u1", "password-1"))["access_token"]
    changed = await client.patch("/v1/admin/users/u1", json={"role": "admin"}, headers=headers)
    assert changed.json()["role"] == "admin"
    assert_401(await embed(client, token), "token_revoked")  # a changed user logs in again
    assert (await client.delete("/v1/admin/tenants/t1", headers=headers)).status_code == 409
    assert (await client.delete("/v1/admin/users/u1", headers=headers)).status_code == 200
    assert (await client.delete("/v1/admin/tenants/t1", headers=headers)).status_code == 200
    tenants = (await client.get("/v1/admin/tenants", headers=headers)).json()["data"]
    assert [t["name"] for t in tenants] == ["default"]


async def test_secrets_never_reach_logs_or_error_bodies(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    admin = await admin_token(client)
    key = (await client.post("/v1/keys", json={"name": "k"}, headers=bearer(admin))).json()["key"]
    wrong = await client.post("/v1/auth/login", json={"username": "admin", "password": "hunter22"})
    bad_key = await embed(client, key + "zz")
    for secret in (ADMIN_PASSWORD, "hunter22", key, admin, SERVICE_TOKEN, JWT_SECRET):
        assert secret not in caplog.text
        assert secret not in wrong.text
        assert secret not in bad_key.text


async def test_auth_is_on_by_default_unless_bound_to_loopback(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    assert not settings.auth_enabled  # 127.0.0.1
    for host, expected in (
        ("0.0.0.0", True),
        ("::1", False),
        ("localhost", False),
        ("10.0.0.5", True),
    ):
        bound = msgspec.structs.replace(
            settings, server=msgspec.structs.replace(settings.server, host=host)
        )
        assert bound.auth_enabled is expected, host


async def test_with_a_storage_key_the_auth_database_is_encrypted(tmp_path: Path) -> None:
    settings = auth_settings(tmp_path)
    storage = msgspec.convert({"encryption_key": "k" * 32}, type(settings.storage))
    app = create_app(msgspec.structs.replace(settings, storage=storage))
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        assert (await embed(client, await admin_token(client))).status_code == 200
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(tmp_path / "auth" / "auth.sqlite3").execute("SELECT * FROM users")


async def test_only_admins_load_or_unload_the_models_every_tenant_shares(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_token(client)
    key = (await client.post("/v1/keys", json={"name": "m"}, headers=bearer(admin))).json()["key"]
    for path in ("/v1/llm/models/load", "/v1/llm/models/unload"):
        refused = await client.post(path, json={"model": "fake-llm"}, headers=bearer(key))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "admin_only"
        allowed = await client.post(path, json={"model": "fake-llm"}, headers=bearer(admin))
        assert allowed.status_code == 200, allowed.text
    # a pod takes it from its gateway, which checked the caller
    service = {"x-aiplatform-service-token": SERVICE_TOKEN, "x-aiplatform-tenant": "default"}
    forwarded = await client.post(
        "/v1/llm/models/load", json={"model": "fake-llm"}, headers=service
    )
    assert forwarded.status_code == 200, forwarded.text
