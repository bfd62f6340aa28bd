"""Two gateway replicas sharing one PostgreSQL identity store and one Redis: a key or login
made on one works on the other, a revocation or logout on one holds on the other at once, and
a key's rate limit holds exactly across both.

Every process is a real ``aiplatform serve``: an embeddings pod (authentication on, accepting
the gateways' service credential) and two gateways forwarding embeddings to it, all configured
as a split deployment configures them, through ``AIPLATFORM_*`` variables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_rate_limits import (
    ADMIN_PASSWORD,
    AUTH,
    CONCURRENT,
    LIMIT,
    at_once,
    check_exactly_the_excess_refused,
    embed,
    sdk,
)
from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess
from tests.unit.auth_store.postgres_server import postgres_server
from tests.unit.limits.redis_server import redis_server

pytestmark = pytest.mark.anyio

SERVICE_TOKEN = "gateway-to-pod-" + "t" * 32


def auth_env(database_url: str, folder: Path) -> dict[str, str]:
    env = {f"AIPLATFORM_AUTH__{name.upper()}": str(value) for name, value in AUTH.items()}
    return {
        **env,
        "AIPLATFORM_AUTH__SERVICE_TOKEN": SERVICE_TOKEN,
        "AIPLATFORM_AUTH__DATABASE_URL": database_url,
        # only the signing key would be kept here; the identities are in the database
        "AIPLATFORM_AUTH__DATA_DIR": str(folder),
    }


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The URLs of two gateways in front of one embeddings pod."""
    folder = tmp_path_factory.mktemp("shared")
    with ExitStack() as stack:
        database = stack.enter_context(postgres_server())
        redis = stack.enter_context(redis_server())
        pod = ServerProcess(
            ["--engines", "embeddings"],
            {**FAKE_EMBEDDINGS_ENV, **auth_env(database, folder / "pod")},
        )
        stack.enter_context(pod)
        urls = []
        for name in ("one", "two"):
            gateway = ServerProcess(
                ["--engines", "embeddings"],
                {
                    **auth_env(database, folder / name),
                    "AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url,
                    "AIPLATFORM_LIMITS__REQUESTS_PER_MINUTE": str(LIMIT),
                    "AIPLATFORM_LIMITS__REDIS_URL": redis.url,
                },
            )
            stack.enter_context(gateway)
            urls.append(gateway.url)
        yield urls[0], urls[1]


@pytest.fixture
async def clients(gateways: tuple[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """A client of each gateway."""
    async with (
        httpx.AsyncClient(base_url=gateways[0], timeout=30) as one,
        httpx.AsyncClient(base_url=gateways[1], timeout=30) as two,
    ):
        yield one, two


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient) -> str:
    answer = await client.post(
        "/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def make_key(client: httpx.AsyncClient, token: str, name: str) -> tuple[str, str]:
    created = await client.post("/v1/keys", json={"name": name}, headers=bearer(token))
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


async def models(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/v1/models", headers=bearer(token))).status_code


async def test_a_key_made_on_one_gateway_is_limited_across_both(
    clients: tuple[httpx.AsyncClient, ...],
) -> None:
    one, two = clients
    _, key = await make_key(one, await login(one), "shared-limit")
    calls = [lambda: embed(sdk(one, key)), lambda: embed(sdk(two, key))] * (CONCURRENT // 2)
    check_exactly_the_excess_refused(await at_once(calls))


async def test_a_key_revoked_on_one_gateway_is_refused_by_the_other_at_once(
    clients: tuple[httpx.AsyncClient, ...],
) -> None:
    one, two = clients
    token = await login(two)
    key_id, key = await make_key(two, token, "revoked")
    assert await models(one, key) == 200
    assert (await one.delete(f"/v1/keys/{key_id}", headers=bearer(token))).status_code == 200
    assert await models(two, key) == 401
    assert await models(one, key) == 401


async def test_a_logout_on_one_gateway_ends_the_session_on_the_other(
    clients: tuple[httpx.AsyncClient, ...],
) -> None:
    one, two = clients
    token = await login(one)
    assert await models(two, token) == 200
    assert (await two.post("/v1/auth/logout", headers=bearer(token))).status_code == 200
    assert await models(one, token) == 401
    assert await models(two, token) == 401
