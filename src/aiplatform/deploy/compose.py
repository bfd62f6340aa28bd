"""The Compose files: every engine in one container, or the gateway and one container per engine.

Services publish on 127.0.0.1 only; the image's own HEALTHCHECK reports health. The gateway
does not wait for the engines: it starts at once and answers 503 for an engine not yet up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiplatform.deploy.profiles import PORT, SPLIT_ENV, EngineProfile, engine_profiles

__all__ = ["ComposeFile", "compose_files"]

IMAGE = "aiplatform:latest"
#: Relative to ``deploy/compose``: the repository root and its Dockerfile.
BUILD = {"context": "../..", "dockerfile": "deploy/docker/Dockerfile"}
PUBLISHED = f"127.0.0.1:{PORT}:{PORT}"
DATA_PATH = "/data"


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


def _built() -> dict[str, Any]:
    return {"image": IMAGE, "build": dict(BUILD)}


def monolith() -> ComposeFile:
    """Every engine in one container, its data in a named volume."""
    service: dict[str, Any] = {
        **_built(),
        "ports": [PUBLISHED],
        "volumes": [f"aiplatform-data:{DATA_PATH}"],
        "restart": "unless-stopped",
    }
    note = (
        "Every engine in one container: docker compose -f deploy/compose/monolith.yaml up",
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
    service["environment"] = {**_url_env(profile.uses), **SPLIT_ENV}
    if profile.keeps_data:
        service["volumes"] = [f"{profile.name}-data:{DATA_PATH}"]
    service["restart"] = "unless-stopped"
    return service


def split(profiles: Mapping[str, EngineProfile]) -> ComposeFile:
    """The gateway published on localhost, one unpublished service per engine."""
    gateway: dict[str, Any] = {
        **_built(),
        "ports": [PUBLISHED],
        "environment": {**_url_env(profiles), **SPLIT_ENV},
        "restart": "unless-stopped",
    }
    services = {"gateway": gateway}
    services.update({name: _engine_service(profile) for name, profile in profiles.items()})
    volumes: dict[str, Any] = {
        f"{name}-data": {} for name, profile in profiles.items() if profile.keeps_data
    }
    note = (
        "The gateway and one container per engine: docker compose -f deploy/compose/split.yaml up",
        "The gateway starts without waiting for the engines and answers 503 for one not yet up.",
    )
    return ComposeFile("split.yaml", {"services": services, "volumes": volumes}, note)


def compose_files(profiles: Mapping[str, EngineProfile] | None = None) -> list[ComposeFile]:
    """Every Compose file, paths relative to ``deploy/compose``."""
    profiles = engine_profiles() if profiles is None else profiles
    return [monolith(), split(profiles)]
