"""The kustomize tree and the Compose files: up to date, valid Kubernetes, one pod per engine.

The overlays are built with ``kubectl kustomize`` and every object is validated against the
Kubernetes 1.32 schemas, so what is checked here is what a cluster would be given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiplatform import __version__
from aiplatform.cli import main
from aiplatform.deploy import profiles as profiles_module
from aiplatform.deploy.kubernetes import SCRAPER_LABELS
from aiplatform.deploy.profiles import (
    AUTH_SECRET,
    MONOLITH,
    MONOLITH_SECRETS,
    SPLIT_SECRETS,
    engine_profiles,
)
from aiplatform.deploy.render import HEADER, generated_files, render, rendered
from aiplatform.engines.rag import RAG as RAG_KIND
from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.settings import load_settings

REPO = Path(__file__).resolve().parents[3]
OVERLAYS = ("monolith", "microservices", "gpu")
WORKLOADS = {"Deployment", "StatefulSet"}
COMPONENT = "app.kubernetes.io/component"
SECRET_NAME = re.compile("KEY|TOKEN|PASSWORD|SECRET", re.IGNORECASE)

#: What every container of a split deployment reads from the auth Secret: variable -> (key,
#: optional). The gateway and its pods share the service token, the signing key and the
#: PostgreSQL database of users and keys; Redis and the first admin's password are optional.
SPLIT_AUTH = {
    "AIPLATFORM_AUTH__SERVICE_TOKEN": ("service-token", False),
    "AIPLATFORM_AUTH__JWT_SECRET": ("jwt-secret", False),
    "AIPLATFORM_AUTH__DATABASE_URL": ("database-url", False),
    "AIPLATFORM_AUTH__ADMIN_PASSWORD": ("admin-password", True),
    "AIPLATFORM_LIMITS__REDIS_URL": ("redis-url", True),
    "AIPLATFORM_METRICS__TOKEN": ("metrics-token", True),
}
#: The monolith keeps its own store on its volume: the first admin's password and the metrics
#: token at most.
MONOLITH_AUTH = {
    "AIPLATFORM_AUTH__ADMIN_PASSWORD": ("admin-password", True),
    "AIPLATFORM_METRICS__TOKEN": ("metrics-token", True),
}
#: A value for each Secret key that the server's settings accept.
SECRET_VALUES = {
    "service-token": "t" * 40,
    "jwt-secret": "j" * 40,
    "database-url": "postgresql://aiplatform:pw@postgres:5432/aiplatform",
    "admin-password": "a-long-enough-admin-password",
    "redis-url": "redis://redis:6379/0",
    "metrics-token": "m" * 40,
}

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy")
    render(out)
    return out


def kustomize(directory: Path) -> list[Doc]:
    """The objects ``kubectl kustomize`` builds from ``directory``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: the kustomize overlays cannot be built and checked")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def built(deploy_dir: Path) -> dict[str, list[Doc]]:
    """Each overlay as ``kubectl kustomize`` builds it."""
    return {overlay: kustomize(deploy_dir / "k8s" / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def split(deploy_dir: Path) -> Doc:
    content: Doc = yaml.safe_load((deploy_dir / "compose" / "split.yaml").read_text())
    return content


def _find(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def _get(docs: list[Doc], kind: str, name: str) -> Doc:
    doc = _find(docs, kind, name)
    assert doc is not None, f"no {kind} {name}"
    return doc


def _workload(docs: list[Doc], name: str) -> Doc:
    found = [d for d in docs if d["kind"] in WORKLOADS and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} workloads named {name}"
    return found[0]


def _pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def _container(docs: list[Doc], name: str) -> Doc:
    containers: list[Doc] = _workload(docs, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: Doc) -> dict[str, str]:
    """The variables a container is given as values (not from a Secret)."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def _secret_refs(container: Doc) -> dict[str, tuple[str, bool]]:
    """Variable -> (key, optional) of each variable read from the auth Secret; any other
    source of a variable fails."""
    refs: dict[str, tuple[str, bool]] = {}
    for item in container.get("env", []):
        if "value" in item:
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == AUTH_SECRET, item
        refs[item["name"]] = (ref["key"], ref.get("optional", False))
    return refs


def _urls(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.endswith("__URL")}


# --- the committed files ----------------------------------------------------------------------


def test_committed_files_are_rendered_from_the_registry(deploy_dir: Path) -> None:
    fresh = {path.relative_to(deploy_dir).as_posix() for path in generated_files(deploy_dir)}
    committed = {
        path.relative_to(REPO / "deploy").as_posix() for path in generated_files(REPO / "deploy")
    }
    hint = "the deploy files are out of date: run `aiplatform deploy render`"
    assert committed == fresh, hint
    for relative in sorted(fresh):
        assert (REPO / "deploy" / relative).read_text() == (deploy_dir / relative).read_text(), (
            f"deploy/{relative}: {hint}"
        )


def test_every_file_starts_with_the_header(deploy_dir: Path) -> None:
    texts = rendered()
    assert texts
    for relative, text in texts.items():
        assert text.startswith(HEADER + "\n"), relative
        assert "&id0" not in text, f"{relative} holds YAML anchors"


def test_render_replaces_stale_files_and_keeps_others(tmp_path: Path) -> None:
    stale = tmp_path / "k8s" / "overlays" / "microservices" / "engine-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text(HEADER + "\nkind: Service\n")
    readme = tmp_path / "k8s" / "README.md"
    kept = tmp_path / "compose" / "override.yaml"
    kept.parent.mkdir(parents=True)
    readme.write_text("# docs\n")
    kept.write_text("services: {}\n")
    written = render(tmp_path)
    assert not stale.exists()
    assert readme.exists()
    assert kept.exists()
    assert sorted(written) == sorted(generated_files(tmp_path))


def test_cli_renders_and_prints_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "render", "--out", str(tmp_path / "deploy")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(path) for path in render(tmp_path / "deploy")]
    assert str(tmp_path / "deploy" / "compose" / "split.yaml") in printed


def test_a_kind_without_a_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {**ENGINE_KINDS, "teleport": ENGINE_KINDS["embeddings"]}
    monkeypatch.setattr(profiles_module, "ENGINE_KINDS", kinds)
    with pytest.raises(LookupError, match="teleport"):
        engine_profiles()
    with pytest.raises(LookupError, match="teleport"):
        rendered()


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_validate_against_kubernetes_1_32(
    built: dict[str, list[Doc]], overlay: str
) -> None:
    docs = built[overlay]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)


@pytest.mark.parametrize("overlay", ["microservices", "gpu"])
def test_every_engine_has_its_pod_service_and_policy(
    built: dict[str, list[Doc]], overlay: str
) -> None:
    docs = built[overlay]
    for name, profile in engine_profiles().items():
        resource = f"aiplatform-{name}"
        workload = _workload(docs, resource)
        assert workload["kind"] == ("StatefulSet" if profile.keeps_data else "Deployment"), name
        assert _container(docs, resource)["args"] == ["serve", "--engines", name]
        assert _get(docs, "Service", resource)["spec"]["selector"][COMPONENT] == name
        assert _get(docs, "NetworkPolicy", resource)["spec"]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "aiplatform",
            COMPONENT: name,
        }
        autoscaler = _find(docs, "HorizontalPodAutoscaler", resource)
        if profile.keeps_data:
            assert workload["spec"]["replicas"] == 1
            assert autoscaler is None, f"{name} keeps data in one writer: no autoscaling"
            claims = workload["spec"]["volumeClaimTemplates"]
            assert [claim["metadata"]["name"] for claim in claims] == ["data"]
            assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
            mounts = _container(docs, resource)["volumeMounts"]
            assert {"name": "data", "mountPath": "/data"} in mounts
        else:
            assert autoscaler is not None, name
            assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (1, 4)
            assert autoscaler["spec"]["scaleTargetRef"]["name"] == resource
            assert "replicas" not in workload["spec"], f"{name}: its autoscaler owns the count"


def test_gateway_forwards_every_kind_and_stays_ready_without_them(
    built: dict[str, list[Doc]],
) -> None:
    docs = built["microservices"]
    gateway = _container(docs, "aiplatform")
    assert _workload(docs, "aiplatform")["kind"] == "Deployment"
    assert gateway["args"] == ["serve"]
    assert _urls(_env(gateway)) == {
        f"AIPLATFORM_ENGINES__{kind.upper()}__URL": f"http://aiplatform-{kind}:8000"
        for kind in ENGINE_KINDS
    }
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health"
    autoscaler = _get(docs, "HorizontalPodAutoscaler", "aiplatform")["spec"]
    assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (2, 10)
    assert _get(docs, "PodDisruptionBudget", "aiplatform")["spec"]["minAvailable"] == 1


def test_engines_are_given_the_urls_of_the_kinds_they_use(built: dict[str, list[Doc]]) -> None:
    docs = built["microservices"]
    for name, profile in engine_profiles().items():
        expected = {
            f"AIPLATFORM_ENGINES__{kind.upper()}__URL": f"http://aiplatform-{kind}:8000"
            for kind in profile.uses
        }
        assert _urls(_env(_container(docs, f"aiplatform-{name}"))) == expected, name
    assert engine_profiles()["rag"].uses == ("embeddings",)


def _admitted(policy: Doc) -> set[str]:
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    scraper, source = rule["from"]
    assert scraper == {"namespaceSelector": {}, "podSelector": {"matchLabels": SCRAPER_LABELS}}
    (expression,) = source["podSelector"]["matchExpressions"]
    assert (expression["key"], expression["operator"]) == (COMPONENT, "In")
    return set(expression["values"])


def test_network_policies_admit_the_gateway_and_the_users_of_a_kind(
    built: dict[str, list[Doc]],
) -> None:
    docs = built["microservices"]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    # analytics calls embeddings, RAG and the LLM when they are there (faiss_retrieval,
    # rag_evaluation)
    assert _admitted(policies["aiplatform-embeddings"]) == {"gateway", "rag", "rerank", "analytics"}
    assert _admitted(policies["aiplatform-datasets"]) == {"gateway", "analytics"}
    assert _admitted(policies["aiplatform-llm"]) == {"gateway", "analytics"}
    (gateway_rule,) = policies["aiplatform"]["spec"]["ingress"]
    assert "from" not in gateway_rule, "the ingress controller reaches the gateway from anywhere"
    assert all("egress" not in policy["spec"] for policy in policies.values())


def test_monolith_is_one_pod_with_every_engine(built: dict[str, list[Doc]]) -> None:
    docs = built["monolith"]
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert [(d["kind"], d["metadata"]["name"]) for d in workloads] == [
        ("StatefulSet", "aiplatform")
    ]
    container = _container(docs, "aiplatform")
    assert container["args"] == ["serve"]
    assert _urls(_env(container)) == {}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["requests"]["memory"] == f"{MONOLITH.memory_mib}Mi"
    assert container["resources"]["limits"]["memory"] == f"{MONOLITH.memory_limit_mib}Mi"
    assert {d["kind"] for d in docs} == {"StatefulSet", "Service", "Ingress", "NetworkPolicy"}
    assert all(d["metadata"]["labels"][COMPONENT] == "gateway" for d in docs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_bounded_probed_and_unprivileged(
    built: dict[str, list[Doc]], overlay: str
) -> None:
    pods = list(_pod_specs(built[overlay]))
    assert pods
    for name, pod in pods:
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["fsGroup"] == 10001, name
        for container in pod["containers"]:
            security = {**pod["securityContext"], **container.get("securityContext", {})}
            assert security["runAsNonRoot"] is True, name
            assert security["runAsUser"] == 10001, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] == "http", (name, probe)
            assert container["startupProbe"]["failureThreshold"] == 60, name
            assert container["ports"] == [
                {"name": "http", "containerPort": 8000, "protocol": "TCP"}
            ], name
            assert {"secretRef": {"name": "aiplatform-secrets", "optional": True}} in container[
                "envFrom"
            ], name


def _secret_like_literals(env: dict[str, str]) -> list[str]:
    return [name for name, value in env.items() if SECRET_NAME.search(name) and value]


#: A value that is one Compose variable and nothing else: ``${NAME}`` or ``${NAME:?message}``.
_ONE_VARIABLE = re.compile(r"\$\{\w+(:\?[^}]*)?\}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_written_in_a_manifest(built: dict[str, list[Doc]], overlay: str) -> None:
    docs = built[overlay]
    assert not [d for d in docs if d["kind"] == "Secret"]
    for name, pod in _pod_specs(docs):
        for container in pod["containers"]:
            assert not _secret_like_literals(_env(container)), name


def test_no_secret_is_written_in_a_compose_file(deploy_dir: Path) -> None:
    for path in (deploy_dir / "compose").glob("*.yaml"):
        content = yaml.safe_load(path.read_text())
        assert "secrets" not in content, path.name
        for name, service in content["services"].items():
            env = service.get("environment", {})
            assert isinstance(env, dict), name
            for variable in _secret_like_literals(env):
                assert _ONE_VARIABLE.fullmatch(env[variable]), (path.name, name, variable)
            url = env.get("AIPLATFORM_AUTH__DATABASE_URL")
            if url is not None:
                password = re.fullmatch(r"postgresql://\w+:(.+)@[\w.]+:\d+/\w+", url)
                assert password is not None, (name, url)
                assert _ONE_VARIABLE.fullmatch(password[1]), (name, url)


def test_gpu_goes_to_the_accelerated_engines_only(built: dict[str, list[Doc]]) -> None:
    docs = built["gpu"]
    profiles = engine_profiles()
    assert {name for name, p in profiles.items() if p.accelerated} == {"llm", "asr"}
    for name, pod in _pod_specs(docs):
        component = _workload(docs, name)["metadata"]["labels"][COMPONENT]
        (container,) = pod["containers"]
        resources = container["resources"]
        if component in ("llm", "asr"):
            assert str(resources["requests"]["nvidia.com/gpu"]) == "1", name
            assert str(resources["limits"]["nvidia.com/gpu"]) == "1", name
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
            assert pod["tolerations"] == [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ], name
            assert container["image"] == f"aiplatform:{__version__}-cuda", name
        else:
            assert "nvidia.com/gpu" not in resources["requests"], name
            assert "nvidia.com/gpu" not in resources["limits"], name
            assert "nodeSelector" not in pod, name
            assert "tolerations" not in pod, name
            assert container["image"] == f"aiplatform:{__version__}", name
            assert not any("CUDA" in v or v == "cuda" for v in _env(container).values()), name
    asr = _env(_container(docs, "aiplatform-asr"))
    assert asr["AIPLATFORM_ENGINES__ASR__DEVICE"] == "cuda"
    assert asr["AIPLATFORM_ENGINES__ASR__COMPUTE_TYPE"] == "float16"
    models = json.loads(_env(_container(docs, "aiplatform-llm"))["AIPLATFORM_ENGINES__LLM__MODELS"])
    assert models == [
        {
            "name": "smollm2-135m-instruct",
            "path": "shipped:smollm2-135m-instruct",
            "gpu_layers": -1,
        }
    ]
    # The patches add to the microservices pods; nothing else of theirs changes.
    cpu = _container(built["microservices"], "aiplatform-llm")
    assert (
        _container(docs, "aiplatform-llm")["resources"]["limits"]["memory"]
        == (cpu["resources"]["limits"]["memory"])
    )
    assert _env(_container(docs, "aiplatform-llm")).keys() >= _env(cpu).keys()


def test_ingress_routes_to_the_gateway_service(built: dict[str, list[Doc]]) -> None:
    for overlay in OVERLAYS:
        (rule,) = _get(built[overlay], "Ingress", "aiplatform")["spec"]["rules"]
        assert rule["host"] == "aiplatform.local"
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/", "Prefix")
        assert path["backend"]["service"] == {"name": "aiplatform", "port": {"name": "http"}}


# --- Compose ----------------------------------------------------------------------------------


def test_split_compose_has_the_gateway_and_one_service_per_kind(split: Doc) -> None:
    services = split["services"]
    assert set(services) == {"gateway", *ENGINE_KINDS, "postgres"}
    gateway = services["gateway"]
    assert gateway["ports"] == ["127.0.0.1:8000:8000"]
    assert gateway["build"] == {"context": "../..", "dockerfile": "deploy/docker/Dockerfile"}
    assert _urls(gateway["environment"]) == {
        f"AIPLATFORM_ENGINES__{kind.upper()}__URL": f"http://{kind}:8000" for kind in ENGINE_KINDS
    }
    for name, profile in engine_profiles().items():
        service = services[name]
        assert service["image"] == gateway["image"], name
        assert service["command"] == ["serve", "--engines", name], name
        assert "ports" not in service, f"{name} is reached through the gateway only"
        assert _urls(service.get("environment", {})) == {
            f"AIPLATFORM_ENGINES__{kind.upper()}__URL": f"http://{kind}:8000"
            for kind in profile.uses
        }, name
        assert (service.get("volumes") == [f"{name}-data:/data"]) is profile.keeps_data, name
    keeping = {f"{name}-data" for name, p in engine_profiles().items() if p.keeps_data}
    assert set(split["volumes"]) == keeping | {"postgres-data"}
    for name, service in services.items():
        # the gateway must start without the engines (they wait for the database only)
        assert set(service.get("depends_on", {})) <= {"postgres"}, name
        assert service["restart"] == "unless-stopped", name


def test_monolith_compose_is_one_service_on_localhost(deploy_dir: Path) -> None:
    content = yaml.safe_load((deploy_dir / "compose" / "monolith.yaml").read_text())
    (service,) = content["services"].values()
    assert list(content["services"]) == ["aiplatform"]
    assert service["image"] == "aiplatform:latest"
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    assert service["volumes"] == ["aiplatform-data:/data"]
    assert "aiplatform-data" in content["volumes"]
    assert "command" not in service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_reads_its_auth_settings_from_the_secret(
    built: dict[str, list[Doc]], overlay: str
) -> None:
    expected = MONOLITH_AUTH if overlay == "monolith" else SPLIT_AUTH
    pods = list(_pod_specs(built[overlay]))
    assert len(pods) == (1 if overlay == "monolith" else 1 + len(ENGINE_KINDS))
    for name, pod in pods:
        (container,) = pod["containers"]
        assert _secret_refs(container) == expected, name
        # authentication is left on: nothing turns it off or sets it another way
        assert not [k for k in _env(container) if k.startswith("AIPLATFORM_AUTH__")], name
        values = {**_env(container)}
        values.update({env: SECRET_VALUES[key] for env, (key, _) in expected.items()})
        settings = load_settings(env=values)
        assert settings.auth.enabled is None, name  # on: the containers bind 0.0.0.0
        if overlay != "monolith":
            assert settings.auth.service_token == SECRET_VALUES["service-token"], name
            assert settings.limits.redis_url == SECRET_VALUES["redis-url"], name


def test_the_profiles_describe_the_secret_the_manifests_read() -> None:
    assert AUTH_SECRET == "aiplatform-auth"
    assert {s.env: (s.key, s.optional) for s in SPLIT_SECRETS} == SPLIT_AUTH
    assert {s.env: (s.key, s.optional) for s in MONOLITH_SECRETS} == MONOLITH_AUTH
    assert [s.variable for s in SPLIT_SECRETS] == [
        "AIP_SERVICE_TOKEN",
        "AIP_JWT_SECRET",
        "AIP_DATABASE_URL",
        "AIP_ADMIN_PASSWORD",
        "AIP_REDIS_URL",
        "AIP_METRICS_TOKEN",
    ]


def test_the_microservices_kustomization_names_the_secret_it_needs(deploy_dir: Path) -> None:
    text = (deploy_dir / "k8s" / "overlays" / "microservices" / "kustomization.yaml").read_text()
    assert "aiplatform-auth first, with the keys service-token, jwt-secret, database-url" in text


# --- Compose: the variables ------------------------------------------------------------------

#: ``${NAME}``, ``${NAME:?message}`` and ``${NAME:-default}``, as Compose reads them.
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[?-])(?P<arg>[^}]*))?\}")
#: What a split file is given in the tests below.
COMPOSE_VARIABLES = {
    "AIP_SERVICE_TOKEN": "s" * 40,
    "AIP_JWT_SECRET": "j" * 40,
    "AIP_POSTGRES_PASSWORD": "pgpassword0123",
}


class UnsetVariableError(Exception):
    """A required variable is not set (the message is the file's own)."""


def interpolate(value: str, variables: dict[str, str]) -> str:
    """``value`` with its variables replaced, as ``docker compose`` and podman-compose do."""

    def one(found: re.Match[str]) -> str:
        given = variables.get(found["name"], "")
        if found["op"] == "?" and not given:
            raise UnsetVariableError(found["arg"])
        if found["op"] == "-" and not given:
            return found["arg"]
        return given

    return _INTERPOLATION.sub(one, value)


def _compose_env(service: Doc, variables: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(v, variables) for k, v in service.get("environment", {}).items()}


def test_every_split_container_gets_the_auth_settings_from_the_variables(split: Doc) -> None:
    containers = {name: s for name, s in split["services"].items() if name != "postgres"}
    assert set(containers) == {"gateway", *ENGINE_KINDS}
    for name, service in containers.items():
        raw = service["environment"]
        assert {k for k in raw if not k.startswith("AIPLATFORM_ENGINES__")} == SPLIT_AUTH.keys()
        assert raw["AIPLATFORM_AUTH__SERVICE_TOKEN"] == (
            "${AIP_SERVICE_TOKEN:?set AIP_SERVICE_TOKEN}"
        ), name
        assert raw["AIPLATFORM_AUTH__JWT_SECRET"] == ("${AIP_JWT_SECRET:?set AIP_JWT_SECRET}"), name
        assert raw["AIPLATFORM_AUTH__ADMIN_PASSWORD"] == "${AIP_ADMIN_PASSWORD}", name
        assert raw["AIPLATFORM_LIMITS__REDIS_URL"] == "${AIP_REDIS_URL}", name
        env = _compose_env(service, COMPOSE_VARIABLES)
        assert env["AIPLATFORM_AUTH__DATABASE_URL"] == (
            "postgresql://aiplatform:pgpassword0123@postgres:5432/aiplatform"
        ), name
        settings = load_settings(env=env)
        assert settings.auth.enabled is None, name
        assert settings.auth.service_token == COMPOSE_VARIABLES["AIP_SERVICE_TOKEN"]
        assert settings.auth.jwt_secret == COMPOSE_VARIABLES["AIP_JWT_SECRET"]
        # the optional ones, unset, are empty: the settings keep their defaults
        assert settings.auth.admin_password is None, name
        assert settings.limits.redis_url is None, name
        given = {**COMPOSE_VARIABLES, "AIP_REDIS_URL": "redis://redis:6379/0"}
        assert load_settings(env=_compose_env(service, given)).limits.redis_url == (
            "redis://redis:6379/0"
        )


@pytest.mark.parametrize("variable", sorted(COMPOSE_VARIABLES))
def test_split_compose_refuses_to_start_without_a_required_variable(
    split: Doc, variable: str
) -> None:
    missing = {k: v for k, v in COMPOSE_VARIABLES.items() if k != variable}
    for name, service in split["services"].items():
        if name == "postgres" and variable != "AIP_POSTGRES_PASSWORD":
            continue  # the database needs its own password only
        with pytest.raises(UnsetVariableError, match=f"^set {variable}$"):
            _compose_env(service, missing)


def test_split_compose_runs_postgresql_that_every_container_waits_for(split: Doc) -> None:
    services = split["services"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16-alpine"
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "postgres-data" in split["volumes"]
    assert "ports" not in postgres, "reached by the containers only"
    env = _compose_env(postgres, COMPOSE_VARIABLES)
    assert env == {
        "POSTGRES_USER": "aiplatform",
        "POSTGRES_DB": "aiplatform",
        "POSTGRES_PASSWORD": COMPOSE_VARIABLES["AIP_POSTGRES_PASSWORD"],
    }
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert test[1].startswith("pg_isready ")
    assert "--username=aiplatform --dbname=aiplatform" in test[1]
    for name, service in services.items():
        if name != "postgres":
            assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}, name


def test_compose_files_use_no_empty_default(deploy_dir: Path) -> None:
    """podman-compose 1.0 passes ``${VAR:-}`` on verbatim: the text would become the setting."""
    for path in (deploy_dir / "compose").glob("*.yaml"):
        assert ":-}" not in path.read_text(), path.name


def test_monolith_compose_takes_an_optional_admin_password(deploy_dir: Path) -> None:
    content = yaml.safe_load((deploy_dir / "compose" / "monolith.yaml").read_text())
    service = content["services"]["aiplatform"]
    assert service["environment"] == {
        "AIPLATFORM_AUTH__ADMIN_PASSWORD": "${AIP_ADMIN_PASSWORD}",
        "AIPLATFORM_METRICS__TOKEN": "${AIP_METRICS_TOKEN}",
    }
    # unset, they are empty, which leaves the first admin's password random and /metrics open
    unset = load_settings(env=_compose_env(service, {}))
    assert unset.auth.admin_password is None
    assert unset.metrics.token is None
    given = {"AIP_ADMIN_PASSWORD": "a-long-enough-admin-password"}
    settings = load_settings(env=_compose_env(service, given))
    assert settings.auth.admin_password == "a-long-enough-admin-password"


# --- RAG on PostgreSQL (hand-written: a component and an overlay) -----------------------------

#: The files written by hand, relative to ``deploy/k8s``; ``aiplatform deploy render`` leaves
#: them in place.
RAG_POSTGRES_FILES = (
    "components/rag-postgres/kustomization.yaml",
    "components/rag-postgres/deployment.yaml",
    "components/rag-postgres/pdb.yaml",
    "overlays/microservices-postgres/kustomization.yaml",
)
RAG = "aiplatform-rag"
RAG_SECRET = "aiplatform-rag-postgres"
RAG_DATABASE_URL = "postgresql://rag:pw@postgres:5432/rag"
RAG_STORE_ENV = [
    {"name": "AIPLATFORM_ENGINES__RAG__STORE", "value": "postgres"},
    {
        "name": "AIPLATFORM_ENGINES__RAG__DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": RAG_SECRET, "key": "url"}},
    },
]


@pytest.fixture(scope="module")
def postgres_tree(deploy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh render of the kustomize tree with the hand-written files added."""
    tree = tmp_path_factory.mktemp("postgres") / "k8s"
    shutil.copytree(deploy_dir / "k8s", tree)
    for relative in RAG_POSTGRES_FILES:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "deploy" / "k8s" / relative, tree / relative)
    return tree


@pytest.fixture(scope="module")
def postgres_built(postgres_tree: Path) -> list[Doc]:
    return kustomize(postgres_tree / "overlays" / "microservices-postgres")


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_rag_postgres_files_are_written_by_hand_and_kept_by_render(tmp_path: Path) -> None:
    generated = set(generated_files(REPO / "deploy"))
    for relative in RAG_POSTGRES_FILES:
        path = REPO / "deploy" / "k8s" / relative
        assert path.read_text().startswith("# Written by hand"), relative
        assert path not in generated, relative
    for relative in RAG_POSTGRES_FILES:
        (tmp_path / "k8s" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "deploy" / "k8s" / relative, tmp_path / "k8s" / relative)
    render(tmp_path)
    for relative in RAG_POSTGRES_FILES:
        kept = (tmp_path / "k8s" / relative).read_text()
        assert kept == (REPO / "deploy" / "k8s" / relative).read_text(), relative


def test_postgres_overlay_objects_validate_against_kubernetes_1_32(
    postgres_built: list[Doc],
) -> None:
    assert postgres_built
    for doc in postgres_built:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)
    assert not [d for d in postgres_built if d["kind"] in ("Secret", "PersistentVolumeClaim")]


def test_postgres_overlay_runs_rag_as_a_deployment_of_two_replicas(
    postgres_built: list[Doc],
) -> None:
    docs = postgres_built
    workload = _workload(docs, RAG)
    assert workload["kind"] == "Deployment"
    assert workload["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in workload["spec"]
    assert "serviceName" not in workload["spec"]
    pod = workload["spec"]["template"]["spec"]
    # ingest jobs stay in the data directory: each replica's own emptyDir
    assert pod["volumes"] == [{"name": "data", "emptyDir": {}}]
    container = _container(docs, RAG)
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert container["env"][-2:] == RAG_STORE_ENV
    assert _find(docs, "HorizontalPodAutoscaler", RAG) is None
    budget = _get(docs, "PodDisruptionBudget", RAG)["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
    assert _get(docs, "Service", RAG)["spec"]["selector"] == budget["selector"]["matchLabels"]


def test_postgres_overlay_changes_nothing_but_the_rag_pods(
    built: dict[str, list[Doc]], postgres_built: list[Doc]
) -> None:
    before = {_key(doc): doc for doc in built["microservices"]}
    after = {_key(doc): doc for doc in postgres_built}
    changed = set(before) ^ set(after)
    assert changed == {("StatefulSet", RAG), ("Deployment", RAG), ("PodDisruptionBudget", RAG)}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    # the pod is the generated one but for the store's settings and the emptyDir
    old = before["StatefulSet", RAG]["spec"]["template"]
    new = json.loads(json.dumps(after["Deployment", RAG]["spec"]["template"]))
    assert new["spec"].pop("volumes") == [{"name": "data", "emptyDir": {}}]
    (container,) = new["spec"]["containers"]
    assert container["env"][-2:] == RAG_STORE_ENV
    del container["env"][-2:]
    assert new == old
    assert before["StatefulSet", RAG]["metadata"] == after["Deployment", RAG]["metadata"]


def test_postgres_overlay_rag_environment_is_valid_server_settings(
    postgres_built: list[Doc],
) -> None:
    container = _container(postgres_built, RAG)
    values = _env(container)
    values.update({env: SECRET_VALUES[key] for env, (key, _) in SPLIT_AUTH.items()})
    values["AIPLATFORM_ENGINES__RAG__DATABASE_URL"] = RAG_DATABASE_URL
    settings = load_settings(env=values).section(RAG_KIND)
    assert (settings.store, settings.database_url) == ("postgres", RAG_DATABASE_URL)
    assert not _secret_like_literals(_env(container))


def test_rag_postgres_component_composes_with_the_gpu_overlay(
    postgres_tree: Path, tmp_path: Path
) -> None:
    """An overlay of one's own: the gpu overlay plus the component."""
    mine = tmp_path / "my-cluster"
    mine.mkdir()
    gpu = os.path.relpath(postgres_tree / "overlays" / "gpu", mine)
    component = os.path.relpath(postgres_tree / "components" / "rag-postgres", mine)
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [gpu], "components": [component]})
    )
    docs = kustomize(mine)
    assert _workload(docs, RAG)["kind"] == "Deployment"
    assert _container(docs, RAG)["env"][-2:] == RAG_STORE_ENV
    assert _get(docs, "PodDisruptionBudget", RAG)
    assert str(_container(docs, "aiplatform-llm")["resources"]["limits"]["nvidia.com/gpu"]) == "1"
