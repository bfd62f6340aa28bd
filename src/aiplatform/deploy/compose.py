"""The Compose files: every engine in one container, or the gateway and one container per engine.

Services publish on 127.0.0.1 only; the image's own HEALTHCHECK reports health. The gateway
does not wait for the engines: it starts at once and answers 503 for an engine not yet up. In
the split file every container waits for PostgreSQL, which keeps the users and keys they share.

The settings a Kubernetes pod reads from the auth Secret come from Compose variables here
(``service-token`` -> ``AIP_SERVICE_TOKEN``): a required one stops ``up`` with a message
while unset; an optional one is plain ``${VAR}``, empty while unset, which the server reads as
unset. (``${VAR:-}`` would say the same to Docker Compose, but podman-compose 1.0 passes it on
verbatim, and the text would become the setting.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiplatform.deploy.profiles import (
    MONOLITH_SECRETS,
    PORT,
    SPLIT_SECRETS,
    EngineProfile,
    SecretSetting,
    engine_profiles,
)

__all__ = ["ComposeFile", "compose_files"]

IMAGE = "aiplatform:latest"
#: Relative to ``deploy/compose``: the repository root and its Dockerfile.
BUILD = {"context": "../..", "dockerfile": "deploy/docker/Dockerfile"}
PUBLISHED = f"127.0.0.1:{PORT}:{PORT}"
DATA_PATH = "/data"

POSTGRES = "postgres"
POSTGRES_IMAGE = "postgres:16-alpine"
#: The database's user and the database itself.
POSTGRES_USER = "aiplatform"
#: Its password goes into the containers' database URL, so it must be URL-safe.
POSTGRES_PASSWORD = "AIP_POSTGRES_PASSWORD"
#: Where the official image keeps its cluster.
POSTGRES_DATA = "/var/lib/postgresql/data"


@dataclass(frozen=True, slots=True)
class ComposeFile:
    """One generated Compose file: its path under ``deploy/compose`` and its content."""

    path: str
    content: dict[str, Any]
    #: Comment lines written under the generated-file header.
    note: tuple[str, ...] = field(default=())


def _url_env(kinds: Iterable[str]) -> dict[str, str]:
    """Engine URLs by Compose service name (each engine's service is named after it)."""
    return {f"AIPLATFORM_ENGINES__{kind.upper()}__URL": f"http://{kind}:{PORT}" for kind in kinds}


def _required(variable: str) -> str:
    return f"${{{variable}:?set {variable}}}"


def _postgres_url() -> str:
    password = _required(POSTGRES_PASSWORD)
    return f"postgresql://{POSTGRES_USER}:{password}@{POSTGRES}:5432/{POSTGRES_USER}"


#: Settings the split file gives from its own services rather than from a variable.
_FROM_SERVICES = {"database-url": _postgres_url()}


def _secret_env(settings: Iterable[SecretSetting], given: Mapping[str, str]) -> dict[str, str]:
    """Each setting from its Compose variable, or from ``given`` (by Secret key)."""
    env: dict[str, str] = {}
    for setting in settings:
        if setting.key in given:
            env[setting.env] = given[setting.key]
        elif setting.optional:
            env[setting.env] = f"${{{setting.variable}}}"
        else:
            env[setting.env] = _required(setting.variable)
    return env


def _variables_note(
    settings: Iterable[SecretSetting], given: Iterable[str], *, required: Iterable[str] = ()
) -> tuple[str, ...]:
    """Comment lines naming the variables a file needs (``required``: more of them)."""
    left = [setting for setting in settings if setting.key not in set(given)]
    needed = [*(s.variable for s in left if not s.optional), *required]
    optional = [s.variable for s in left if s.optional]
    lines = ["Variables, from the environment or an --env-file (docs/deploy.md):"]
    if needed:
        lines.append(f"  required: {', '.join(needed)}")
    if optional:
        lines.append(f"  optional: {', '.join(optional)}")
    return tuple(lines)


def _built() -> dict[str, Any]:
    return {"image": IMAGE, "build": dict(BUILD)}


def monolith() -> ComposeFile:
    """Every engine in one container, its data in a named volume."""
    service: dict[str, Any] = {
        **_built(),
        "ports": [PUBLISHED],
        "environment": _secret_env(MONOLITH_SECRETS, {}),
        "volumes": [f"aiplatform-data:{DATA_PATH}"],
        "restart": "unless-stopped",
    }
    note = (
        "Every engine in one container: docker compose -f deploy/compose/monolith.yaml up",
        *_variables_note(MONOLITH_SECRETS, ()),
        "Model files of your own: add a read-only bind under volumes (a relative path is",
        "relative to this file's folder), e.g.",
        "  - /srv/models:/models:ro",
    )
    return ComposeFile(
        "monolith.yaml",
        {"services": {"aiplatform": service}, "volumes": {"aiplatform-data": {}}},
        note,
    )


def _engine_service(profile: EngineProfile) -> dict[str, Any]:
    # Built once by the gateway service; never pulled (no registry holds this image).
    service: dict[str, Any] = {
        "image": IMAGE,
        "pull_policy": "never",
        "command": ["serve", "--engines", profile.name],
    }
    service["environment"] = {**_url_env(profile.uses), **_split_secret_env()}
    if profile.keeps_data:
        service["volumes"] = [f"{profile.name}-data:{DATA_PATH}"]
    service["depends_on"] = _needs_postgres()
    service["restart"] = "unless-stopped"
    return service


def _split_secret_env() -> dict[str, str]:
    return _secret_env(SPLIT_SECRETS, _FROM_SERVICES)


def _needs_postgres() -> dict[str, Any]:
    return {POSTGRES: {"condition": "service_healthy"}}


def _postgres() -> dict[str, Any]:
    """PostgreSQL for the users, tenants, keys and sessions every container shares."""
    ready = f"pg_isready --host=127.0.0.1 --username={POSTGRES_USER} --dbname={POSTGRES_USER}"
    return {
        "image": POSTGRES_IMAGE,
        "environment": {
            "POSTGRES_USER": POSTGRES_USER,
            "POSTGRES_DB": POSTGRES_USER,
            "POSTGRES_PASSWORD": _required(POSTGRES_PASSWORD),
        },
        "volumes": [f"{POSTGRES}-data:{POSTGRES_DATA}"],
        # over TCP: while the image initialises the cluster its server listens on a socket only
        "healthcheck": {
            "test": ["CMD-SHELL", ready],
            "interval": "5s",
            "timeout": "3s",
            "retries": 24,
        },
        "restart": "unless-stopped",
    }


def split(profiles: Mapping[str, EngineProfile]) -> ComposeFile:
    """The gateway published on localhost, one unpublished service per engine."""
    gateway: dict[str, Any] = {
        **_built(),
        "ports": [PUBLISHED],
        "environment": {**_url_env(profiles), **_split_secret_env()},
        "depends_on": _needs_postgres(),
        "restart": "unless-stopped",
    }
    services = {"gateway": gateway}
    services.update({name: _engine_service(profile) for name, profile in profiles.items()})
    services[POSTGRES] = _postgres()
    volumes: dict[str, Any] = {
        f"{name}-data": {} for name, profile in profiles.items() if profile.keeps_data
    }
    volumes[f"{POSTGRES}-data"] = {}
    note = (
        "The gateway and one container per engine: docker compose -f deploy/compose/split.yaml up",
        "The gateway starts without waiting for the engines and answers 503 for one not yet up;",
        "every container waits for PostgreSQL, which keeps the users and keys they share.",
        *_variables_note(SPLIT_SECRETS, _FROM_SERVICES, required=[POSTGRES_PASSWORD]),
        f"{POSTGRES_PASSWORD} goes into the database URL: letters and digits only.",
    )
    return ComposeFile("split.yaml", {"services": services, "volumes": volumes}, note)


def compose_files(profiles: Mapping[str, EngineProfile] | None = None) -> list[ComposeFile]:
    """Every Compose file, paths relative to ``deploy/compose``."""
    profiles = engine_profiles() if profiles is None else profiles
    return [monolith(), split(profiles)]
