"""``/v1/coordinator`` on the platform's app: mounted only when the coordinator is on, behind
authentication, for admins and pods only; the lease routes' whole cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aiplatform.auth.identity import Identity, acting_identity
from aiplatform.coordinator import wiring
from aiplatform.coordinator.core import Claim
from aiplatform.coordinator.routes import check_coordinator_access
from aiplatform.coordinator.settings import CoordinatorSettings
from aiplatform.coordinator.wiring import Coordination
from aiplatform.errors import PermissionDeniedError
from aiplatform.server.app import create_app
from aiplatform.settings import Settings
from aiplatform.tenant import SERVICE_TOKEN_HEADER
from aiplatform.testing import POD_AUTH, fake_settings

pytestmark = pytest.mark.anyio

MIB = 2**20


def app_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, section: CoordinatorSettings
) -> tuple[httpx.AsyncClient, Coordination]:
    """The platform's app with authentication on and ``[coordinator]`` set to ``section``."""
    made: list[Coordination] = []

    def of(settings: Settings) -> Coordination:
        made.append(Coordination(section, service_token=settings.auth.service_token))
        return made[-1]

    monkeypatch.setattr(wiring.Coordination, "of", staticmethod(of))
    base = fake_settings(tmp_path)
    settings = Settings(engines=base.engines, auth=POD_AUTH.settings(tmp_path / "auth"))
    app = create_app(settings, engines={})
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://localhost"), made[0]


SERVICE = {SERVICE_TOKEN_HEADER: POD_AUTH.service_token}


@pytest.fixture
async def served(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Coordination]]:
    client, coordination = app_with(
        monkeypatch, tmp_path, CoordinatorSettings(cpu_budget_mib=100, serve=True, lease_ttl_s=8)
    )
    async with client:
        yield client, coordination


async def test_the_state_needs_a_credential_and_is_for_admins_and_pods(
    served: tuple[httpx.AsyncClient, Coordination],
) -> None:
    client, _ = served
    assert (await client.get("/v1/coordinator")).status_code == 401
    answer = await client.get("/v1/coordinator", headers=SERVICE)
    assert answer.status_code == 200
    state = answer.json()
    assert state["object"] == "coordinator"
    assert {d["device"]: d["budget_bytes"] for d in state["devices"]} == {"cpu": 100 * MIB}
    member = Identity(kind="key", subject="k1", tenant="t1", role="member")
    with acting_identity(member), pytest.raises(PermissionDeniedError):
        check_coordinator_access()


async def test_a_lease_over_http_from_grant_to_release(
    served: tuple[httpx.AsyncClient, Coordination],
) -> None:
    client, _ = served
    body = {"holder": "pod-1", "model": "m", "size_bytes": 40 * MIB, "measured": True}
    assert (await client.post("/v1/coordinator/leases", json=body)).status_code == 401
    granted = await client.post("/v1/coordinator/leases", json=body, headers=SERVICE)
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert grant["size_bytes"] == 40 * MIB
    assert grant["ttl_s"] == 8
    assert grant["heartbeat_s"] == 2
    beat = await client.post(
        f"/v1/coordinator/leases/{grant['id']}/heartbeat",
        json={"size_bytes": 30 * MIB, "active": 1},
        headers=SERVICE,
    )
    assert beat.json() == {"id": grant["id"], "release": False, "ttl_s": 8.0}
    (lease,) = (await client.get("/v1/coordinator", headers=SERVICE)).json()["leases"]
    assert (lease["holder"], lease["model"], lease["size_bytes"], lease["active"]) == (
        "pod-1", "m", 30 * MIB, 1,
    )  # fmt: skip
    assert 0 < lease["expires_in_s"] <= 8
    path = f"/v1/coordinator/leases/{grant['id']}"
    assert (await client.delete(path, headers=SERVICE)).json()["deleted"] is True
    assert (await client.delete(path, headers=SERVICE)).status_code == 404
    gone = await client.post(f"{path}/heartbeat", json={}, headers=SERVICE)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "lease_not_found"


async def test_the_lease_routes_refuse_what_they_cannot_serve(
    served: tuple[httpx.AsyncClient, Coordination],
) -> None:
    client, coordination = served
    assert coordination.coordinator is not None
    local = await coordination.coordinator.acquire(Claim("here", "m", "cpu", MIB, measured=True))
    # a lease held in this process is not a pod's to beat or release
    assert (
        await client.delete(f"/v1/coordinator/leases/{local.id}", headers=SERVICE)
    ).status_code == 404
    bad = [
        {"holder": "p", "model": "m", "size_bytes": 1, "device": "tpu:0"},
        {"holder": "p", "model": "m", "size_bytes": -1},
        {"holder": "p", "model": "m", "size_bytes": 1, "surprise": True},
    ]
    for body in bad:
        answer = await client.post("/v1/coordinator/leases", json=body, headers=SERVICE)
        assert answer.status_code == 400, body
    too_big = {"holder": "p", "model": "m", "size_bytes": 101 * MIB, "measured": True}
    answer = await client.post("/v1/coordinator/leases", json=too_big, headers=SERVICE)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "memory_budget_exceeded"
    busy = {"holder": "p", "model": "m2", "size_bytes": 100 * MIB, "measured": True, "wait_s": 0.1}
    coordination.coordinator.touch(local.id, active=1)  # busy, equal priority: stays
    answer = await client.post("/v1/coordinator/leases", json=busy, headers=SERVICE)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "memory_unavailable"
    assert answer.headers["retry-after"] == "5"


async def test_a_server_without_the_coordinator_has_no_such_routes(tmp_path: Path) -> None:
    app = create_app(fake_settings(tmp_path), engines={})
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        assert (await client.get("/v1/coordinator")).status_code == 404


async def test_only_the_state_without_serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client, _ = app_with(monkeypatch, tmp_path, CoordinatorSettings(cpu_budget_mib=100))
    async with client:
        assert (await client.get("/v1/coordinator", headers=SERVICE)).status_code == 200
        body = {"holder": "p", "model": "m", "size_bytes": 1}
        answer = await client.post("/v1/coordinator/leases", json=body, headers=SERVICE)
        assert answer.status_code in (404, 405)


def test_a_server_keeps_a_coordinator_or_leases_from_one_not_both() -> None:
    with pytest.raises(ValueError, match="excludes"):
        Coordination(CoordinatorSettings(url="http://coordinator:8000", cpu_budget_mib=10))
    assert Coordination(CoordinatorSettings()).leaser is None  # off by default
