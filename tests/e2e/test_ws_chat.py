"""WebSocket chat on real servers: a gateway with authentication on whose LLM is forwarded to a
pod (``aiplatform serve --engines llm``), so every generation streams over the pod's SSE.

Two conversations share one socket and each ends as the non-streamed answer; a cancel reaches
the pod and frees its only slot long before the generation would have ended; a socket without
a token is refused before it opens, and a browser's token as a subprotocol is taken.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import websockets
import websockets.sync.client

from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess, admin_api_key

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "a-long-enough-admin-password"
SERVICE_TOKEN = "service-" + "y" * 40
#: The fake model at a pace where two generations overlap; "slow" has one slot and takes
#: 24 x 1 s to answer, far longer than any wait below.
MODELS = {
    "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps(
        [
            {"name": FAKE_LLM_MODEL, "backend": "fake", "fake_token_delay_ms": 20},
            {"name": "slow", "backend": "fake", "slots": 1, "fake_token_delay_ms": 1000},
        ]
    )
}
AUTH_ENV = {
    "AIPLATFORM_AUTH__ENABLED": "true",
    "AIPLATFORM_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD,
    "AIPLATFORM_AUTH__SERVICE_TOKEN": SERVICE_TOKEN,
    "AIPLATFORM_AUTH__PASSWORD_TIME_COST": "1",
    "AIPLATFORM_AUTH__PASSWORD_MEMORY_KIB": "8",
    **FAKE_EMBEDDINGS_ENV,
    **MODELS,
}
#: A guard against waiting for the abandoned answer to end on its own (24 s), not a speed check.
GUARD_S = 12.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = Path(tmp_path_factory.mktemp("ws-chat"))
    pod_env = {**AUTH_ENV, "AIPLATFORM_AUTH__DATA_DIR": str(folder / "pod")}
    pod = ServerProcess(["--engines", "llm"], pod_env)
    pod.start()
    gateway = ServerProcess(
        [],
        {
            **AUTH_ENV,
            "AIPLATFORM_AUTH__DATA_DIR": str(folder / "gateway"),
            "AIPLATFORM_ENGINES__LLM__URL": pod.url,
        },
    )
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        pod.stop()


@pytest.fixture(scope="module")
def key(gateway: ServerProcess) -> str:
    return admin_api_key(gateway, ADMIN_PASSWORD, "chat")


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://") + "/v1/ws/chat"


def chat(content: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **fields}


async def events_until(socket: websockets.ClientConnection, *idents: str) -> list[dict[str, Any]]:
    """Events until each generation named has had its last one."""
    events: list[dict[str, Any]] = []
    open_ = set(idents)
    with anyio.fail_after(GUARD_S):
        while open_:
            event = json.loads(await socket.recv())
            events.append(event)
            if event["type"] in {"done", "error", "cancelled"}:
                open_.discard(event.get("id"))
    return events


def text_of(events: list[dict[str, Any]], ident: str) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if event["type"] == "chunk" and event["id"] == ident
        for choice in event["chunk"]["choices"]
    )


def slow_active(gateway: ServerProcess, key: str) -> int:
    """Generations running on the pod's one-slot model (asked through the gateway)."""
    states = httpx.get(
        f"{gateway.url}/v1/llm/models", headers={"authorization": f"Bearer {key}"}, timeout=5
    ).json()["data"]
    return int(next(state["active"] for state in states if state["id"] == "slow"))


async def test_two_conversations_through_a_gateway(gateway: ServerProcess, key: str) -> None:
    headers = {"authorization": f"Bearer {key}"}
    requests = {"a": chat("Tell me about foxes.", seed=1), "b": chat("And cats?", seed=2)}
    async with websockets.connect(ws_url(gateway), additional_headers=headers) as socket:
        for ident, request in requests.items():
            await socket.send(json.dumps({"type": "chat", "id": ident, "request": request}))
        events = await events_until(socket, *requests)
    order = [event["id"] for event in events if event["type"] == "chunk"]
    assert order.index("b") < len(order) - 1 - order[::-1].index("a"), "not interleaved"
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        for ident, request in requests.items():
            answer = (await client.post("/v1/chat/completions", json=request)).json()
            assert text_of(events, ident) == answer["choices"][0]["message"]["content"]
            [done] = [e for e in events if e["type"] == "done" and e["id"] == ident]
            assert done["usage"] == answer["usage"]


async def test_cancel_reaches_the_pod_and_frees_its_only_slot(
    gateway: ServerProcess, key: str
) -> None:
    headers = {"authorization": f"Bearer {key}"}
    long = {"type": "chat", "id": "long", "request": chat("everything", model="slow")}
    async with websockets.connect(ws_url(gateway), additional_headers=headers) as socket:
        await socket.send(json.dumps(long))
        with anyio.fail_after(GUARD_S):
            first = [json.loads(await socket.recv()) for _ in range(2)]  # the role, a word
        assert [event["type"] for event in first] == ["chunk", "chunk"]
        assert await anyio.to_thread.run_sync(slow_active, gateway, key) == 1
        await socket.send(json.dumps({"type": "cancel", "id": "long"}))
        events = await events_until(socket, "long")
        assert events[-1] == {"type": "cancelled", "id": "long"}
        deadline = time.monotonic() + GUARD_S
        while await anyio.to_thread.run_sync(slow_active, gateway, key):
            assert time.monotonic() < deadline, "the pod's generation did not stop"
            await anyio.sleep(0.05)
        # the only slot serves the next generation at once
        again = {"type": "chat", "id": "long", "request": chat("hi", model="slow", max_tokens=1)}
        await socket.send(json.dumps(again))
        events = await events_until(socket, "long")
    assert events[-1]["type"] == "done"
    assert events[-1]["usage"]["completion_tokens"] == 1


def test_a_socket_needs_a_token_which_a_browser_sends_as_a_subprotocol(
    gateway: ServerProcess, key: str
) -> None:
    url = ws_url(gateway)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(url, open_timeout=10).close()
    assert refused.value.response.status_code == 403  # closed (1008) before it was accepted
    with websockets.sync.client.connect(
        url,
        subprotocols=["aiplatform", f"bearer.{key}"],  # type: ignore[list-item]
        open_timeout=10,
    ) as socket:
        assert socket.subprotocol == "aiplatform"
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=GUARD_S)) == {"type": "pong"}
        request = chat("hi", max_tokens=3)
        socket.send(json.dumps({"type": "chat", "id": "a", "request": request}))
        events = []
        while not events or events[-1]["type"] == "chunk":
            events.append(json.loads(socket.recv(timeout=GUARD_S)))
    assert events[-1]["type"] == "done"
    assert events[-1]["usage"]["completion_tokens"] == 3
