"""What each engine kind needs as a pod: the one table the deployment manifests are made from.

Every registered kind must have a profile here (a test fails otherwise), so a new kind cannot
ship without a deployment. Whether a kind keeps data is read from its settings (a ``data_dir``
field), not declared again; sizes are measured with the shipped models (``bench/deploy.py``,
docs/deploy.md) and rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiplatform.engines.registry import ENGINE_KINDS

__all__ = [
    "AUTH_SECRET",
    "GATEWAY",
    "MONOLITH",
    "MONOLITH_SECRETS",
    "PORT",
    "SPLIT_SECRETS",
    "EngineProfile",
    "Resources",
    "SecretSetting",
    "engine_profiles",
]

#: The port every container serves on.
PORT = 8000


@dataclass(frozen=True, slots=True)
class Resources:
    """Kubernetes requests and limits of one container (CPU in cores, memory in MiB)."""

    cpu: str
    memory_mib: int
    cpu_limit: str
    memory_limit_mib: int


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """One engine kind as a pod."""

    name: str
    summary: str
    #: Keeps what it stores under ``data_dir``: a StatefulSet with a volume, not a Deployment.
    keeps_data: bool
    #: Gains from a GPU; the gpu overlay gives it one and configures it for CUDA.
    accelerated: bool
    resources: Resources
    #: The kinds this kind's in-process engine calls (its pod is configured with their URLs
    #: and their NetworkPolicies admit it).
    uses: tuple[str, ...]


#: The Secret the operator creates with the settings below (never written in a manifest).
AUTH_SECRET = "aiplatform-auth"


@dataclass(frozen=True, slots=True)
class SecretSetting:
    """A setting a container reads from a key of :data:`AUTH_SECRET`."""

    #: The settings variable it fills (``AIPLATFORM_<SECTION>__<KEY>``).
    env: str
    #: The Secret's key holding the value.
    key: str
    #: The container starts without it (the setting keeps its default); a required one keeps
    #: the container from starting until the Secret has it.
    optional: bool = False

    @property
    def variable(self) -> str:
        """The Compose variable that gives it: ``service-token`` -> ``AIP_SERVICE_TOKEN`` (not
        ``AIPLATFORM_``: a server started from a shell that exports it would read it as a
        setting, and refuse it as an unknown one)."""
        return "AIP_" + self.key.upper().replace("-", "_")


_ADMIN_PASSWORD = SecretSetting("AIPLATFORM_AUTH__ADMIN_PASSWORD", "admin-password", optional=True)
#: The bearer token Prometheus presents to ``/metrics`` (whose labels name tenants).
_METRICS_TOKEN = SecretSetting("AIPLATFORM_METRICS__TOKEN", "metrics-token", optional=True)

#: Settings of every container of a split deployment (the gateway replicas and the engine
#: pods). Authentication stays on (the containers bind 0.0.0.0): the gateway presents the
#: service token to its pods, which accept it; users, tenants, keys and sessions live in one
#: PostgreSQL database that every gateway replica and pod shares, so a key works on any of them
#: and access tokens signed with the one JWT secret are accepted everywhere. Rate limits are
#: shared through Redis when a URL is given.
SPLIT_SECRETS = (
    SecretSetting("AIPLATFORM_AUTH__SERVICE_TOKEN", "service-token"),
    SecretSetting("AIPLATFORM_AUTH__JWT_SECRET", "jwt-secret"),
    SecretSetting("AIPLATFORM_AUTH__DATABASE_URL", "database-url"),
    _ADMIN_PASSWORD,
    SecretSetting("AIPLATFORM_LIMITS__REDIS_URL", "redis-url", optional=True),
    _METRICS_TOKEN,
)

#: Settings of the monolith: the first admin's password and the metrics token at most. It keeps
#: users and keys in its own store on its volume, and its signing key there too.
MONOLITH_SECRETS = (_ADMIN_PASSWORD, _METRICS_TOKEN)

#: The gateway: every engine forwarded, nothing loaded (measured: 82 MiB).
GATEWAY = Resources(cpu="250m", memory_mib=128, cpu_limit="2", memory_limit_mib=512)

#: Every engine in one process (measured: 2.1 GiB after a request of each kind; the shared
#: libraries are loaded once, so it is less than the sum of the pods).
MONOLITH = Resources(cpu="2", memory_mib=3072, cpu_limit="4", memory_limit_mib=8192)

#: Kinds that gain from a GPU.
_ACCELERATED = frozenset({"llm", "asr"})

#: Requests and limits per kind: the request is the resident size measured after a request on
#: the shipped model (``bench/deploy.py``, docs/deploy.md), rounded up; the limit leaves room for
#: what grows with use (LLM slots and context, RAG indexes, analytics tables, uploads).
_RESOURCES: dict[str, Resources] = {
    "embeddings": Resources(cpu="500m", memory_mib=768, cpu_limit="2", memory_limit_mib=1536),
    "llm": Resources(cpu="1", memory_mib=1024, cpu_limit="4", memory_limit_mib=3072),
    "asr": Resources(cpu="1", memory_mib=512, cpu_limit="4", memory_limit_mib=2048),
    "speakers": Resources(cpu="500m", memory_mib=640, cpu_limit="2", memory_limit_mib=1536),
    "diarization": Resources(cpu="500m", memory_mib=640, cpu_limit="2", memory_limit_mib=1536),
    "emotion": Resources(cpu="250m", memory_mib=256, cpu_limit="2", memory_limit_mib=1024),
    "rag": Resources(cpu="500m", memory_mib=768, cpu_limit="2", memory_limit_mib=2048),
    "rerank": Resources(cpu="500m", memory_mib=768, cpu_limit="2", memory_limit_mib=1536),
    "datasets": Resources(cpu="250m", memory_mib=256, cpu_limit="2", memory_limit_mib=2048),
    "analytics": Resources(cpu="1", memory_mib=512, cpu_limit="2", memory_limit_mib=4096),
}


def engine_profiles() -> dict[str, EngineProfile]:
    """Every registered kind's profile, in registry order; a kind without one is an error."""
    missing = [name for name in ENGINE_KINDS if name not in _RESOURCES]
    if missing:
        raise LookupError(f"engine kind(s) without a deployment profile: {', '.join(missing)}")
    return {
        name: EngineProfile(
            name=name,
            summary=kind.summary,
            keeps_data="data_dir" in kind.settings_type.__struct_fields__,
            accelerated=name in _ACCELERATED,
            resources=_RESOURCES[name],
            uses=(*kind.uses, *kind.optional_uses),
        )
        for name, kind in ENGINE_KINDS.items()
    }
