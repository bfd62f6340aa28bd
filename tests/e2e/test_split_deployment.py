"""Split mode for real: one ``aiplatform serve --engines X`` process per engine kind, a gateway
forwarding to all of them, and a monolith beside it for the answers to agree with.

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


@dataclass
class Split:
    gateway: ServerProcess
    pods: dict[str, ServerProcess]
    monolith: ServerProcess


def kind_uses(kind: str) -> tuple[str, ...]:
    return ENGINE_KINDS[kind].uses


def users_of(kind: str) -> set[str]:
    return {other for other in ENGINE_KINDS if kind in kind_uses(other)}


def env_var(kind: str, key: str) -> str:
    return f"AIPLATFORM_ENGINES__{kind.upper()}__{key}"


@pytest.fixture(scope="module")
def split() -> Iterator[Split]:
    ports = {kind: free_port() for kind in ENGINE_KINDS}
    urls = {env_var(kind, "URL"): f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    pods = {
        kind: ServerProcess(
            ["--engines", kind],
            # a pod calls the pods of the kinds it uses
            {
                **REAL_MODELS,
                **{env_var(used, "URL"): urls[env_var(used, "URL")] for used in kind_uses(kind)},
            },
            port=ports[kind],
        )
        for kind in ENGINE_KINDS
    }
    gateway = ServerProcess(
        [], {**urls, env_var("embeddings", "TIMEOUT_S"): str(HUNG_POD_TIMEOUT_S)}
    )
    monolith = ServerProcess([], REAL_MODELS)
    everything = [*pods.values(), monolith]
    try:
        with ThreadPoolExecutor(len(everything)) as pool:
            for started in [pool.submit(server.start, timeout_s=600) for server in everything]:
                started.result()
        gateway.start(timeout_s=120)
        yield Split(gateway, pods, monolith)
    finally:
        for server in [gateway, *everything]:
            server.stop()


def post(server: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=120, **kwargs)


def ready(server: ServerProcess) -> httpx.Response:
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


def circuit(server: ServerProcess, kind: str) -> str | None:
    circuit: str | None = ready(server).json()["engines"][kind]["circuit"]
    return circuit


def test_every_kind_is_a_pod_and_the_gateway_is_ready(split: Split) -> None:
    body = ready(split.gateway).json()
    assert body["status"] == "ready"
    assert set(body["engines"]) == set(ENGINE_KINDS)
    assert all(engine["mode"] == "remote" for engine in body["engines"].values())
    assert all(engine["circuit"] == "closed" for engine in body["engines"].values())


# -- the same calls give the same answers -------------------------------------------------------


def embed(server: ServerProcess) -> httpx.Response:
    return post(server, "/v1/embeddings", json={"input": ["a red fox", "the stock market"]})


def vectors(response: httpx.Response) -> list[list[float]]:
    return [item["embedding"] for item in response.json()["data"]]


def test_embeddings_equal(split: Split) -> None:
    via_pods, local = embed(split.gateway), embed(split.monolith)
    assert via_pods.status_code == 200, via_pods.text
    # equal to float32 rounding: the two processes may split the matrix work differently
    np.testing.assert_allclose(vectors(via_pods), vectors(local), rtol=0, atol=1e-6)


def chat(server: ServerProcess) -> httpx.Response:
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
    def transcribe(server: ServerProcess) -> dict[str, Any]:
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
    def identify(server: ServerProcess) -> list[Any]:
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

    def search(server: ServerProcess) -> list[str]:
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

    def upload(server: ServerProcess) -> dict[str, Any]:
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
    assert httpx.get(f"{split.gateway.url}/v1/datasets/{via_pods['id']}").status_code == 200


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


def rag_search(server: ServerProcess) -> httpx.Response:
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
