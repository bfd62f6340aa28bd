"""``/metrics`` of an app in this process: request counts that match what was sent, exactly (each
app has a registry of its own), bounded labels, and nothing at all with metrics off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from litestar.types import Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry

from aiplatform.auth.identity import Identity, acting_identity
from aiplatform.auth.settings import AuthSettings
from aiplatform.errors import EngineOverloadedError
from aiplatform.limits.settings import RateLimitSettings
from aiplatform.observability.metrics import app_metrics
from aiplatform.observability.metrics_requests import (
    NO_TENANT,
    OTHER_TENANT,
    RequestMetrics,
    RouteLabels,
    TenantLabels,
)
from aiplatform.observability.metrics_settings import MetricsSettings
from aiplatform.server.app import create_app
from aiplatform.settings import Settings, select_engines
from aiplatform.testing import fake_settings
from tests.unit.observability.scrape import Labels, samples, value

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "correct horse battery staple"
SERVICE_TOKEN = "s" * 40
EMBED = {"engine": "embeddings", "operation": "embed"}


def embeddings_settings(tmp_path: Path, **sections: Any) -> Settings:
    """The fake embeddings engine alone, with ``sections`` replaced."""
    return msgspec.structs.replace(
        select_engines(fake_settings(tmp_path), ["embeddings"]), **sections
    )


def auth_on(tmp_path: Path) -> AuthSettings:
    return AuthSettings(
        enabled=True,
        admin_password=ADMIN_PASSWORD,
        jwt_secret="j" * 40,
        service_token=SERVICE_TOKEN,
        data_dir=str(tmp_path / "auth"),
        password_time_cost=1,
        password_memory_kib=8,
    )


def labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def unrouted(**values: str) -> Labels:
    return labels(engine="server", operation="other", **values)


async def embed(client: httpx.AsyncClient, headers: dict[str, str], body: Any = None) -> int:
    response = await client.post(
        "/v1/embeddings", json={"input": "hi"} if body is None else body, headers=headers
    )
    return response.status_code


SCRAPE_TOKEN = "scrape-" + "m" * 32
SCRAPER = {"authorization": f"Bearer {SCRAPE_TOKEN}"}


async def test_request_counts_match_the_requests_sent_exactly(tmp_path: Path) -> None:
    settings = embeddings_settings(
        tmp_path,
        auth=auth_on(tmp_path),
        limits=RateLimitSettings(requests_per_minute=4),
        metrics=MetricsSettings(token=SCRAPE_TOKEN),
    )
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        login = await client.post(
            "/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        admin = {"authorization": f"Bearer {login.json()['access_token']}"}
        assert [await embed(client, admin) for _ in range(3)] == [200, 200, 200]
        assert await embed(client, admin, body={}) == 400  # no input
        assert await embed(client, admin) == 429  # the key's 4 requests a minute are spent
        assert [await embed(client, {}) for _ in range(2)] == [401, 401]
        gateway = {"x-aiplatform-service-token": SERVICE_TOKEN, "x-aiplatform-tenant": "alpha"}
        assert await embed(client, gateway) == 200
        assert (await client.get("/v1/nowhere")).status_code == 404
        first = await client.get("/metrics", headers=SCRAPER)
        second = await client.get("/metrics", headers=SCRAPER)

    assert first.status_code == 200
    assert first.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert samples(first.text, "aiplatform_requests_total") == {
        labels(engine="server", operation="login", status="200", tenant=NO_TENANT): 1,
        labels(**EMBED, status="200", tenant="default"): 3,
        labels(**EMBED, status="400", tenant="default"): 1,
        labels(**EMBED, status="429", tenant="default"): 1,
        labels(**EMBED, status="401", tenant=NO_TENANT): 2,
        labels(**EMBED, status="200", tenant="alpha"): 1,
        labels(engine="server", operation="other", status="404", tenant=NO_TENANT): 1,
    }
    assert samples(first.text, "aiplatform_request_duration_seconds_count") == {
        labels(**EMBED): 8,
        labels(engine="server", operation="login"): 1,
        labels(engine="server", operation="metrics"): 0,  # the scrape, still running
    }
    # the scrape itself is in flight while it renders, and counted once it is over
    assert samples(first.text, "aiplatform_requests_in_flight") == {
        labels(engine="embeddings"): 0,
        labels(engine="server"): 1,
    }
    metrics_route = {"engine": "server", "operation": "metrics", "status": "200"}
    assert value(first.text, "aiplatform_requests_total", **metrics_route, tenant=NO_TENANT) == 0
    assert value(second.text, "aiplatform_requests_total", **metrics_route, tenant=NO_TENANT) == 1


async def test_with_a_token_only_the_scraper_reads_the_metrics(tmp_path: Path) -> None:
    settings = embeddings_settings(tmp_path, metrics=MetricsSettings(token=SCRAPE_TOKEN))
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        for headers in ({}, {"authorization": "Bearer " + "x" * 40}):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "invalid_metrics_token"
        assert (await client.get("/metrics", headers=SCRAPER)).status_code == 200


async def test_with_authentication_on_and_no_token_no_tenant_is_named(tmp_path: Path) -> None:
    settings = embeddings_settings(tmp_path, auth=auth_on(tmp_path))
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        gateway = {"x-aiplatform-service-token": SERVICE_TOKEN, "x-aiplatform-tenant": "alpha"}
        assert await embed(client, gateway) == 200
        text = (await client.get("/metrics")).text
    counted = samples(text, "aiplatform_requests_total")
    assert counted[labels(**EMBED, status="200")] == 1
    assert "alpha" not in text


async def test_without_the_tenant_label_no_tenant_is_named(tmp_path: Path) -> None:
    settings = embeddings_settings(tmp_path, metrics=MetricsSettings(tenant_label=False))
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        assert await embed(client, {"x-aiplatform-tenant": "alpha"}) == 200
        assert await embed(client, {"x-aiplatform-tenant": "beta"}) == 200
        assert (await client.delete("/health")).status_code == 405
        text = (await client.get("/metrics")).text
    assert samples(text, "aiplatform_requests_total") == {
        labels(**EMBED, status="200"): 2,
        labels(engine="server", operation="other", status="405"): 1,
    }
    assert "alpha" not in text


async def test_with_authentication_off_requests_act_for_the_tenant_they_run_as(
    tmp_path: Path,
) -> None:
    settings = embeddings_settings(tmp_path, metrics=MetricsSettings(max_tenants=1))
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        assert await embed(client, {}) == 200
        assert await embed(client, {"x-aiplatform-tenant": "alpha"}) == 200
        text = (await client.get("/metrics")).text
    assert samples(text, "aiplatform_requests_total") == {
        labels(**EMBED, status="200", tenant="default"): 1,
        labels(**EMBED, status="200", tenant=OTHER_TENANT): 1,  # past max_tenants
    }


async def test_with_metrics_off_there_is_no_route_and_no_middleware(tmp_path: Path) -> None:
    off = embeddings_settings(tmp_path, metrics=MetricsSettings(enabled=False))
    on = embeddings_settings(tmp_path)
    assert app_metrics(off.metrics, {}, auth_enabled=False).middleware == []
    app = create_app(off)
    assert len(app.middleware) == len(create_app(on).middleware) - 1
    assert app.after_exception == []
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        assert await embed(client, {}) == 200
        assert (await client.get("/metrics")).status_code == 404


async def test_a_scraper_that_asks_for_openmetrics_gets_it(tmp_path: Path) -> None:
    async with AsyncTestClient(
        app=create_app(embeddings_settings(tmp_path)), base_url="http://127.0.0.1"
    ) as client:
        response = await client.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_tenants_past_the_limit_share_one_label() -> None:
    tenants = TenantLabels(2)
    assert [tenants(name) for name in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        OTHER_TENANT,
        "a",
        OTHER_TENANT,
        "b",
    ]


def test_routes_are_named_by_their_operation_never_by_their_path() -> None:
    from litestar import get

    @get("/v1/embeddings/{anything:str}", name="embeddings.embed")
    async def routed() -> None: ...

    @get("/health")
    async def health() -> None: ...

    routes = RouteLabels([("embeddings", "embed")])
    assert routes(routed) == ("embeddings", "embed")
    assert routes(health) == ("server", "health")
    assert routes(None) == ("server", "other")


# -- the middleware alone, around apps that fail -------------------------------------------------


class Run:
    """One request through the middleware around ``app``, as the identity given."""

    def __init__(self, app: Any, identity: Identity | None = None) -> None:
        self.registry = CollectorRegistry()
        self.metrics = RequestMetrics(
            self.registry, [], tenants=TenantLabels(10), auth_enabled=True
        )
        self.app = app
        self.identity = identity

    async def __call__(self) -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            pass

        async def inner(scope: Scope, receive: Receive, send: Send) -> None:
            if self.identity is None:
                await self.app(scope, receive, send)
                return
            with acting_identity(self.identity):
                await self.app(scope, receive, send)

        scope: Any = {"type": "http", "path": "/x", "headers": [], "route_handler": None}
        await self.metrics.middleware(inner)(scope, receive, send)

    def counted(self) -> dict[Labels, float]:
        from prometheus_client import generate_latest

        return samples(generate_latest(self.registry).decode(), "aiplatform_requests_total")


async def test_an_error_raised_past_the_middleware_is_counted_with_its_status() -> None:
    member = Identity(kind="key", subject="k1", tenant="acme", role="member", key_id="k1")

    async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # read as the identity: the tenant is known from here on
        raise EngineOverloadedError("busy", retry_after_s=1)

    run = Run(overloaded, member)
    with pytest.raises(EngineOverloadedError):
        await run()
    assert run.counted() == {unrouted(status="429", tenant="acme"): 1}

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    run = Run(broken)
    with pytest.raises(RuntimeError):
        await run()
    assert run.counted() == {unrouted(status="500", tenant=NO_TENANT): 1}


async def test_a_request_cancelled_before_its_answer_is_a_499() -> None:
    async def hanging(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(60)

    run = Run(hanging)
    task = asyncio.ensure_future(run())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert run.counted() == {unrouted(status="499", tenant=NO_TENANT): 1}
