"""Authentication on real servers: the openai SDK with an API key, and a gateway calling its pod
with the service credential while the pod refuses everyone else."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
import websockets
import websockets.sync.client

from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess, admin_api_key

ADMIN_PASSWORD = "a-long-enough-admin-password"
SERVICE_TOKEN = "service-" + "x" * 40
AUTH_ENV = {
    "AIPLATFORM_AUTH__ENABLED": "true",
    "AIPLATFORM_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD,
    "AIPLATFORM_AUTH__SERVICE_TOKEN": SERVICE_TOKEN,
    "AIPLATFORM_AUTH__PASSWORD_TIME_COST": "1",
    "AIPLATFORM_AUTH__PASSWORD_MEMORY_KIB": "8",
    **FAKE_EMBEDDINGS_ENV,
}


def data_env(server_name: str, folder: str) -> dict[str, str]:
    return {"AIPLATFORM_AUTH__DATA_DIR": f"{folder}/{server_name}-auth"}


@pytest.fixture(scope="module")
def split(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    folder = str(tmp_path_factory.mktemp("auth"))
    pod = ServerProcess(["--engines", "embeddings"], {**AUTH_ENV, **data_env("pod", folder)})
    pod.start()
    gateway = ServerProcess(
        [],
        {
            **AUTH_ENV,
            **data_env("gateway", folder),
            "AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url,
        },
    )
    try:
        gateway.start()
        yield gateway, pod
    finally:
        gateway.stop()
        pod.stop()


def test_the_openai_sdk_works_with_an_api_key(split: tuple[ServerProcess, ServerProcess]) -> None:
    gateway, _ = split
    client = openai.OpenAI(
        api_key=admin_api_key(gateway, ADMIN_PASSWORD, "sdk"),
        base_url=f"{gateway.url}/v1",
        max_retries=0,
    )
    embedded = client.embeddings.create(input=["hello", "world"], model="all-MiniLM-L6-v2")
    assert len(embedded.data) == 2
    chat = client.chat.completions.create(
        model=FAKE_LLM_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.choices[0].message.content
    wrong = openai.OpenAI(api_key="aip_0.nope", base_url=f"{gateway.url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(input="hello", model="all-MiniLM-L6-v2")


def test_a_pod_answers_its_gateway_and_refuses_everyone_else(
    split: tuple[ServerProcess, ServerProcess],
) -> None:
    gateway, pod = split
    key = admin_api_key(gateway, ADMIN_PASSWORD, "sdk")
    through_gateway = httpx.post(
        f"{gateway.url}/v1/embeddings",
        json={"input": "hello"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert through_gateway.status_code == 200, through_gateway.text
    direct = httpx.post(f"{pod.url}/v1/embeddings", json={"input": "hello"})
    assert direct.status_code == 401
    spoofed = httpx.post(
        f"{pod.url}/v1/embeddings",
        json={"input": "hello"},
        headers={"x-aiplatform-tenant": "someone"},
    )
    assert spoofed.status_code == 403
    foreign_key = httpx.post(
        f"{pod.url}/v1/embeddings",
        json={"input": "hello"},
        headers={"authorization": f"Bearer {key}"},  # the gateway's key, unknown to the pod
    )
    assert foreign_key.status_code == 401
    assert httpx.get(f"{pod.url}/ready").status_code == 200


def test_a_websocket_needs_a_token_which_a_browser_sends_as_a_subprotocol(
    split: tuple[ServerProcess, ServerProcess],
) -> None:
    gateway, _ = split
    url = gateway.url.replace("http://", "ws://") + "/v1/ws/transcribe"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(url, open_timeout=10).close()
    assert refused.value.response.status_code == 403
    key = admin_api_key(gateway, ADMIN_PASSWORD, "sdk")
    with websockets.sync.client.connect(
        url,
        subprotocols=["aiplatform", f"bearer.{key}"],
        open_timeout=10,  # type: ignore[list-item]
    ) as socket:
        assert socket.subprotocol == "aiplatform"
    with websockets.sync.client.connect(
        url, additional_headers={"authorization": f"Bearer {key}"}, open_timeout=10
    ) as socket:
        assert socket.subprotocol is None
