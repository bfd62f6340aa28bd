"""Split mode for real: one ``aiplatform serve --engines X`` process per engine kind, a gateway
forwarding to all of them, and a monolith beside it for the answers to agree with.

Authentication is on in the gateway and every pod, as in the deployments: they share a service
token and a signing key, the test's client calls the gateway with an API key made by the admin,
and a pod takes a tenant only from a caller presenting the service token. (One gateway keeps its
users in its own store here; a database shared by replicas and pods is tested on its own.)

Real small models where the kind has one (MiniLM, SmolLM2, Whisper tiny.en, resemblyzer). Then
faults: a pod killed with SIGKILL, and one hung with SIGSTOP. The gateway answers 503 for that
engine at once, names it in ``/ready``, keeps serving every other engine, and uses the pod again
when it is back, without a restart of its own.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aiplatform.engines.analytics.docs import example_body
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.registry import ENGINE_KINDS
from tests.speech import SENTENCES, conversation, speak
from tests.support import ServerProcess, free_port

pytestmark = pytest.mark.slow

REAL_MODELS = {
    "AIPLATFORM_ENGINES__LLM__MODELS": (
        '[{"name": "smollm2", "path": "shipped:smollm2-135m-instruct", "slots": 1}]'
    ),
    "AIPLATFORM_ENGINES__ASR__BACKEND": "faster_whisper",
    "AIPLATFORM_ENGINES__ASR__PATH": "shipped:whisper-tiny.en",
    "AIPLATFORM_ENGINES__SPEAKERS__BACKEND": "resemblyzer",
    "AIPLATFORM_ENGINES__DIARIZATION__BACKEND": "resemblyzer",
    "AIPLATFORM_ENGINES__EMOTION__BACKEND": "lexicon",
}
#: The gateway gives up on a silent pod after this long (the default is 60 s).
HUNG_POD_TIMEOUT_S = 8

ADMIN_PASSWORD = "split-admin-password"
SERVICE_TOKEN = "split-service-token-" + "s" * 24
#: What the gateway and every pod share, as they do from the auth Secret in a deployment.
SHARED_AUTH = {
    "AIPLATFORM_AUTH__ENABLED": "true",  # on loopback it would be off by default
    "AIPLATFORM_AUTH__SERVICE_TOKEN": SERVICE_TOKEN,
    "AIPLATFORM_AUTH__JWT_SECRET": "split-jwt-secret-" + "j" * 24,
    "AIPLATFORM_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD,
    "AIPLATFORM_AUTH__PASSWORD_TIME_COST": "1",
    "AIPLATFORM_AUTH__PASSWORD_MEMORY_KIB": "8",
}


class Server(ServerProcess):
    """A server process and the headers the test's client sends it (an API key, where
    authentication is on)."""

    def __init__(self, args: list[str], env: dict[str, str], port: int | None = None) -> None:
        super().__init__(args, env, port)
        self.headers: dict[str, str] = {}


@dataclass
class Split:
    gateway: Server
    pods: dict[str, Server]
    monolith: Server


def kind_uses(kind: str) -> tuple[str, ...]:
    return ENGINE_KINDS[kind].uses


def users_of(kind: str) -> set[str]:
    return {other for other in ENGINE_KINDS if kind in kind_uses(other)}


def env_var(kind: str, key: str) -> str:
    return f"AIPLATFORM_ENGINES__{kind.upper()}__{key}"


def auth_env(folder: Path) -> dict[str, str]:
    """Authentication on, with the shared settings and a store of the server's own."""
    return {**SHARED_AUTH, "AIPLATFORM_AUTH__DATA_DIR": str(folder)}


def api_key(server: ServerProcess) -> str:
    """A new API key of the admin's tenant, made through the admin's login."""
    login = httpx.post(
        f"{server.url}/v1/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    created = httpx.post(
        f"{server.url}/v1/keys",
        json={"name": "split-test"},
        headers={"authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    folder = tmp_path_factory.mktemp("split-auth")
    ports = {kind: free_port() for kind in ENGINE_KINDS}
    urls = {env_var(kind, "URL"): f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    pods = {
        kind: Server(
            ["--engines", kind],
            # a pod calls the pods of the kinds it uses
            {
                **REAL_MODELS,
                **{env_var(used, "URL"): urls[env_var(used, "URL")] for used in kind_uses(kind)},
                **auth_env(folder / kind),
            },
            port=ports[kind],
        )
        for kind in ENGINE_KINDS
    }
    gateway = Server(
        [],
        {
            **urls,
            env_var("embeddings", "TIMEOUT_S"): str(HUNG_POD_TIMEOUT_S),
            **auth_env(folder / "gateway"),
        },
    )
    # on loopback without authentication: the reference the answers are compared with
    monolith = Server([], REAL_MODELS)
    everything = [*pods.values(), monolith]
    try:
        with ThreadPoolExecutor(len(everything)) as pool:
            for started in [pool.submit(server.start, timeout_s=600) for server in everything]:
                started.result()
        gateway.start(timeout_s=120)
        gateway.headers = {"authorization": f"Bearer {api_key(gateway)}"}
        yield Split(gateway, pods, monolith)
    finally:
        for server in [gateway, *everything]:
            server.stop()


def post(server: Server, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", headers=server.headers, timeout=120, **kwargs)


def ready(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/ready", timeout=10)


def wait_until(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s}s: {what}")
        time.sleep(0.1)


def circuit(server: Server, kind: str) -> str | None:
    circuit: str | None = ready(server).json()["engines"][kind]["circuit"]
    return circuit


def test_every_kind_is_a_pod_and_the_gateway_is_ready(split: Split) -> None:
    body = ready(split.gateway).json()
    assert body["status"] == "ready"
    assert set(body["engines"]) == set(ENGINE_KINDS)
    assert all(engine["mode"] == "remote" for engine in body["engines"].values())
    assert all(engine["circuit"] == "closed" for engine in body["engines"].values())


# -- authentication ------------------------------------------------------------------------------


def test_the_gateway_refuses_a_call_without_a_key(split: Split) -> None:
    for headers in ({}, {"authorization": "Bearer aip_0.not-a-key"}):
        refused = httpx.post(
            f"{split.gateway.url}/v1/embeddings", json={"input": "fox"}, headers=headers, timeout=30
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["type"] == "authentication_error"
    assert embed(split.gateway).status_code == 200


def test_a_pod_takes_a_tenant_only_from_a_caller_with_the_service_token(split: Split) -> None:
    pod = split.pods["embeddings"]

    def call(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{pod.url}/v1/embeddings", json={"input": "fox"}, headers=headers, timeout=30
        )

    tenant = {"x-aiplatform-tenant": "default"}
    spoofed = call(tenant)
    assert spoofed.status_code == 403, spoofed.text
    assert spoofed.json()["error"]["code"] == "tenant_header_not_allowed"
    wrong = call({**tenant, "x-aiplatform-service-token": "not-the-" + "x" * 32})
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["error"]["code"] == "invalid_service_token"
    assert call({}).status_code == 401  # nor anything else without a credential
    granted = call({**tenant, "x-aiplatform-service-token": SERVICE_TOKEN})
    assert granted.status_code == 200, granted.text


# -- the same calls give the same answers -------------------------------------------------------


def embed(server: Server) -> httpx.Response:
    return post(server, "/v1/embeddings", json={"input": ["a red fox", "the stock market"]})


def vectors(response: httpx.Response) -> list[list[float]]:
    return [item["embedding"] for item in response.json()["data"]]


def test_embeddings_equal(split: Split) -> None:
    via_pods, local = embed(split.gateway), embed(split.monolith)
    assert via_pods.status_code == 200, via_pods.text
    # equal to float32 rounding: the two processes may split the matrix work differently
    np.testing.assert_allclose(vectors(via_pods), vectors(local), rtol=0, atol=1e-6)


def chat(server: Server) -> httpx.Response:
    return post(
        server,
        "/v1/chat/completions",
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "temperature": 0,
            "max_tokens": 16,
        },
    )


def answer(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    return text


def test_greedy_chat_equal(split: Split) -> None:
    text = answer(chat(split.gateway))
    assert text
    assert text == answer(chat(split.monolith))


def test_transcript_and_diarization_equal(split: Split) -> None:
    def transcribe(server: Server) -> dict[str, Any]:
        response = post(
            server,
            "/v1/audio/transcriptions",
            files={"file": ("talk.wav", conversation().wav, "audio/wav")},
            data={"response_format": "verbose_json", "diarize": "true", "emotion": "true"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    via_pods, local = transcribe(split.gateway), transcribe(split.monolith)
    assert "meeting" in via_pods["text"].lower()
    assert via_pods["text"] == local["text"]
    assert via_pods["speakers"] == local["speakers"] == ["speaker_0", "speaker_1"]
    assert [s["speaker"] for s in via_pods["segments"]] == [s["speaker"] for s in local["segments"]]
    assert [s["emotion"] for s in via_pods["segments"]] == [s["emotion"] for s in local["segments"]]


def test_speaker_identification_equal(split: Split) -> None:
    def identify(server: Server) -> list[Any]:
        enrolled = post(
            server,
            "/v1/speakers",
            files={"file": ("alice.wav", speak(SENTENCES[0]), "audio/wav")},
            data={"name": "alice"},
        )
        assert enrolled.status_code == 200, enrolled.text
        voice = post(
            server,
            "/v1/speakers/embeddings",
            files={"file": ("who.wav", speak(SENTENCES[1]), "audio/wav")},
        )
        assert voice.status_code == 200, voice.text
        found = post(
            server, "/v1/speakers/identify", json={"embeddings": [voice.json()["embedding"]]}
        )
        assert found.status_code == 200, found.text
        return [(m["name"], round(m["score"], 5)) for m in found.json()["data"]]

    assert identify(split.gateway) == identify(split.monolith)


def test_rag_search_ids_equal(split: Split) -> None:
    documents = [{"id": f"doc-{i}", "text": text} for i, text in enumerate(SENTENCES)]

    def search(server: Server) -> list[str]:
        created = post(server, "/v1/rag/collections", json={"name": "split-kb"})
        assert created.status_code in (200, 201), created.text
        added = post(
            server, "/v1/rag/collections/split-kb/documents", json={"documents": documents}
        )
        assert added.status_code in (200, 201), added.text
        found = post(
            server,
            "/v1/rag/collections/split-kb/search",
            json={"query": "a fox and a dog", "top_k": 3},
        )
        assert found.status_code == 200, found.text
        return [hit["document_id"] for hit in found.json()["data"]]

    via_pods = search(split.gateway)
    assert via_pods[0] == "doc-1"
    assert via_pods == search(split.monolith)


def test_rerank_emotion_datasets_and_analytics_equal(split: Split) -> None:
    method = METHODS["statistical"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/rerank", {"query": "fox", "documents": SENTENCES, "top_n": 2}),
        ("/v1/emotion", {"input": ["I am so happy today!", "This is terrible."]}),
        (f"/v1/analytics/{method.name}", example_body(method)),
    ]
    for path, body in calls:
        via_pods, local = (
            post(split.gateway, path, json=body),
            post(split.monolith, path, json=body),
        )
        assert via_pods.status_code == 200, (path, via_pods.text)
        drop = {"id", "created", "created_at", "duration_s"}
        assert strip(via_pods.json(), drop) == strip(local.json(), drop), path

    def upload(server: Server) -> dict[str, Any]:
        response = post(
            server,
            "/v1/datasets",
            files={"file": ("sales.csv", b"month,sales\n1,10\n2,12\n3,15\n", "text/csv")},
        )
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    via_pods = upload(split.gateway)
    assert strip(via_pods, {"id", "created_at"}) == strip(
        upload(split.monolith), {"id", "created_at"}
    )
    listed = httpx.get(
        f"{split.gateway.url}/v1/datasets/{via_pods['id']}", headers=split.gateway.headers
    )
    assert listed.status_code == 200


def strip(value: Any, keys: set[str]) -> Any:
    """``value`` without the fields that differ between any two servers (ids, clocks)."""
    if isinstance(value, dict):
        return {k: strip(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [strip(v, keys) for v in value]
    return value


# -- faults ---------------------------------------------------------------------------------------

#: A call per engine the faults below must leave alone (none of them uses a killed pod).
OTHERS = {
    "llm": chat,
    "embeddings": embed,
    "rerank": lambda s: post(s, "/v1/rerank", json={"query": "fox", "documents": SENTENCES}),
    "emotion": lambda s: post(s, "/v1/emotion", json={"input": "fine"}),
}


def rag_search(server: Server) -> httpx.Response:
    return post(server, "/v1/rag/collections/split-kb/search", json={"query": "fox"})


@pytest.mark.parametrize(
    ("kind", "call"),
    [("llm", chat), ("embeddings", embed), ("rag", rag_search)],
)
def test_a_killed_pod_is_a_fast_503_and_is_used_again_when_back(
    split: Split, kind: str, call: Any
) -> None:
    if kind == "rag":
        ensure_collection(split)
    pod = split.pods[kind]
    pod.kill()
    try:
        for _ in range(3):  # the first finds the pod gone, the next ones the circuit open
            began = time.monotonic()
            response = call(split.gateway)
            elapsed = time.monotonic() - began
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["type"] == "service_unavailable"
            assert error["code"] in ("upstream_unavailable", "upstream_circuit_open")
            assert kind in error["message"]
            assert elapsed < 1.0, f"503 took {elapsed:.2f}s"
        readiness = ready(split.gateway)
        assert readiness.status_code == 503
        assert readiness.json()["engines"][kind]["ready"] is False
        engines = readiness.json()["engines"]
        # only the killed pod: a pod that calls it stays ready (its own readiness is its own)
        assert {name for name, engine in engines.items() if not engine["ready"]} == {kind}
        for other, other_call in OTHERS.items():
            if other != kind and other not in users_of(kind):
                assert other_call(split.gateway).status_code == 200, other
    finally:
        pod.start(timeout_s=300)
    wait_until(lambda: ready(split.gateway).status_code == 200, 15, "gateway ready again")
    assert call(split.gateway).status_code == 200


def ensure_collection(split: Split) -> None:
    """The collection the RAG fault searches (made once, in whichever test runs first)."""
    if rag_search(split.gateway).status_code == 404:
        test_rag_search_ids_equal(split)


def test_a_hung_pod_costs_one_timeout_then_fails_fast_until_it_resumes(split: Split) -> None:
    pod = split.pods["embeddings"]
    assert embed(split.gateway).status_code == 200
    pod.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        first = embed(split.gateway)
        assert first.status_code == 504, first.text
        assert time.monotonic() - began < HUNG_POD_TIMEOUT_S + 5
        # the probe the timeout started gets no answer either (within connect_timeout_s)
        wait_until(lambda: circuit(split.gateway, "embeddings") == "open", 10, "circuit open")
        for _ in range(3):
            began = time.monotonic()
            response = embed(split.gateway)
            elapsed = time.monotonic() - began
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "upstream_circuit_open"
            assert elapsed < 1.0, f"503 took {elapsed:.2f}s"
        began = time.monotonic()
        readiness = ready(split.gateway)
        assert time.monotonic() - began < 1.0
        engines = readiness.json()["engines"]
        assert (engines["embeddings"]["ready"], engines["embeddings"]["circuit"]) == (False, "open")
        assert answer(chat(split.gateway))
    finally:
        pod.send_signal(signal.SIGCONT)
    wait_until(lambda: ready(split.gateway).status_code == 200, 15, "gateway ready again")
    assert embed(split.gateway).status_code == 200
