"""A forwarded engine whose service is down, silent, or back again."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess, free_port

pytestmark = pytest.mark.anyio


async def embed(server: ServerProcess) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await client.post("/v1/embeddings", json={"input": "hello"})


async def wait_until_ready(server: ServerProcess, within_s: float = 10.0) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        with anyio.fail_after(within_s):
            while (await client.get("/ready")).status_code != 200:  # noqa: ASYNC110
                await anyio.sleep(0.1)


async def test_pod_down_is_503_and_a_pod_that_comes_back_is_used() -> None:
    pod_port = free_port()
    gateway = ServerProcess(
        [], {"AIPLATFORM_ENGINES__EMBEDDINGS__URL": f"http://127.0.0.1:{pod_port}"}
    )
    gateway.start(wait_ready=False)
    pod = ServerProcess(["--engines", "embeddings"], FAKE_EMBEDDINGS_ENV, port=pod_port)
    try:
        down = await embed(gateway)
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "service_unavailable"
        assert down.json()["error"]["code"] == "upstream_unavailable"
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            assert (await client.get("/ready")).status_code == 503
            assert (await client.get("/health")).status_code == 200

            # the circuit is open: the next call fails at once, without trying the pod
            fast = await embed(gateway)
            assert fast.status_code == 503
            assert fast.json()["error"]["code"] == "upstream_circuit_open"
            assert fast.headers["retry-after"] == "1"
            engine = (await client.get("/ready")).json()["engines"]["embeddings"]
            assert engine["ready"] is False
            assert engine["circuit"] == "open"

        pod.start()
        await wait_until_ready(gateway)  # the breaker's probe sees the pod ready again
        up = await embed(gateway)
        assert up.status_code == 200, up.text

        pod.stop()
        assert (await embed(gateway)).status_code == 503
        pod.start()
        await wait_until_ready(gateway)
        assert (await embed(gateway)).status_code == 200
    finally:
        pod.stop()
        gateway.stop()


async def test_silent_pod_is_504_within_timeout_and_blocks_nothing(silent_port: int) -> None:
    env = {
        "AIPLATFORM_ENGINES__EMBEDDINGS__URL": f"http://127.0.0.1:{silent_port}",
        "AIPLATFORM_ENGINES__EMBEDDINGS__TIMEOUT_S": "1.5",
    }
    gateway = ServerProcess([], env)
    gateway.start(wait_ready=False)
    try:
        outcomes: dict[str, int] = {}

        async def slow_call() -> None:
            outcomes["embed"] = (await embed(gateway)).status_code

        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            with anyio.fail_after(10):  # guards against a hang; not a speed check
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(slow_call)
                    await anyio.sleep(0.2)
                    health = await client.get("/health")
                    assert "embed" not in outcomes  # still waiting on the silent pod...
                    assert health.status_code == 200  # ...while the server answers others
        assert outcomes["embed"] == 504
    finally:
        gateway.stop()
