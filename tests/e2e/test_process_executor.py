"""The process executor: pure-Python work that holds the GIL runs in worker processes, so an LLM
stream served by the same server keeps its pace; a worker that dies fails only its own call.

The server here is a child process that serves a test-only engine kind (``burner``: a
:class:`LocalEngine` on worker processes) next to the fake LLM. A stream's pace is compared with
the same stream on the idle server, measured in the same run (a ratio of median token gaps).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from aiplatform.api.openai import ModelCard
from aiplatform.engines.base import EngineKind, Needs, Operation
from aiplatform.engines.local import ExecutorKind, LocalEngine
from aiplatform.engines.settings import EngineSettings
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = "paced"
TOKENS = 24


class Burn(msgspec.Struct, kw_only=True):
    seconds: float = 0.0
    exit_code: int | None = None


class Burned(msgspec.Struct, kw_only=True):
    spins: int
    pid: int


BURN: Operation[Burn, Burned, Any] = Operation(
    name="burn", method="POST", path="/v1/test/burn", request=Burn, response=Burned
)


def burn(request: Burn) -> Burned:
    """Runs in a worker process: pure Python that holds the GIL for ``seconds``."""
    if request.exit_code is not None:
        os._exit(request.exit_code)
    end = time.monotonic() + request.seconds
    spins = 0
    while time.monotonic() < end:
        spins += sum(i * i for i in range(200)) & 1 or 1
    return Burned(spins=spins, pid=os.getpid())


class BurnerEngine(LocalEngine):
    def __init__(self, executor: ExecutorKind) -> None:
        super().__init__(BURNER, settings=EngineSettings(max_concurrency=1), executor=executor)
        self.bind(BURN, self.burn)

    def load(self) -> None:
        pass

    async def list_models(self) -> list[ModelCard]:
        return []

    async def burn(self, request: Burn) -> Burned:
        return await self.call(burn, request)


def _build(settings: EngineSettings, _: Needs) -> BurnerEngine:
    return BurnerEngine("processes")


BURNER: EngineKind[EngineSettings] = EngineKind(
    name="burner",
    summary="burns CPU in pure Python (tests)",
    operations=(BURN,),
    settings_type=EngineSettings,
    build_local=_build,
)


def serve(port: int, executor: ExecutorKind = "processes") -> None:
    """The server process: the fake LLM and the burner, in-process."""
    import uvicorn

    from aiplatform.engines.llm.engine import LocalLLMEngine
    from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
    from aiplatform.server.app import create_app
    from aiplatform.settings import Settings

    model = LLMModelSettings(name=MODEL, backend="fake", slots=2, fake_token_delay_ms=20)
    llm = LocalLLMEngine(LLMSettings(models=[model]))
    app = create_app(Settings(), engines={"llm": llm, "burner": BurnerEngine(executor)})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = free_port()
    command = f"from tests.e2e.test_process_executor import serve; serve({port})"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", command], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def token_gaps(url: str) -> list[float]:
    """Seconds between the content chunks of one streamed chat completion, as received."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "count slowly"}],
        "max_tokens": TOKENS,
        "stream": True,
    }
    arrivals: list[float] = []
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.perf_counter())
    assert len(arrivals) >= TOKENS // 2
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


def burner_running(url: str) -> bool:
    status = httpx.get(url + "/ready", timeout=5).json()["engines"]["burner"]
    return bool(status["running"])


def test_a_stream_keeps_its_pace_while_workers_burn_cpu(url: str) -> None:
    idle = token_gaps(url) + token_gaps(url)
    burns: list[httpx.Response] = []
    burner = threading.Thread(
        target=lambda: burns.append(
            httpx.post(url + "/v1/test/burn", json={"seconds": 6.0}, timeout=60)
        )
    )
    burner.start()
    try:
        deadline = time.monotonic() + 30
        while not burner_running(url):
            assert time.monotonic() < deadline, "the burn never started"
            time.sleep(0.02)
        loaded = token_gaps(url) + token_gaps(url)
        assert burner_running(url)  # the whole measurement ran beside the burn
    finally:
        burner.join(60)
    assert burns
    assert burns[0].status_code == 200
    assert burns[0].json()["pid"] != os.getpid()
    ratio = statistics.median(loaded) / statistics.median(idle)
    assert ratio <= 2.0, (statistics.median(idle), statistics.median(loaded))


def test_a_worker_that_dies_fails_its_call_and_the_next_call_works(url: str) -> None:
    died = httpx.post(url + "/v1/test/burn", json={"exit_code": 7}, timeout=60)
    assert died.status_code == 500
    error = died.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("server_error", "worker_died")
    after = httpx.post(url + "/v1/test/burn", json={"seconds": 0.01}, timeout=60)
    assert after.status_code == 200
    assert after.json()["spins"] >= 1
