"""Split mode for real: a coordinator service (``aiplatform serve`` with ``[coordinator] serve``
and a budget, no engine of its own) and LLM pods on the fake backend leasing from it over HTTP,
with authentication on as in a deployment (the pods present the service credential).

A pod killed with SIGKILL keeps its lease only until the lease's TTL runs out without a
heartbeat; then another pod gets the memory. A pod that is alive and idle is told at its
heartbeat to unload when another pod's load needs the memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from aiplatform.settings import engine_names
from aiplatform.tenant import SERVICE_TOKEN_HEADER
from aiplatform.testing import POD_AUTH, ServerProcess

TTL_S = 2.0
SERVICE = {SERVICE_TOKEN_HEADER: POD_AUTH.service_token}


def coordinator_service() -> ServerProcess:
    env = {f"AIPLATFORM_ENGINES__{name.upper()}__ENABLED": "false" for name in engine_names()}
    env |= {
        "AIPLATFORM_COORDINATOR__SERVE": "true",
        "AIPLATFORM_COORDINATOR__CPU_BUDGET_MIB": "100",
        "AIPLATFORM_COORDINATOR__LEASE_TTL_S": str(TTL_S),
    }
    return ServerProcess([], env, auth=POD_AUTH)


def llm_pod(coordinator: ServerProcess, name: str, *, priority: int, load: str) -> ServerProcess:
    model = {"name": name, "backend": "fake", "memory_mib": 80, "priority": priority, "load": load}
    env = {
        "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps([model]),
        "AIPLATFORM_COORDINATOR__URL": coordinator.url,
        "AIPLATFORM_COORDINATOR__HOLDER": f"pod-{name}",
        "AIPLATFORM_COORDINATOR__WAIT_TIMEOUT_S": "1.5",
    }
    return ServerProcess(["--engines", "llm"], env, auth=POD_AUTH)


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def start(stack: ExitStack, server: ServerProcess) -> ServerProcess:
    server.start()
    stack.callback(server.stop)
    return server


def leases(coordinator: ServerProcess) -> list[dict[str, Any]]:
    answer = httpx.get(f"{coordinator.url}/v1/coordinator", headers=SERVICE, timeout=10)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["leases"]
    return found


def chat(pod: ServerProcess, model: str) -> httpx.Response:
    body = {"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{pod.url}/v1/chat/completions", json=body, headers=SERVICE, timeout=30)


def loaded(pod: ServerProcess) -> dict[str, bool]:
    answer = httpx.get(f"{pod.url}/v1/llm/models", headers=SERVICE, timeout=10)
    return {state["id"]: state["loaded"] for state in answer.json()["data"]}


def test_a_killed_pods_lease_expires_and_another_pod_gets_the_memory(servers: ExitStack) -> None:
    coordinator = start(servers, coordinator_service())
    assert httpx.get(f"{coordinator.url}/v1/coordinator", timeout=10).status_code == 401
    holder = start(servers, llm_pod(coordinator, "vip", priority=9, load="startup"))
    (lease,) = leases(coordinator)
    assert (lease["holder"], lease["model"], lease["size_bytes"]) == ("pod-vip", "vip", 80 * 2**20)
    other = start(servers, llm_pod(coordinator, "other", priority=0, load="on_demand"))

    refused = chat(other, "other")  # vip is idle but outranks it: no memory within the wait
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "memory_unavailable"
    assert int(refused.headers["retry-after"]) >= 1

    holder.kill()  # SIGKILL: no unload, no release, no more heartbeats
    killed_at = time.monotonic()
    assert [lease["holder"] for lease in leases(coordinator)] == ["pod-vip"]
    deadline = killed_at + TTL_S + 10
    while any(lease["holder"] == "pod-vip" for lease in leases(coordinator)):
        assert time.monotonic() < deadline, "the dead pod's lease did not expire"
        time.sleep(0.1)
    # it lived on for most of its TTL after the last heartbeat (sent every TTL/4)
    assert time.monotonic() - killed_at >= TTL_S * 0.75 - 0.1

    answer = chat(other, "other")
    assert answer.status_code == 200, answer.text
    assert [(lease["holder"], lease["model"]) for lease in leases(coordinator)] == [
        ("pod-other", "other")
    ]


def test_a_live_pod_unloads_at_its_heartbeat_when_another_pod_needs_the_memory(
    servers: ExitStack,
) -> None:
    coordinator = start(servers, coordinator_service())
    first = start(servers, llm_pod(coordinator, "first", priority=0, load="startup"))
    second = start(servers, llm_pod(coordinator, "second", priority=0, load="on_demand"))
    assert loaded(first) == {"first": True}

    assert chat(second, "second").status_code == 200  # "first" is idle: it makes room
    assert loaded(first) == {"first": False}
    assert loaded(second) == {"second": True}
    assert [lease["holder"] for lease in leases(coordinator)] == ["pod-second"]

    assert chat(first, "first").status_code == 200  # and back
    assert loaded(second) == {"second": False}
    assert [lease["holder"] for lease in leases(coordinator)] == ["pod-first"]
