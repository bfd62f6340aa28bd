"""The Kubernetes objects of every deployment mode, as plain dicts, made from the engine profiles.

One function per object kind; :func:`kustomize_tree` lays them out as a kustomize base and its
overlays (monolith, microservices, gpu). Names, labels, probes and security settings are the
same for every pod; what differs per engine comes from :func:`engine_profiles` only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiplatform import __version__
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

__all__ = [
    "CUDA_ENV",
    "CUDA_IMAGE",
    "GPU_NODE_SELECTOR",
    "GPU_RESOURCE",
    "IMAGE",
    "Manifest",
    "ManifestFile",
    "PodRole",
    "engine_url",
    "kustomize_tree",
    "resource_name",
    "used_by",
]

#: A Kubernetes object (or a kustomization, or a patch) as YAML will hold it.
Manifest = dict[str, Any]

APP = "aiplatform"
#: The image every workload runs; the overlays' ``images`` entries give it its tag.
IMAGE = "aiplatform"
#: What the gpu overlay's patches name the accelerated engines' image, so that its ``images``
#: entry turns only theirs into the CUDA build (the other pods keep the CPU image).
CUDA_IMAGE = "aiplatform-cuda"
#: Where every pod keeps what its engines store (the image sets ``XDG_DATA_HOME`` there).
DATA_PATH = "/data"
#: Size of each ``data`` volume claim; a patch on ``volumeClaimTemplates`` changes it.
DATA_SIZE = "10Gi"
#: The Ingress host; a patch on the Ingress changes it.
INGRESS_HOST = "aiplatform.local"
UID = 10001
SECRETS = "aiplatform-secrets"
GATEWAY_COMPONENT = "gateway"

#: What the accelerated engines are told in the gpu overlay, so they run on the GPU.
CUDA_ENV: Mapping[str, Mapping[str, str]] = {
    "asr": {
        "AIPLATFORM_ENGINES__ASR__DEVICE": "cuda",
        "AIPLATFORM_ENGINES__ASR__COMPUTE_TYPE": "float16",
    },
    "llm": {
        "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps(
            [
                {
                    "name": "smollm2-135m-instruct",
                    "path": "shipped:smollm2-135m-instruct",
                    "gpu_layers": -1,
                }
            ]
        ),
    },
}
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One generated file: its path under ``deploy/k8s`` and its YAML documents."""

    path: str
    documents: list[Manifest]
    #: Comment lines written under the generated-file header.
    note: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PodRole:
    """What makes one pod template differ from another."""

    component: str
    args: list[str]
    env: dict[str, str]
    #: Settings read from keys of the auth Secret.
    secrets: tuple[SecretSetting, ...]
    resources: Resources
    ready_path: str
    data_volume: bool


# --- names and labels -----------------------------------------------------------------------


def resource_name(component: str) -> str:
    """The Service/workload name of a component: ``aiplatform`` or ``aiplatform-<engine>``."""
    return APP if component == GATEWAY_COMPONENT else f"{APP}-{component}"


def engine_url(kind: str) -> str:
    """The in-cluster URL of an engine's Service."""
    return f"http://{resource_name(kind)}:{PORT}"


def _url_env(kinds: Iterable[str]) -> dict[str, str]:
    return {f"AIPLATFORM_ENGINES__{kind.upper()}__URL": engine_url(kind) for kind in kinds}


def _selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/part-of": APP,
        "app.kubernetes.io/component": component,
    }


def _metadata(component: str) -> Manifest:
    return {"name": resource_name(component), "labels": _labels(component)}


# --- containers and pods --------------------------------------------------------------------


def _resources(resources: Resources) -> Manifest:
    return {
        "requests": {"cpu": resources.cpu, "memory": f"{resources.memory_mib}Mi"},
        "limits": {"cpu": resources.cpu_limit, "memory": f"{resources.memory_limit_mib}Mi"},
    }


def _probe(path: str, *, period: int, failures: int, timeout: int | None = None) -> Manifest:
    probe: Manifest = {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period}
    if timeout is not None:
        probe["timeoutSeconds"] = timeout
    probe["failureThreshold"] = failures
    return probe


def _secret_env(setting: SecretSetting) -> Manifest:
    """An env entry read from a key of the auth Secret."""
    ref: Manifest = {"name": AUTH_SECRET, "key": setting.key}
    if setting.optional:
        ref["optional"] = True
    return {"name": setting.env, "valueFrom": {"secretKeyRef": ref}}


def _container(pod: PodRole) -> Manifest:
    """The one container of a pod: the image, its role's args and env, probes, limits."""
    spec: Manifest = {
        "name": APP,
        "image": IMAGE,
        "args": pod.args,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
    }
    env = [{"name": key, "value": value} for key, value in pod.env.items()]
    env += [_secret_env(setting) for setting in pod.secrets]
    if env:
        spec["env"] = env
    spec["envFrom"] = [{"secretRef": {"name": SECRETS, "optional": True}}]
    spec["resources"] = _resources(pod.resources)
    # Model loading can take minutes; liveness starts once /health has answered.
    spec["startupProbe"] = _probe("/health", period=5, failures=60)
    spec["livenessProbe"] = _probe("/health", period=10, timeout=3, failures=3)
    spec["readinessProbe"] = _probe(pod.ready_path, period=5, timeout=3, failures=2)
    if pod.data_volume:
        spec["volumeMounts"] = [{"name": "data", "mountPath": DATA_PATH}]
    spec["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return spec


def _pod_template(pod: PodRole) -> Manifest:
    """The pod template of a workload: labels, the non-root security context, the container."""
    return {
        "metadata": {"labels": _labels(pod.component)},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                # a large volume is not chowned file by file at every start
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [_container(pod)],
        },
    }


# --- objects ----------------------------------------------------------------------------------


def deployment(pod: PodRole) -> Manifest:
    """A Deployment of a stateless component. It sets no ``replicas``: its
    HorizontalPodAutoscaler owns the count, which an apply would otherwise reset."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pod.component),
        "spec": {
            "selector": {"matchLabels": _selector(pod.component)},
            "template": _pod_template(pod),
        },
    }


def statefulset(pod: PodRole) -> Manifest:
    """A StatefulSet of one replica: its store is local files with one writer."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(pod.component),
        "spec": {
            "replicas": 1,
            "serviceName": resource_name(pod.component),
            "selector": {"matchLabels": _selector(pod.component)},
            "template": _pod_template(pod),
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": _labels(pod.component)},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": DATA_SIZE}},
                    },
                }
            ],
        },
    }


def service(component: str) -> Manifest:
    """The ClusterIP Service of a component, port ``http``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(component),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(component),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def hpa(component: str, minimum: int, maximum: int) -> Manifest:
    """A CPU-driven HorizontalPodAutoscaler of a component's Deployment."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(component),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": resource_name(component),
            },
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }


def pdb(component: str) -> Manifest:
    """A PodDisruptionBudget keeping one pod of a component up through node drains."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(component),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": _selector(component)}},
    }


#: The pods that scrape ``/metrics``, in any namespace (Prometheus' own label).
SCRAPER_LABELS = {"app.kubernetes.io/name": "prometheus"}


def network_policy(component: str, admitted: Iterable[str] | None) -> Manifest:
    """Ingress to a component on its port: from the ``admitted`` components and the metrics
    scraper, or (None) anyone."""
    rule: Manifest = {}
    if admitted is not None:
        rule["from"] = [
            {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(SCRAPER_LABELS)}},
            {
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/name": APP},
                    "matchExpressions": [
                        {
                            "key": "app.kubernetes.io/component",
                            "operator": "In",
                            "values": list(admitted),
                        }
                    ],
                }
            },
        ]
    rule["ports"] = [{"port": PORT, "protocol": "TCP"}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(component),
        "spec": {
            "podSelector": {"matchLabels": _selector(component)},
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }


def ingress() -> Manifest:
    """The Ingress to the gateway Service (the default IngressClass serves it)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(GATEWAY_COMPONENT),
        "spec": {
            "rules": [
                {
                    "host": INGRESS_HOST,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": resource_name(GATEWAY_COMPONENT),
                                        "port": {"name": "http"},
                                    }
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }


def kustomization(
    resources: list[str],
    *,
    images: list[Manifest] | None = None,
    patches: list[str] | None = None,
) -> Manifest:
    """A kustomization file."""
    body: Manifest = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }
    if patches:
        body["patches"] = [{"path": path} for path in patches]
    if images:
        body["images"] = images
    return body


# --- pods of each role ------------------------------------------------------------------------


def _gateway_pod(profiles: Mapping[str, EngineProfile]) -> PodRole:
    # /ready is 503 while any engine pod is down: readiness on /health keeps the gateway in
    # service for the other engines.
    return PodRole(
        component=GATEWAY_COMPONENT,
        args=["serve"],
        env=_url_env(profiles),
        secrets=SPLIT_SECRETS,
        resources=GATEWAY,
        ready_path="/health",
        data_volume=False,
    )


def _monolith_pod() -> PodRole:
    """Every engine in-process, ready when every engine is."""
    return PodRole(
        component=GATEWAY_COMPONENT,
        args=["serve"],
        env={},
        secrets=MONOLITH_SECRETS,
        resources=MONOLITH,
        ready_path="/ready",
        data_volume=True,
    )


def _engine_pod(profile: EngineProfile) -> PodRole:
    return PodRole(
        component=profile.name,
        args=["serve", "--engines", profile.name],
        env=_url_env(profile.uses),
        secrets=SPLIT_SECRETS,
        resources=profile.resources,
        ready_path="/ready",
        data_volume=profile.keeps_data,
    )


def used_by(profiles: Mapping[str, EngineProfile]) -> dict[str, list[str]]:
    """For each kind, the kinds whose engines call it (in registry order)."""
    return {
        name: [other.name for other in profiles.values() if name in other.uses] for name in profiles
    }


# --- the tree ---------------------------------------------------------------------------------


def _images(name: str, tag: str, new_name: str | None = None) -> list[Manifest]:
    entry: Manifest = {"name": name}
    if new_name is not None:
        entry["newName"] = new_name
    entry["newTag"] = tag
    return [entry]


def _base() -> list[ManifestFile]:
    gateway = GATEWAY_COMPONENT
    files = [
        ManifestFile("base/service.yaml", [service(gateway)]),
        ManifestFile("base/ingress.yaml", [ingress()]),
        ManifestFile("base/networkpolicy.yaml", [network_policy(gateway, None)]),
    ]
    names = [file.path.removeprefix("base/") for file in files]
    note = ("What every mode shares: the gateway's Service, Ingress and NetworkPolicy.",)
    return [ManifestFile("base/kustomization.yaml", [kustomization(names)], note), *files]


def _monolith(profiles: Mapping[str, EngineProfile], version: str) -> list[ManifestFile]:
    workload = ManifestFile(
        "overlays/monolith/statefulset.yaml",
        [statefulset(_monolith_pod())],
        (
            "Every engine in-process. Requests: what the largest engine needs; memory limit:",
            "room for every engine's models at once (each loads on first use and stays).",
        ),
    )
    note = (
        "Every engine in one pod. Set the image in an overlay of your own that lists this",
        "one in its resources (docs/deploy.md).",
    )
    return [
        ManifestFile(
            "overlays/monolith/kustomization.yaml",
            [kustomization(["../../base", "statefulset.yaml"], images=_images(IMAGE, version))],
            note,
        ),
        workload,
    ]


def _engine_documents(profile: EngineProfile, users: list[str]) -> list[Manifest]:
    pod = _engine_pod(profile)
    documents = [service(profile.name)]
    if profile.keeps_data:
        documents.append(statefulset(pod))
    else:
        documents += [deployment(pod), hpa(profile.name, 1, 4)]
    documents.append(network_policy(profile.name, [GATEWAY_COMPONENT, *users]))
    return documents


def _microservices(profiles: Mapping[str, EngineProfile], version: str) -> list[ManifestFile]:
    here = "overlays/microservices"
    gateway = _gateway_pod(profiles)
    files = [
        ManifestFile(
            f"{here}/gateway.yaml",
            [
                deployment(gateway),
                hpa(GATEWAY_COMPONENT, 2, 10),
                pdb(GATEWAY_COMPONENT),
            ],
        )
    ]
    users = used_by(profiles)
    for name, profile in profiles.items():
        files.append(
            ManifestFile(
                f"{here}/engine-{name}.yaml",
                _engine_documents(profile, users[name]),
                (f"{name}: {profile.summary}",),
            )
        )
    names = ["../../base", *(file.path.removeprefix(f"{here}/") for file in files)]
    required = ", ".join(setting.key for setting in SPLIT_SECRETS if not setting.optional)
    note = (
        "The gateway and one pod per engine. Set the image in an overlay of your own that",
        "lists this one in its resources (docs/deploy.md). Every pod needs the Secret",
        f"{AUTH_SECRET} first, with the keys {required}.",
    )
    root = kustomization(names, images=_images(IMAGE, version))
    return [ManifestFile(f"{here}/kustomization.yaml", [root], note), *files]


def gpu_patch(profile: EngineProfile) -> Manifest:
    """A strategic-merge patch giving an accelerated engine a GPU, the CUDA image and settings."""
    gpu = {GPU_RESOURCE: 1}
    patched: Manifest = {
        "name": APP,
        "image": CUDA_IMAGE,
        "resources": {"requests": dict(gpu), "limits": dict(gpu)},
    }
    env = CUDA_ENV.get(profile.name, {})
    if env:
        patched["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet" if profile.keeps_data else "Deployment",
        "metadata": {"name": resource_name(profile.name)},
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": dict(GPU_NODE_SELECTOR),
                    "tolerations": [
                        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [patched],
                }
            }
        },
    }


def _gpu(profiles: Mapping[str, EngineProfile], version: str) -> list[ManifestFile]:
    here = "overlays/gpu"
    patches = [
        ManifestFile(f"{here}/gpu-{profile.name}.yaml", [gpu_patch(profile)])
        for profile in profiles.values()
        if profile.accelerated
    ]
    names = [file.path.removeprefix(f"{here}/") for file in patches]
    note = (
        "Microservices with a GPU for the accelerated engines, which run the CUDA image",
        f"(named {CUDA_IMAGE} in the patches). Set both images in an overlay of your own",
        "that lists this one in its resources (docs/deploy.md).",
    )
    root = kustomization(
        ["../microservices"],
        patches=names,
        images=_images(CUDA_IMAGE, f"{version}-cuda", new_name=IMAGE),
    )
    return [ManifestFile(f"{here}/kustomization.yaml", [root], note), *patches]


def kustomize_tree(
    profiles: Mapping[str, EngineProfile] | None = None, version: str = __version__
) -> list[ManifestFile]:
    """Every file of the kustomize tree, paths relative to ``deploy/k8s``."""
    profiles = engine_profiles() if profiles is None else profiles
    return [
        *_base(),
        *_monolith(profiles, version),
        *_microservices(profiles, version),
        *_gpu(profiles, version),
    ]
