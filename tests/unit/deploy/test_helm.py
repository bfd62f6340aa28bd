"""The Helm chart (deploy/helm/aiplatform): lints, renders valid Kubernetes 1.32 objects in every
mode, mirrors the engine registry, and makes the same deployment choices as the kustomize tree.

helm is a test dependency installed by ``make install-test`` (``make .venv/bin/helm``); these
tests fail, not skip, without it.
"""

from __future__ import annotations

import functools
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
from aiplatform.deploy.kubernetes import CUDA_ENV, SCRAPER_LABELS
from aiplatform.deploy.profiles import (
    AUTH_SECRET,
    GATEWAY,
    MONOLITH,
    MONOLITH_SECRETS,
    PORT,
    SPLIT_SECRETS,
    EngineProfile,
    Resources,
    SecretSetting,
    engine_profiles,
)
from aiplatform.engines.llm import LLM
from aiplatform.engines.rag import RAG as RAG_KIND
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "aiplatform"
RELEASE = "aiplatform"
KUBERNETES = "1.32.0"
PROFILES = engine_profiles()
WORKLOADS = {"Deployment", "StatefulSet"}


def sets(*assignments: str) -> tuple[str, ...]:
    """``--set`` arguments of helm, one per assignment."""
    return tuple(arg for assignment in assignments for arg in ("--set", assignment))


MICROSERVICES = sets("mode=microservices")
GPU = sets("mode=microservices", "gpu.enabled=true")
MONOLITH_GPU = sets("gpu.enabled=true")
VARIANTS = {"monolith": (), "microservices": MICROSERVICES, "gpu": GPU}
CONFIG = "[server]\nlog_level = 'debug'\n"

GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
#: A value for each key of the auth Secret that the server's settings accept.
SECRET_VALUES = {
    "service-token": "t" * 40,
    "jwt-secret": "j" * 40,
    "database-url": "postgresql://aiplatform:pw@postgres:5432/aiplatform",
    "admin-password": "a-long-enough-admin-password",
    "redis-url": "redis://redis:6379/0",
    "metrics-token": "m" * 40,
}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


@functools.cache
def helm() -> str:
    """The helm binary: the virtualenv's (make .venv/bin/helm), else one on PATH."""
    local = ROOT / ".venv" / "bin" / "helm"
    found = str(local) if local.is_file() else shutil.which("helm")
    if found is None:
        pytest.fail(
            "helm is not installed: run `make .venv/bin/helm` (make install-test does it)",
            pytrace=False,
        )
    return found


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, check=False)


@functools.cache
def render(*args: str, release: str = RELEASE) -> tuple[dict[str, Any], ...]:
    """Every object ``helm template`` renders with the value arguments ``args``."""
    done = run_helm("template", release, str(CHART), *args)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def objects(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def workloads(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] in WORKLOADS}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(workload: dict[str, Any]) -> dict[str, str]:
    """The variables a container is given as values (not from a Secret)."""
    items = container(workload).get("env", [])
    return {item["name"]: item["value"] for item in items if "value" in item}


def secret_refs(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Variable -> secretKeyRef of each variable read from a Secret (any other source fails)."""
    items = container(workload).get("env", [])
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"] for item in items if "value" not in item
    }


def expected_refs(settings: tuple[SecretSetting, ...], secret: str) -> dict[str, dict[str, Any]]:
    """The secretKeyRef of each setting the profiles list, read from ``secret``."""
    refs: dict[str, dict[str, Any]] = {}
    for setting in settings:
        ref: dict[str, Any] = {"name": secret, "key": setting.key}
        if setting.optional:
            ref["optional"] = True
        refs[setting.env] = ref
    return refs


def urls(variables: dict[str, str]) -> dict[str, str]:
    """Engine name -> URL, from AIPLATFORM_ENGINES__<NAME>__URL variables."""
    found = (re.fullmatch(r"AIPLATFORM_ENGINES__(\w+)__URL", name) for name in variables)
    return {match[1].lower(): variables[match[0]] for match in found if match}


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def engine_name(kind: str, release: str = RELEASE) -> str:
    return f"{release}-{kind}"


def as_values(resources: Resources) -> dict[str, dict[str, str]]:
    return {
        "requests": {"cpu": resources.cpu, "memory": f"{resources.memory_mib}Mi"},
        "limits": {"cpu": resources.cpu_limit, "memory": f"{resources.memory_limit_mib}Mi"},
    }


def users(kind: str) -> set[str]:
    return {name for name, profile in PROFILES.items() if kind in profile.uses}


def admitted(policy: dict[str, Any]) -> set[str]:
    """The components a NetworkPolicy admits on PORT."""
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": PORT, "protocol": "TCP"}]
    scraper, *peers = rule["from"]
    # Prometheus, in any namespace, scrapes /metrics, as in the kustomize tree
    assert scraper == {"namespaceSelector": {}, "podSelector": {"matchLabels": SCRAPER_LABELS}}
    return {peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in peers}


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return loaded


# --- the chart as a whole ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [*VARIANTS.values(), MONOLITH_GPU],
    ids=[*VARIANTS, "monolith-gpu"],
)
def test_helm_lint_passes(args: tuple[str, ...]) -> None:
    done = run_helm("lint", "--strict", str(CHART), *args)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "args",
    [
        *VARIANTS.values(),
        MONOLITH_GPU,
        (*GPU, "--set-literal", f"config={CONFIG}", *sets("ingress.className=nginx")),
    ],
    ids=[*VARIANTS, "monolith-gpu", "gpu-config"],
)
def test_every_rendered_object_is_valid_kubernetes(args: tuple[str, ...]) -> None:
    docs = render(*args)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_chart_deploys_this_release() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert (chart["apiVersion"], chart["name"]) == ("v2", "aiplatform")
    assert chart["appVersion"] == __version__, "Chart.yaml appVersion must follow the package"
    images = {container(w)["image"] for w in workloads(render(*MICROSERVICES)).values()}
    assert images == {f"aiplatform:{__version__}"}


def test_values_engines_equal_the_registry_profiles() -> None:
    engines = values()["engines"]
    assert list(engines) == list(PROFILES), "values.yaml engines must list every registered kind"
    for name, profile in PROFILES.items():
        entry = engines[name]
        assert entry["enabled"] is True, name
        assert entry["keepsData"] is profile.keeps_data, name
        assert entry["accelerated"] is profile.accelerated, name
        assert entry["uses"] == list(profile.uses), name
        assert entry["resources"] == as_values(profile.resources), name
        assert ("autoscaling" in entry) is not profile.keeps_data, name
        assert ("cudaEnv" in entry) is profile.accelerated, name


def test_values_size_the_gateway_and_the_monolith_from_their_profiles() -> None:
    chart_values = values()
    assert chart_values["gateway"]["resources"] == as_values(GATEWAY)
    assert chart_values["monolith"]["resources"] == as_values(MONOLITH)


# --- what every pod has --------------------------------------------------------------------------


def every_workload() -> Iterator[tuple[str, dict[str, Any]]]:
    for variant, args in VARIANTS.items():
        for name, workload in workloads(render(*args)).items():
            yield f"{variant}/{name}", workload


def test_every_container_is_sized_probed_and_unprivileged() -> None:
    for where, workload in every_workload():
        pod = workload["spec"]["template"]["spec"]
        spec = container(workload)
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(spec["resources"][bound]), (where, bound)
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(spec), where
        assert spec["startupProbe"]["httpGet"]["path"] == "/health", where
        assert spec["livenessProbe"]["httpGet"]["path"] == "/health", where
        assert spec["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False, where
        assert spec["securityContext"]["capabilities"] == {"drop": ["ALL"]}, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == 10001, where
        assert pod["securityContext"]["fsGroup"] == 10001, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        assert spec["envFrom"] == [
            {"secretRef": {"name": "aiplatform-secrets", "optional": True}}
        ], where


def test_every_pod_environment_is_valid_server_settings() -> None:
    """The variables each pod gets decode into the server's settings (names and values), those
    from the auth Secret included."""
    for where, workload in every_workload():
        from_secret = {
            name: SECRET_VALUES[ref["key"]] for name, ref in secret_refs(workload).items()
        }
        try:
            load_settings(env={**env(workload), **from_secret})
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}")


def test_no_secret_is_rendered() -> None:
    for args in VARIANTS.values():
        assert not objects(render(*args), "Secret")


# --- microservices -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PROFILES))
def test_microservices_run_each_kind_in_its_own_pod(kind: str) -> None:
    profile: EngineProfile = PROFILES[kind]
    docs = render(*MICROSERVICES)
    name = engine_name(kind)
    workload = workloads(docs)[name]
    assert workload["kind"] == ("StatefulSet" if profile.keeps_data else "Deployment")
    assert component(workload) == kind
    assert container(workload)["args"] == ["serve", "--engines", kind]
    assert container(workload)["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container(workload)["resources"] == as_values(profile.resources)
    service = objects(docs, "Service")[name]
    assert service["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == PORT
    hpas = objects(docs, "HorizontalPodAutoscaler")
    if profile.keeps_data:
        assert workload["spec"]["replicas"] == 1
        assert workload["spec"]["serviceName"] == name
        (claim,) = workload["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "data"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
        mounts = container(workload)["volumeMounts"]
        assert {"name": "data", "mountPath": "/data"} in mounts
        assert name not in hpas
    else:
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        assert (hpas[name]["spec"]["minReplicas"], hpas[name]["spec"]["maxReplicas"]) == (1, 4)
    engine_urls = urls(env(workload))
    assert engine_urls == {used: f"http://{engine_name(used)}:{PORT}" for used in profile.uses}
    policy = objects(docs, "NetworkPolicy")[name]
    assert (
        policy["spec"]["podSelector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
    )
    assert admitted(policy) == {"gateway"} | users(kind)


def test_microservices_gateway_forwards_every_kind() -> None:
    docs = render(*MICROSERVICES)
    gateway = objects(docs, "Deployment")[RELEASE]
    assert component(gateway) == "gateway"
    assert container(gateway)["args"] == ["serve"]
    assert container(gateway)["resources"] == as_values(GATEWAY)
    # an engine pod down must not take the gateway out of service
    assert container(gateway)["readinessProbe"]["httpGet"]["path"] == "/health"
    assert urls(env(gateway)) == {kind: f"http://{engine_name(kind)}:{PORT}" for kind in PROFILES}
    hpa = objects(docs, "HorizontalPodAutoscaler")[RELEASE]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    pdb = objects(docs, "PodDisruptionBudget")[RELEASE]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == gateway["spec"]["selector"]["matchLabels"]
    policy = objects(docs, "NetworkPolicy")[RELEASE]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": PORT, "protocol": "TCP"}]}]


def test_a_disabled_engine_renders_nothing_and_is_turned_off_on_the_gateway() -> None:
    docs = render(*MICROSERVICES, *sets("engines.rerank.enabled=false"))
    named = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert not [pair for pair in named if pair[1] == engine_name("rerank")]
    assert not [doc for doc in docs if component(doc) == "rerank"]
    gateway_env = env(objects(docs, "Deployment")[RELEASE])
    assert "rerank" not in urls(gateway_env)
    assert gateway_env["AIPLATFORM_ENGINES__RERANK__ENABLED"] == "false"
    assert set(urls(gateway_env)) == set(PROFILES) - {"rerank"}
    embeddings = objects(docs, "NetworkPolicy")[engine_name("embeddings")]
    assert admitted(embeddings) == {"gateway"} | users("embeddings") - {"rerank"}
    assert load_settings(env=gateway_env).engine("rerank").enabled is False


def test_an_engine_whose_used_kind_is_disabled_runs_that_kind_itself() -> None:
    docs = render(*MICROSERVICES, *sets("engines.embeddings.enabled=false"))
    for user in users("embeddings"):
        assert "embeddings" not in urls(env(workloads(docs)[engine_name(user)]))


def test_a_kind_that_keeps_data_cannot_autoscale() -> None:
    args = (*MICROSERVICES, *sets("engines.rag.autoscaling.enabled=true"))
    done = run_helm("template", RELEASE, str(CHART), *args)
    assert done.returncode != 0
    assert "engines.rag keeps data" in done.stderr


def test_an_unknown_mode_is_refused() -> None:
    done = run_helm("template", RELEASE, str(CHART), "--set", "mode=microservice")
    assert done.returncode != 0
    assert "mode must be monolith or microservices" in done.stderr


def test_another_release_name_prefixes_every_name_and_url() -> None:
    docs = render(*MICROSERVICES, release="staging")
    services = set(objects(docs, "Service"))
    gateway_urls = urls(env(objects(docs, "Deployment")["staging-aiplatform"]))
    assert {
        url.removeprefix("http://").removesuffix(f":{PORT}") for url in gateway_urls.values()
    } == (services - {"staging-aiplatform"})


# --- gpu -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PROFILES))
def test_gpu_goes_to_the_accelerated_kinds_only(kind: str) -> None:
    workload = workloads(render(*GPU))[engine_name(kind)]
    pod = workload["spec"]["template"]["spec"]
    spec = container(workload)
    variables = env(workload)
    if PROFILES[kind].accelerated:
        assert spec["resources"]["requests"]["nvidia.com/gpu"] == 1
        assert spec["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == GPU_NODE_SELECTOR
        assert pod["tolerations"] == GPU_TOLERATIONS
        assert spec["image"] == f"aiplatform:{__version__}-cuda"
        assert CUDA_ENV[kind].items() <= variables.items()
    else:
        assert "nvidia.com/gpu" not in spec["resources"]["requests"]
        assert "nvidia.com/gpu" not in spec["resources"]["limits"]
        assert "nodeSelector" not in pod
        assert "tolerations" not in pod
        assert spec["image"] == f"aiplatform:{__version__}"
        assert not [name for cuda in CUDA_ENV.values() for name in cuda if name in variables]


def test_gpu_leaves_the_gateway_on_cpu() -> None:
    gateway = objects(render(*GPU), "Deployment")[RELEASE]
    assert "nvidia.com/gpu" not in container(gateway)["resources"]["limits"]
    assert container(gateway)["image"] == f"aiplatform:{__version__}"


def test_gpu_llm_settings_put_every_layer_on_the_gpu() -> None:
    llm = workloads(render(*GPU))[engine_name("llm")]
    (model,) = load_settings(env=env(llm)).section(LLM).models
    assert model.gpu_layers == -1


# --- monolith ------------------------------------------------------------------------------------


def test_monolith_is_one_statefulset_with_every_engine_in_process() -> None:
    docs = render()
    (name,) = workloads(docs)
    assert name == RELEASE
    monolith = workloads(docs)[name]
    assert monolith["kind"] == "StatefulSet"
    assert component(monolith) == "gateway"
    assert monolith["spec"]["replicas"] == 1
    assert container(monolith)["args"] == ["serve"]
    assert container(monolith)["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert not urls(env(monolith))
    settings = load_settings(env=env(monolith))
    assert all(settings.engine(kind).enabled and not settings.engine(kind).url for kind in PROFILES)
    (claim,) = monolith["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in container(monolith)["volumeMounts"]
    assert set(objects(docs, "Service")) == {RELEASE}
    assert set(objects(docs, "NetworkPolicy")) == {RELEASE}
    assert not objects(docs, "PodDisruptionBudget")
    assert not objects(docs, "HorizontalPodAutoscaler")
    assert not [doc for doc in docs if component(doc) in PROFILES]


def test_monolith_with_a_gpu_gets_the_cuda_build_and_every_cuda_setting() -> None:
    (monolith,) = workloads(render(*MONOLITH_GPU)).values()
    assert container(monolith)["image"] == f"aiplatform:{__version__}-cuda"
    assert container(monolith)["resources"]["limits"]["nvidia.com/gpu"] == 1
    for cuda in CUDA_ENV.values():
        assert cuda.items() <= env(monolith).items()


def test_ingress_routes_the_host_to_the_gateway_service() -> None:
    (ingress,) = objects(render(), "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "aiplatform.local"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": RELEASE, "port": {"name": "http"}}
    assert "ingressClassName" not in ingress["spec"]
    assert not objects(render(*sets("ingress.enabled=false")), "Ingress")


def test_config_is_mounted_and_named_in_every_pod() -> None:
    docs = render(*MICROSERVICES, "--set-literal", f"config={CONFIG}")
    (config_map,) = objects(docs, "ConfigMap").values()
    assert config_map["data"]["config.toml"].strip() == CONFIG.strip()
    for name, workload in workloads(docs).items():
        assert env(workload)["AIPLATFORM_CONFIG"] == "/etc/aiplatform/config.toml", name
        mount = {"name": "config", "mountPath": "/etc/aiplatform", "readOnly": True}
        assert mount in container(workload)["volumeMounts"], name
    assert not objects(render(*MICROSERVICES), "ConfigMap")
    assert all(
        "AIPLATFORM_CONFIG" not in env(w) for w in workloads(render(*MICROSERVICES)).values()
    )


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_container_reads_its_auth_settings_from_the_secret(variant: str) -> None:
    """The settings aiplatform.deploy.profiles lists, read from auth.existingSecret: all of
    them on the gateway and every engine pod, the first admin's password on the monolith."""
    settings = MONOLITH_SECRETS if variant == "monolith" else SPLIT_SECRETS
    found = workloads(render(*VARIANTS[variant]))
    assert len(found) == (1 if variant == "monolith" else 1 + len(PROFILES))
    for name, workload in found.items():
        assert secret_refs(workload) == expected_refs(settings, AUTH_SECRET), name
        # authentication is left on: nothing turns it off
        assert not [k for k in env(workload) if k.startswith("AIPLATFORM_AUTH__")], name


def test_microservices_containers_need_the_token_the_signing_key_and_the_database() -> None:
    docs = render(*MICROSERVICES)
    gateway = objects(docs, "Deployment")[RELEASE]
    pods = [workloads(docs)[engine_name(kind)] for kind in PROFILES]
    for workload in [gateway, *pods]:
        refs = secret_refs(workload)
        required = {name for name, ref in refs.items() if not ref.get("optional", False)}
        assert required == {
            "AIPLATFORM_AUTH__SERVICE_TOKEN",
            "AIPLATFORM_AUTH__JWT_SECRET",
            "AIPLATFORM_AUTH__DATABASE_URL",
        }
        assert set(refs) - required == {
            "AIPLATFORM_AUTH__ADMIN_PASSWORD",
            "AIPLATFORM_LIMITS__REDIS_URL",
            "AIPLATFORM_METRICS__TOKEN",
        }


def test_auth_existing_secret_names_the_secret_and_cannot_be_empty() -> None:
    for args in VARIANTS.values():
        docs = render(*args, *sets("auth.existingSecret=prod-auth"))
        for name, workload in workloads(docs).items():
            refs = secret_refs(workload)
            assert refs, name
            assert {ref["name"] for ref in refs.values()} == {"prod-auth"}, name
    assert values()["auth"]["existingSecret"] == AUTH_SECRET
    done = run_helm("template", RELEASE, str(CHART), *MICROSERVICES, *sets("auth.existingSecret="))
    assert done.returncode != 0
    assert "auth.existingSecret must name the Secret" in done.stderr


# --- RAG on PostgreSQL ---------------------------------------------------------------------------

RAG = engine_name("rag")
RAG_SECRET = "aiplatform-rag-postgres"
RAG_POSTGRES = sets("engines.rag.postgres.enabled=true")
RAG_DATABASE_URL = "postgresql://rag:pw@postgres:5432/rag"
RAG_STORE = {"AIPLATFORM_ENGINES__RAG__STORE": "postgres"}
RAG_AUTOSCALING = sets(
    "engines.rag.autoscaling.enabled=true",
    "engines.rag.autoscaling.minReplicas=2",
    "engines.rag.autoscaling.maxReplicas=6",
    "engines.rag.autoscaling.targetCPUUtilizationPercentage=70",
)


def rag_settings(workload: dict[str, Any], database_url: str = RAG_DATABASE_URL) -> RagSettings:
    """The RAG section a pod's variables decode into, its Secrets' values filled in."""
    filled = {
        name: database_url if name.endswith("RAG__DATABASE_URL") else SECRET_VALUES[ref["key"]]
        for name, ref in secret_refs(workload).items()
    }
    return load_settings(env={**env(workload), **filled}).section(RAG_KIND)


def test_rag_keeps_its_store_on_its_volume_unless_postgres_is_enabled() -> None:
    rag = values()["engines"]["rag"]
    assert rag["postgres"] == {"enabled": False, "existingSecret": RAG_SECRET, "secretKey": "url"}
    assert rag["replicas"] == 2
    assert [name for name, entry in values()["engines"].items() if "postgres" in entry] == ["rag"]
    # neither the Secret's name nor the replicas change anything while it is off
    for args in VARIANTS.values():
        unused = sets("engines.rag.postgres.existingSecret=other", "engines.rag.replicas=5")
        assert render(*args, *unused) == render(*args)
    workload = workloads(render(*MICROSERVICES))[RAG]
    assert workload["kind"] == "StatefulSet"
    assert "volumes" not in workload["spec"]["template"]["spec"]
    assert rag_settings(workload).store == "sqlite"


@pytest.mark.parametrize(
    "args",
    [
        (*MICROSERVICES, *RAG_POSTGRES),
        (*GPU, *RAG_POSTGRES, *RAG_AUTOSCALING),
        (*MICROSERVICES, *RAG_POSTGRES, "--set-literal", f"config={CONFIG}"),
        RAG_POSTGRES,
    ],
    ids=["microservices", "gpu-autoscaled", "microservices-config", "monolith"],
)
def test_rag_on_postgres_lints_and_renders_valid_kubernetes(args: tuple[str, ...]) -> None:
    done = run_helm("lint", "--strict", str(CHART), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    for doc in render(*args):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_rag_on_postgres_is_a_deployment_of_replicas_sharing_the_database() -> None:
    docs = render(*MICROSERVICES, *RAG_POSTGRES)
    workload = workloads(docs)[RAG]
    assert workload["kind"] == "Deployment"
    assert workload["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in workload["spec"]
    assert "serviceName" not in workload["spec"]
    # ingest jobs stay in the data directory: each replica's own emptyDir
    pod = workload["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert container(workload)["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert RAG_STORE.items() <= env(workload).items()
    refs = secret_refs(workload)
    assert refs.pop("AIPLATFORM_ENGINES__RAG__DATABASE_URL") == {"name": RAG_SECRET, "key": "url"}
    assert refs == expected_refs(SPLIT_SECRETS, AUTH_SECRET)
    settings = rag_settings(workload)
    assert (settings.store, settings.database_url) == ("postgres", RAG_DATABASE_URL)
    assert RAG not in objects(docs, "HorizontalPodAutoscaler")
    pdb = objects(docs, "PodDisruptionBudget")[RAG]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
    assert (
        objects(docs, "Service")[RAG]["spec"]["selector"] == pdb["spec"]["selector"]["matchLabels"]
    )
    assert not objects(docs, "Secret")
    assert not objects(docs, "PersistentVolumeClaim")


def key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_rag_on_postgres_changes_nothing_but_the_rag_pods() -> None:
    before = render(*MICROSERVICES)
    after = render(*MICROSERVICES, *RAG_POSTGRES)
    changed = {key(doc) for doc in after} ^ {key(doc) for doc in before}
    assert changed == {("StatefulSet", RAG), ("Deployment", RAG), ("PodDisruptionBudget", RAG)}
    unchanged = {key(doc): doc for doc in before if key(doc) not in changed}
    assert {key(doc): doc for doc in after if key(doc) not in changed} == unchanged
    # the pod is the same but for the store's settings and the emptyDir
    old, new = workloads(before)[RAG], workloads(after)[RAG]
    old_pod, new_pod = old["spec"]["template"], new["spec"]["template"]
    assert new_pod["spec"].pop("volumes") == [{"name": "data", "emptyDir": {}}]
    (new_container,) = new_pod["spec"]["containers"]
    added = [item for item in new_container["env"] if item not in container(old)["env"]]
    assert [item["name"] for item in added] == [
        "AIPLATFORM_ENGINES__RAG__STORE",
        "AIPLATFORM_ENGINES__RAG__DATABASE_URL",
    ]
    new_container["env"] = [item for item in new_container["env"] if item not in added]
    assert new_pod == old_pod


def test_rag_on_postgres_reads_the_named_secret_key_and_replica_count() -> None:
    args = sets(
        "engines.rag.postgres.existingSecret=prod-rag", "engines.rag.postgres.secretKey=uri"
    )
    docs = render(*MICROSERVICES, *RAG_POSTGRES, *args, *sets("engines.rag.replicas=3"))
    workload = workloads(docs)[RAG]
    assert workload["spec"]["replicas"] == 3
    ref = secret_refs(workload)["AIPLATFORM_ENGINES__RAG__DATABASE_URL"]
    assert ref == {"name": "prod-rag", "key": "uri"}
    # one replica: a Deployment still, and no budget that would block every drain
    one = render(*MICROSERVICES, *RAG_POSTGRES, *sets("engines.rag.replicas=1"))
    assert workloads(one)[RAG]["kind"] == "Deployment"
    assert workloads(one)[RAG]["spec"]["replicas"] == 1
    assert set(objects(one, "PodDisruptionBudget")) == {RELEASE}


def test_rag_on_postgres_can_autoscale() -> None:
    docs = render(*MICROSERVICES, *RAG_POSTGRES, *RAG_AUTOSCALING)
    workload = workloads(docs)[RAG]
    assert workload["kind"] == "Deployment"
    assert "replicas" not in workload["spec"], "its autoscaler owns the count"
    hpa = objects(docs, "HorizontalPodAutoscaler")[RAG]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": RAG}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert RAG in objects(docs, "PodDisruptionBudget")
    from_one = sets("engines.rag.autoscaling.minReplicas=1")
    lone = render(*MICROSERVICES, *RAG_POSTGRES, *RAG_AUTOSCALING, *from_one)
    assert RAG not in objects(lone, "PodDisruptionBudget")


def test_rag_on_postgres_in_the_monolith_sets_its_store_only() -> None:
    docs = render(*RAG_POSTGRES)
    (monolith,) = workloads(docs).values()
    assert monolith["kind"] == "StatefulSet"
    (claim,) = monolith["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert "volumes" not in monolith["spec"]["template"]["spec"]
    assert RAG_STORE.items() <= env(monolith).items()
    refs = secret_refs(monolith)
    assert refs.pop("AIPLATFORM_ENGINES__RAG__DATABASE_URL") == {"name": RAG_SECRET, "key": "url"}
    assert refs == expected_refs(MONOLITH_SECRETS, AUTH_SECRET)
    assert rag_settings(monolith).store == "postgres"
    assert not objects(docs, "PodDisruptionBudget")
    # a disabled RAG is given no store
    off = workloads(render(*RAG_POSTGRES, *sets("engines.rag.enabled=false")))[RELEASE]
    assert not [
        name for name in env(off) | secret_refs(off) if "RAG__" in name and "ENABLED" not in name
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (*MICROSERVICES, *RAG_POSTGRES, *sets("engines.rag.postgres.existingSecret=")),
            "engines.rag.postgres.existingSecret must name the Secret with the database URL",
        ),
        (
            (*RAG_POSTGRES, *sets("engines.rag.postgres.existingSecret=")),
            "engines.rag.postgres.existingSecret must name the Secret with the database URL",
        ),
        (
            (*MICROSERVICES, *RAG_POSTGRES, *sets("engines.rag.postgres.secretKey=")),
            f"engines.rag.postgres.secretKey must name the key of {RAG_SECRET}",
        ),
        (
            (*MICROSERVICES, *sets("engines.speakers.postgres.enabled=true")),
            "engines.speakers.postgres: only rag can keep its store in PostgreSQL",
        ),
        (
            (*MICROSERVICES, *RAG_POSTGRES, *sets("engines.rag.replicas=0")),
            "engines.rag needs at least one replica",
        ),
        (
            (*MICROSERVICES, *RAG_POSTGRES, *sets("engines.rag.autoscaling.enabled=true")),
            "engines.rag.autoscaling needs minReplicas, maxReplicas and",
        ),
        (
            (
                *MICROSERVICES,
                *RAG_POSTGRES,
                *RAG_AUTOSCALING,
                *sets("engines.rag.autoscaling.minReplicas=7"),
            ),
            "engines.rag.autoscaling: minReplicas is more than maxReplicas",
        ),
        (
            (*MICROSERVICES, *RAG_AUTOSCALING),
            "engines.rag keeps data in a store with one writer",
        ),
    ],
    ids=[
        "no-secret",
        "monolith-no-secret",
        "no-key",
        "not-rag",
        "no-replica",
        "autoscaling-without-bounds",
        "autoscaling-min-over-max",
        "autoscaling-on-the-volume",
    ],
)
def test_inconsistent_rag_postgres_values_are_refused(args: tuple[str, ...], message: str) -> None:
    done = run_helm("template", RELEASE, str(CHART), *args)
    assert done.returncode != 0
    assert message in done.stderr
