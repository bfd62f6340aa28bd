"""The image as the split deployment of ``deploy/compose/split.yaml`` (podman-compose): the
gateway and one container per engine, with authentication on and the users and keys they share
in PostgreSQL. The gateway gives the monolith's answers; an engine container killed with SIGKILL
is a 503 in OpenAI's error shape for its engine while the others still answer, and is used
again once it is started."""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import yaml

from aiplatform.deploy.profiles import engine_profiles
from tests.container import calls
from tests.container.podman import (
    BUILD_DIR,
    FIGURES,
    REPO,
    TIMINGS,
    address,
    answers,
    api_key,
    base_image,
    environment,
    inspect,
    logs,
    podman,
    postgres_image,
    run,
    started_at,
    wait_ready,
    wait_until,
)
from tests.container.test_monolith import ANSWERS

pytestmark = [pytest.mark.container, pytest.mark.timeout(7200)]

COMPOSE_FILE = REPO / "deploy" / "compose" / "split.yaml"
PROJECT = "aiplatform-container-test"
#: The compose file publishes the gateway here.
GATEWAY = "http://127.0.0.1:8000"
#: The engine the fault test kills: rag and rerank use it, the llm does not.
VICTIM = "embeddings"
POSTGRES = "postgres"
#: What the compose file requires in its environment: made for this session.
VARIABLES = {
    "AIP_SERVICE_TOKEN": secrets.token_hex(24),
    "AIP_JWT_SECRET": secrets.token_hex(24),
    "AIP_POSTGRES_PASSWORD": secrets.token_hex(16),
}
#: Gives the postgres service the local stand-in for its image (written by the fixture).
OVERRIDE = BUILD_DIR / "split-postgres.yaml"


@dataclass(frozen=True)
class Split:
    #: Compose service name -> container name.
    containers: dict[str, str]
    #: An API key made on the gateway.
    key: str


def compose_command(*args: str) -> list[str]:
    files = [COMPOSE_FILE, *([OVERRIDE] if OVERRIDE.is_file() else [])]
    named = [arg for path in files for arg in ("--file", str(path))]
    return ["podman-compose", "--project-name", PROJECT, *named, *args]


def write_override(image: str) -> Path:
    override = {"services": {POSTGRES: {"image": image, "pull_policy": "never"}}}
    OVERRIDE.write_text(yaml.safe_dump(override))
    return OVERRIDE


def service_containers() -> dict[str, str]:
    """Compose service name -> container name, for the containers created so far; a
    container that exited fails the test with its log."""
    listed = json.loads(
        podman(
            "ps",
            "--all",
            "--format",
            "json",
            "--filter",
            f"label=io.podman.compose.project={PROJECT}",
        )
    )
    for entry in listed:
        if entry["State"] == "exited":
            raise AssertionError(f"{entry['Names'][0]} exited\n{logs(entry['Names'][0])}")
    return {entry["Labels"]["com.docker.compose.service"]: entry["Names"][0] for entry in listed}


class ColdStarts:
    """Polls each container from this host while compose is still starting the others: the
    gateway's published /health, each engine's /ready on its network address. A container's
    cold start is from its process start to its first 200."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._addresses: dict[str, str] = {}

    def poll(self, containers: dict[str, str]) -> None:
        for service, name in containers.items():
            if service not in self.seconds and answers(self._url(service, name)):
                self.seconds[service] = time.time() - started_at(name)

    def _url(self, service: str, name: str) -> str:
        if service == "gateway":
            return f"{GATEWAY}/health"
        if not self._addresses.get(name):
            self._addresses[name] = address(name)  # empty until the container runs
        return f"http://{self._addresses[name]}:8000/ready"


def start_postgres(timeout_s: float) -> None:
    """The database alone, until it accepts connections: podman-compose 1.0 starts the others
    without waiting for the healthy condition the compose file sets."""
    began = time.monotonic()
    run(compose_command("up", "--detach", "--no-build", POSTGRES), env=VARIABLES)
    container = service_containers()[POSTGRES]
    spec = yaml.safe_load(COMPOSE_FILE.read_text())["services"][POSTGRES]["healthcheck"]["test"]
    command = spec[1] if spec[0] == "CMD-SHELL" else shlex.join(spec[1:])

    def healthy() -> bool:
        done = run(["podman", "exec", container, "sh", "-c", command], check=False)
        return "accepting connections" in done

    wait_until(healthy, timeout_s, "PostgreSQL accepting connections")
    TIMINGS["split: PostgreSQL up (first start: initdb)"] = time.monotonic() - began


def start_split(expected: set[str], timeout_s: float) -> dict[str, str]:
    """``podman-compose up``, every cold start measured meanwhile; the service containers."""
    cold = ColdStarts()
    began = time.monotonic()
    containers: dict[str, str] = {}
    up_took: float | None = None
    log = BUILD_DIR / "compose-up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            compose_command("up", "--detach", "--no-build"),
            env={**environment(), **VARIABLES}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        while up_took is None or set(cold.seconds) < expected:
            containers = service_containers()
            cold.poll({service: containers[service] for service in expected & set(containers)})
            if up_took is None and up.poll() is not None:
                up_took = time.monotonic() - began
            if up.returncode not in (None, 0) or time.monotonic() - began > timeout_s:
                waiting = sorted(set(containers) - set(cold.seconds))
                details = "\n".join(f"--- {s}\n{logs(containers[s])}" for s in waiting)
                raise AssertionError(
                    f"podman-compose up exited {up.returncode}; not ready: {waiting}\n"
                    f"{log.read_text()[-3000:]}\n{details}"
                )
            time.sleep(0.5)
    assert up_took is not None
    TIMINGS["split: podman-compose up (creates and starts each in turn)"] = up_took
    for service, seconds in sorted(cold.seconds.items(), key=lambda item: item[1]):
        TIMINGS[f"split cold start: {service}"] = seconds
    return containers


@pytest.fixture(scope="module")
def split(image: str) -> Iterator[Split]:
    if not COMPOSE_FILE.is_file():
        pytest.fail(
            f"{COMPOSE_FILE.relative_to(REPO)} is missing: aiplatform deploy render writes it"
        )
    expected = {"gateway", *engine_profiles()}
    write_override(postgres_image(base_image()))
    remove_split()
    try:
        began = time.monotonic()
        start_postgres(300)
        containers = start_split(expected, 900)
        assert set(containers) == expected | {POSTGRES}, containers
        wait_until(lambda: answers(f"{GATEWAY}/ready"), 120, "the gateway's /ready")
        TIMINGS["split: podman-compose up -> gateway /ready 200"] = time.monotonic() - began
        yield Split(containers, api_key(containers["gateway"]))
    finally:
        remove_split()


def remove_split() -> None:
    """The project's containers with their anonymous /data volumes (which podman-compose's
    ``down --volumes`` leaves), then its network and named volumes."""
    listed = podman(
        "ps", "--all", "--quiet", "--filter", f"label=io.podman.compose.project={PROJECT}"
    )
    for container in listed.split():
        podman("rm", "--force", "--volumes", container, check=False)
    run(compose_command("down", "--volumes"), check=False, timeout=900, env=VARIABLES)


def test_the_gateway_answers_like_the_monolith(split: Split) -> None:
    began = time.monotonic()
    found = calls.ask(GATEWAY, split.key)
    TIMINGS["split: embeddings + chat + transcription calls"] = time.monotonic() - began
    calls.check(found)
    if "monolith" in ANSWERS:  # the monolith's test ran in this session
        monolith = ANSWERS["monolith"]
        np.testing.assert_allclose(found.vectors, monolith.vectors, atol=1e-5)
        assert found.reply == monolith.reply
        assert found.transcript == monolith.transcript


def test_a_killed_engine_is_a_503_for_it_alone_until_it_is_started(split: Split) -> None:
    """A killed container's address vanishes from the network, so the gateway's first call may
    find no answer at all (a 504 within the connect timeout) rather than a refusal; its circuit
    breaker's probe then finds none either, and from there on calls fail at once with 503."""
    victim = split.containers[VICTIM]
    gateway_started = started_at(split.containers["gateway"])
    podman("kill", "--signal", "KILL", victim)
    seen: list[str] = []
    with calls.client(GATEWAY, split.key) as sdk:
        deadline = time.monotonic() + 30
        while True:
            status, code, took = failure(sdk)
            seen.append(f"{status} {code} in {took:.1f} s")
            if status == 503:
                break
            assert (status, code) == (504, "upstream_timeout"), seen
            assert time.monotonic() < deadline, f"no 503 within 30 s: {seen}"
        assert code in ("upstream_unavailable", "upstream_circuit_open"), seen
        status, code, took = failure(sdk)
        seen.append(f"{status} {code} in {took:.1f} s")
        assert (status, code) == (503, "upstream_circuit_open"), seen
        assert took < 1.0, seen
        assert calls.chat(sdk).strip()  # the llm engine still answers
    FIGURES[f"split: {VICTIM} calls after SIGKILL"] = "; ".join(seen)
    readiness = httpx.get(f"{GATEWAY}/ready", timeout=10)
    assert readiness.status_code == 503
    assert readiness.json()["engines"][VICTIM]["ready"] is False
    assert readiness.json()["engines"]["llm"]["ready"] is True
    FIGURES[f"split: {VICTIM} container after SIGKILL"] = inspect(victim)["State"]["Status"]
    restarted = time.monotonic()
    podman("start", victim)
    wait_ready(victim, f"http://{address(victim)}:8000/ready", 600)
    TIMINGS[f"split: {VICTIM} restart (podman start -> its /ready 200)"] = (
        time.monotonic() - restarted
    )
    with calls.client(GATEWAY, split.key) as sdk:
        wait_until(lambda: _embeds(sdk), 120, f"the gateway using {VICTIM} again")
    TIMINGS[f"split: {VICTIM} restart (podman start -> the gateway uses it)"] = (
        time.monotonic() - restarted
    )
    assert started_at(split.containers["gateway"]) == gateway_started, "the gateway restarted"


def failure(sdk: openai.OpenAI) -> tuple[int, str, float]:
    """The status, error code and seconds of an embeddings call that must fail with an error
    in OpenAI's shape (``{"error": {"message", "type", "code"}}``) naming the engine."""
    began = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        calls.embed(sdk)
    took = time.monotonic() - began
    error = caught.value.response.json()["error"]
    assert error["type"] == "service_unavailable", error
    assert VICTIM in error["message"], error
    return caught.value.status_code, str(error["code"]), took


def _embeds(sdk: openai.OpenAI) -> bool:
    try:
        calls.embed(sdk)
    except openai.APIStatusError:
        return False
    return True
