"""``/metrics`` of real ``aiplatform serve`` processes: a gateway forwarding embeddings to a pod
that requires credentials. Each side counts what it served, exactly (a fresh process), and the
scrape needs no credential while the API does."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aiplatform.testing import POD_AUTH
from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess
from tests.unit.observability.scrape import Labels, samples, value

EMBED = {"engine": "embeddings", "operation": "embed"}


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embeddings engine as its own service, requiring the pods' credentials."""
    auth = POD_AUTH.env(tmp_path_factory.mktemp("pod-auth"))
    scraper = {"AIPLATFORM_METRICS__TOKEN": SCRAPE_TOKEN}
    server = ServerProcess(["--engines", "embeddings"], {**FAKE_EMBEDDINGS_ENV, **auth, **scraper})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(pod: ServerProcess) -> Iterator[ServerProcess]:
    """The LLM in-process, embeddings forwarded to ``pod``."""
    env = {
        "AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url,
        "AIPLATFORM_AUTH__SERVICE_TOKEN": POD_AUTH.service_token,
    }
    server = ServerProcess(["--engines", "embeddings,llm"], env)
    server.start()
    yield server
    server.stop()


SCRAPE_TOKEN = "scrape-" + "m" * 32


def labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def of_engine(text: str, engine: str) -> dict[Labels, float]:
    """The request counts of ``engine``'s routes."""
    counted = samples(text, "aiplatform_requests_total")
    return {key: count for key, count in counted.items() if dict(key)["engine"] == engine}


def scrape(server: ServerProcess, token: str | None = None) -> str:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


def test_each_process_counts_what_it_served(pod: ServerProcess, gateway: ServerProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for text in ("one", "two", "three"):
            assert client.post("/v1/embeddings", json={"input": text}).status_code == 200
        assert client.post("/v1/embeddings", json={}).status_code == 400  # refused here
        chat = client.post(
            "/v1/chat/completions",
            json={
                "model": FAKE_LLM_MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
            },
        )
        assert chat.status_code == 200
    assert httpx.post(f"{pod.url}/v1/embeddings", json={"input": "x"}).status_code == 401

    at_gateway = scrape(gateway)
    assert of_engine(at_gateway, "embeddings") == {
        labels(**EMBED, status="200", tenant="default"): 3,
        labels(**EMBED, status="400", tenant="default"): 1,
    }
    assert of_engine(at_gateway, "llm") == {
        labels(engine="llm", operation="chat", status="200", tenant="default"): 1
    }
    forwarded = "aiplatform_remote_request_duration_seconds_count"
    assert value(at_gateway, forwarded, **EMBED) == 3
    ttft = "aiplatform_llm_time_to_first_token_seconds_count"
    assert value(at_gateway, ttft, model=FAKE_LLM_MODEL) == 1
    assert value(at_gateway, "aiplatform_llm_model_loaded", model=FAKE_LLM_MODEL) == 1
    # only the engines running in this process have queues here
    queues = samples(at_gateway, "aiplatform_engine_queue_depth")
    assert (("engine", "llm"),) in queues
    assert (("engine", "embeddings"),) not in queues
    assert value(at_gateway, "process_resident_memory_bytes") > 0

    assert httpx.get(f"{pod.url}/metrics").status_code == 401  # the scraper's token only
    at_pod = scrape(pod, SCRAPE_TOKEN)
    assert of_engine(at_pod, "embeddings") == {
        labels(**EMBED, status="200", tenant="default"): 3,  # the gateway's tenant
        labels(**EMBED, status="401", tenant="_none"): 1,
    }
    assert value(at_pod, "aiplatform_embeddings_batch_size_sum") == 3
    assert value(at_pod, forwarded, **EMBED) == 0
