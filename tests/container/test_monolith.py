"""The image as a monolith: every engine in one container, published on 127.0.0.1 only, with a
read-only root file system (so it starts without writing model files), driven by the openai SDK."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from aiplatform import __version__
from tests.container import calls
from tests.container.podman import TIMINGS, api_key, inspect, podman, started_at, wait_ready

pytestmark = [pytest.mark.container, pytest.mark.timeout(7200)]

NAME = "aiplatform-container-test"
#: The monolith's answers, which the split deployment must give too.
ANSWERS: dict[str, calls.Answers] = {}


@dataclass(frozen=True)
class Monolith:
    name: str
    url: str
    key: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def monolith(image: str) -> Iterator[Monolith]:
    volume = f"{NAME}-data"
    podman("rm", "--force", NAME, check=False)
    podman("volume", "rm", "--force", volume, check=False)
    port = free_port()
    podman(
        "run", "--detach", "--name", NAME, "--read-only",
        "--publish", f"127.0.0.1:{port}:8000", "--volume", f"{volume}:/data", image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(NAME, f"{url}/ready", 900)
        TIMINGS["monolith cold start (container start -> /ready 200)"] = time.time() - started_at(
            NAME
        )
        yield Monolith(NAME, url, api_key(NAME))
    finally:
        podman("rm", "--force", NAME, check=False)
        podman("volume", "rm", "--force", volume, check=False)


def test_the_openai_sdk_gets_real_answers(monolith: Monolith) -> None:
    began = time.monotonic()
    found = calls.ask(monolith.url, monolith.key)
    TIMINGS["monolith: embeddings + chat + transcription calls"] = time.monotonic() - began
    calls.check(found)
    ANSWERS["monolith"] = found
    with calls.client(monolith.url, monolith.key) as sdk:
        models = {model.id for model in sdk.models.list()}
    assert {calls.EMBEDDING_MODEL, calls.CHAT_MODEL, "whisper-base"} <= models


def test_it_runs_unprivileged_on_a_read_only_root_and_reports_healthy(monolith: Monolith) -> None:
    state = inspect(monolith.name)
    assert state["Config"]["User"] == "10001:10001"
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert podman("exec", monolith.name, "id", "-u").strip() == "10001"
    podman("healthcheck", "run", monolith.name)  # exits non-zero when unhealthy
    labels = state["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == "aiplatform"


def test_it_publishes_on_loopback_only(monolith: Monolith) -> None:
    bindings = inspect(monolith.name)["HostConfig"]["PortBindings"]["8000/tcp"]
    assert [binding["HostIp"] for binding in bindings] == ["127.0.0.1"]
