"""Podman, driven by the container tests, with nothing from an image registry: a Debian bookworm
base made by debootstrap (cached under ``.container/``) and imported, the image built on it from
``deploy/docker/Dockerfile``, containers started and waited for. Each step's duration goes into
:data:`TIMINGS`, which the session prints at its end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
#: What the container tests keep between runs: the base's tarball, podman's settings.
BUILD_DIR = REPO / ".container"
BASE_IMAGE = "localhost/aiplatform-base:bookworm"
IMAGE = "localhost/aiplatform:latest"
#: What stands in for the compose file's postgres:16-alpine (:func:`postgres_image`).
POSTGRES_IMAGE = "localhost/aiplatform-test-postgres:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
TOOLS = ("podman", "runc", "debootstrap", "podman-compose")

#: Seconds per step, in the order the steps ran.
TIMINGS: dict[str, float] = {}
#: Other measured figures, already formatted.
FIGURES: dict[str, str] = {}

#: runc; open-file and process limits that runc can set inside this kind of virtual machine;
#: netavark, whose aardvark-dns gives compose services their names on the network.
_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
"""


@contextmanager
def timed(step: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[step] = time.monotonic() - began


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def environment() -> dict[str, str]:
    """The environment every command runs in: podman reads this tree's containers.conf."""
    BUILD_DIR.mkdir(exist_ok=True)
    conf = BUILD_DIR / "containers.conf"
    if not conf.is_file() or conf.read_text() != _CONTAINERS_CONF:
        conf.write_text(_CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> str:
    """A command's stdout; its exit status and output in the error when it fails. ``env`` adds
    to :func:`environment`."""
    done = subprocess.run(
        list(args),
        env={**environment(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"
        )
    return done.stdout


def podman(*args: str, check: bool = True, timeout: float = 600) -> str:
    return run(["podman", *args], check=check, timeout=timeout)


def image_exists(image: str) -> bool:
    done = subprocess.run(["podman", "image", "exists", image], env=environment(), check=False)
    return done.returncode == 0


#: What python:3.11-slim-bookworm adds to Debian for its Python: certificates, and the libraries
#: the standard library's extension modules link to.
_PYTHON_RUNTIME = (
    "ca-certificates,netbase,tzdata,libssl3,libffi8,libsqlite3-0,libuuid1,libbz2-1.0,liblzma5,"
    "zlib1g,libreadline8,libncursesw6,libexpat1,libtirpc3,libcrypt1"
)


def base_image() -> str:
    """A local stand-in for python:3.11-slim-bookworm (no registry is reachable): Debian
    bookworm by debootstrap, with the Python running these tests in /usr/local. Debian's own
    python3 (3.11.2) cannot take the lock (soupsieve 4.1.3 needs 3.11.5). Made once into a
    cached tarball, imported when podman has no such image."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    tarball = BUILD_DIR / f"bookworm-python{python}.tar"
    if not tarball.is_file():
        root = BUILD_DIR / "rootfs"
        shutil.rmtree(root, ignore_errors=True)
        with timed("debootstrap --variant=minbase bookworm"):
            run(
                ["debootstrap", "--variant=minbase", f"--include={_PYTHON_RUNTIME}", "bookworm",
                 str(root), DEBIAN_MIRROR],
                timeout=1800,
            )  # fmt: skip
        with timed(f"Python {python} into the base, tar"):
            _install_python(root / "usr" / "local")
            run(["chroot", str(root), "ldconfig"])
            run(["tar", "-C", str(root), "-cf", f"{tarball}.part", "."])
            Path(f"{tarball}.part").rename(tarball)
        shutil.rmtree(root)
    image = f"{BASE_IMAGE}-python{python}"
    if not image_exists(image):
        with timed("podman import (base)"):
            podman("import", str(tarball), image)
    return image


def _install_python(prefix: Path) -> None:
    """This interpreter's installation (no site-packages, tests or tkinter) under ``prefix``;
    ``ldconfig`` then finds its libpython there."""
    home = Path(sys.base_prefix)
    if home == Path("/usr"):
        raise RuntimeError("the tests' Python is the system's: run them with a Python of its own")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    skip = shutil.ignore_patterns(
        "site-packages", "test", "tests", "idlelib", "tkinter", "__pycache__", "*tkinter*"
    )
    shutil.copytree(home / "lib" / version, prefix / "lib" / version, symlinks=True, ignore=skip)
    (prefix / "lib" / version / "site-packages").mkdir()
    shutil.copytree(home / "include", prefix / "include", symlinks=True, dirs_exist_ok=True)
    for library in (home / "lib").glob("libpython3*.so*"):
        shutil.copy2(library, prefix / "lib", follow_symlinks=False)
    shutil.copy2(home / "bin" / version, prefix / "bin" / version)
    for alias in ("python3", "python"):
        (prefix / "bin" / alias).symlink_to(version)


@dataclass(frozen=True)
class PipSources:
    """This machine's pip configuration, carried into the image build: its local wheel folders
    and indexes (mounted read-only), its CA bundle, its wheel cache (the llama-cpp-python wheel
    built once), and the torch wheel the Makefile's pin names when one lies on disk."""

    mounts: list[str]
    torch_wheel: str | None


def pip_sources() -> PipSources:
    settings = _pip_settings()
    lines = ["[global]"]
    mounts: list[str] = []
    folders = settings.get("find-links", "").split()
    if folders:
        lines.append(f"find-links = {' '.join(folders)}")
    indexes = settings.get("extra-index-url", "").split()
    if indexes:
        lines.append(f"extra-index-url = {' '.join(indexes)}")
    # A local index's pages link to files beside its simple/ folder: mount its parent.
    local = [Path(folder) for folder in folders if folder.startswith("/")]
    local += [
        Path(url.removeprefix("file://")).parent for url in indexes if url.startswith("file:///")
    ]
    mounts += [f"{folder}:{folder}:ro" for folder in local]
    cert = settings.get("cert") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(cert).is_file():
        mounts.append(f"{cert}:/opt/host-ca.crt:ro")
        lines.append("cert = /opt/host-ca.crt")
    cache = Path(run([sys.executable, "-m", "pip", "cache", "dir"]).strip())
    if cache.is_dir():
        mounts.append(f"{cache}:/root/.cache/pip:O")
    config = BUILD_DIR / "pip.conf"
    config.write_text("\n".join(lines) + "\n")
    mounts.append(f"{config}:/etc/pip.conf:ro")
    return PipSources(sorted(set(mounts)), _torch_wheel(folders))


def _pip_settings() -> dict[str, str]:
    """``pip config list`` as ``{key: value}`` (environment over files, as pip reads them)."""
    found: dict[str, str] = {}
    listing = run([sys.executable, "-m", "pip", "config", "list"])
    for line in sorted(listing.splitlines(), key=lambda line: line.startswith(":env:")):
        key, _, value = line.partition("=")
        found[key.rpartition(".")[2]] = value.strip().strip("'\"")
    return found


def _torch_wheel(folders: list[str]) -> str | None:
    """The CPU torch wheel for the Makefile's pin in one of pip's local folders, if any."""
    pin = re.search(r"^TORCH \?= torch==(\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    if pin is None:
        return None
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in folders:
        wheels = sorted(Path(folder).glob(f"torch-{pin.group(1)}+cpu-{tag}-{tag}-*x86_64.whl"))
        if wheels:
            return str(wheels[0])
    return None


def build_image(base: str, version: str) -> str:
    """The image, built on ``base`` with this machine's pip sources; its size is recorded."""
    sources = pip_sources()
    args = [
        "build",
        "--format", "docker",  # keeps HEALTHCHECK (the OCI format has none)
        "--network", "host",
        "--file", "deploy/docker/Dockerfile",
        "--tag", IMAGE,
        "--tag", f"localhost/aiplatform:{version}",
        "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"VERSION={version}",
    ]  # fmt: skip
    if sources.torch_wheel:
        args += [
            "--build-arg",
            f"TORCH_WHEEL={sources.torch_wheel}",
            "--build-arg",
            "TORCH_INDEX_URL=",
        ]
    for mount in sources.mounts:
        args += ["--volume", mount]
    log = BUILD_DIR / "build.log"
    with timed("podman build (image)"), log.open("w") as out:
        done = subprocess.run(
            ["podman", *args, str(REPO)], env=environment(), stdout=out, stderr=subprocess.STDOUT,
            timeout=7200, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"podman build exited {done.returncode}; its output is in {log}")
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).strip())
    FIGURES["image size"] = f"{size / 1e9:.2f} GB ({size:,} bytes)"
    return IMAGE


#: Debian's PostgreSQL on the local base, as the official image is configured: its server on
#: every address, password logins.
_POSTGRES_CONTAINERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \\
 && rm -rf /var/lib/apt/lists/* \\
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \\
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
"""

#: What the official image's entrypoint does with the variables the compose file sets: at the
#: first start a cluster whose superuser is POSTGRES_USER with POSTGRES_PASSWORD, and the
#: database POSTGRES_DB; then the server.
_POSTGRES_ENTRYPOINT = """\
#!/bin/sh
set -eu
PATH="$(echo /usr/lib/postgresql/*/bin):$PATH"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\\n' "${POSTGRES_PASSWORD:?}" > /tmp/password
    initdb --username="$user" --pwfile=/tmp/password --auth=scram-sha-256 --pgdata="$PGDATA"
    rm /tmp/password
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        echo "CREATE DATABASE \\"$database\\" OWNER \\"$user\\";" \\
            | postgres --single -D "$PGDATA" postgres
    fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
"""


def postgres_image(base: str) -> str:
    """A stand-in for ``postgres:16-alpine``, which no reachable registry holds: Debian's
    PostgreSQL on ``base``, taking the official image's POSTGRES_* variables."""
    context = BUILD_DIR / "postgres"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Containerfile").write_text(_POSTGRES_CONTAINERFILE)
    entrypoint = context / "entrypoint.sh"
    entrypoint.write_text(_POSTGRES_ENTRYPOINT)
    entrypoint.chmod(0o755)
    with timed("podman build (postgres stand-in)"):
        podman(
            "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
            "--tag", POSTGRES_IMAGE, "--file", str(context / "Containerfile"), str(context),
            timeout=1800,
        )  # fmt: skip
    return POSTGRES_IMAGE


def inspect(container: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(podman("container", "inspect", container))
    return found[0]


def started_at(container: str) -> float:
    """When the container's process started, as a ``time.time()`` value."""
    stamp = inspect(container)["State"]["StartedAt"]
    # RFC 3339 with nanoseconds: keep microseconds, which fromisoformat reads.
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00"))
    return datetime.fromisoformat(stamp).timestamp()


def address(container: str) -> str:
    """The container's address on its (first) network, which this host routes to."""
    networks = inspect(container)["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.5)


def wait_ready(container: str, url: str, timeout_s: float) -> None:
    """Until ``url`` answers 200; at once, with the container's log, when it stops instead."""
    deadline = time.monotonic() + timeout_s
    while not answers(url):
        state = inspect(container)["State"]
        if not state["Running"] or time.monotonic() > deadline:
            raise AssertionError(
                f"{container} is not ready at {url} ({state['Status']})\n{logs(container)}"
            )
        time.sleep(0.5)


def api_key(container: str) -> str:
    """A new API key, made the way an operator makes one in a headless deployment."""
    return podman("exec", container, "aiplatform", "admin", "create-key", "container-test").strip()


def logs(container: str) -> str:
    return podman("logs", "--tail", "60", container, check=False)
