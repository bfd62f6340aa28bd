"""What the engines report at ``/metrics``: LLM token timing, loaded models and their memory,
forwarded calls, embedding batches, queue depths, job counts.

The engines' instruments belong to the process, so these tests compare a scrape after the
calls with one before them; the gauges (queues, models, jobs) are read from what is running.
"""

from __future__ import annotations

import json
import mmap
import threading
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import generate_latest

from aiplatform.api.chat import ChatCompletionRequest, ModelLoadRequest
from aiplatform.api.openai import EmbeddingRequest, ModelCard
from aiplatform.engines.base import EngineKind, Operation
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.operations import EMBED
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.jobs.store import JobStore
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.operations import CHAT
from aiplatform.engines.llm.settings import LLMSettings
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import EngineUnavailableError
from aiplatform.observability.metrics import app_metrics
from aiplatform.observability.metrics_models import MeasuredModel
from aiplatform.observability.metrics_settings import MetricsSettings
from aiplatform.remote.client import RemoteEngine
from aiplatform.server.app import create_app
from aiplatform.settings import select_engines
from aiplatform.testing import asgi_remote, fake_settings, free_port
from tests.unit.observability.scrape import samples, value

pytestmark = pytest.mark.anyio

MODEL = "fake-llm"


def scrape() -> str:
    """What a fresh app's ``/metrics`` would answer now (the engines' part is the process's)."""
    registry = app_metrics(MetricsSettings(), {}, auth_enabled=False).registry
    assert registry is not None
    return generate_latest(registry).decode()


def fake_llm(**model: Any) -> LLMSettings:
    return msgspec.convert({"models": [{"name": MODEL, "backend": "fake", **model}]}, LLMSettings)


def sse_chunks(text: str) -> list[dict[str, Any]]:
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    return [json.loads(event) for event in events if event != "[DONE]"]


# -- the LLM engine --------------------------------------------------------------------------------


async def test_streamed_chats_fill_the_token_timing_histograms(tmp_path: Path) -> None:
    settings = select_engines(fake_settings(tmp_path), ["llm"])
    before = scrape()
    streamed_tokens: list[int] = []
    async with AsyncTestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
        for prompt in ("one", "two words", "and three more words"):
            response = await client.post(
                "/v1/chat/completions",
                json={
                    "messages": [{"role": "user", "content": prompt}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
            assert response.status_code == 200
            chunks = sse_chunks(response.text)
            deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
            content = [change for change in deltas if change.get("content")]
            streamed_tokens.append(chunks[-1]["usage"]["completion_tokens"])
            assert len(content) == streamed_tokens[-1]  # the fake streams one token a chunk
        app_text = (await client.get("/metrics")).text
    after = scrape()

    def delta(name: str) -> float:
        return value(after, name, model=MODEL) - value(before, name, model=MODEL)

    assert all(tokens > 1 for tokens in streamed_tokens)
    assert delta("aiplatform_llm_time_to_first_token_seconds_count") == 3
    assert delta("aiplatform_llm_inter_token_latency_seconds_count") == sum(
        tokens - 1 for tokens in streamed_tokens
    )
    assert delta("aiplatform_llm_completion_tokens_total") == sum(streamed_tokens)
    assert delta("aiplatform_llm_generation_seconds_total") > 0
    # every instrument's _count equals its +Inf bucket
    assert delta("aiplatform_llm_inter_token_latency_seconds_count") == value(
        after, "aiplatform_llm_inter_token_latency_seconds_bucket", model=MODEL, le="+Inf"
    ) - value(before, "aiplatform_llm_inter_token_latency_seconds_bucket", model=MODEL, le="+Inf")
    assert (
        value(
            app_text,
            "aiplatform_requests_total",
            engine="llm",
            operation="chat",
            status="200",
            tenant="default",
        )
        == 3
    )


async def test_loaded_models_and_their_memory_are_reported_while_loaded() -> None:
    engine = LocalLLMEngine(fake_llm())
    async with engine:
        await engine.wait_loaded()
        loaded = scrape()
        await engine.unload_model(ModelLoadRequest(model=MODEL))
        unloaded = scrape()
    assert value(loaded, "aiplatform_llm_model_loaded", model=MODEL) == 1
    assert value(loaded, "aiplatform_llm_model_memory_bytes", model=MODEL) >= 0
    assert (("model", MODEL),) in samples(loaded, "aiplatform_llm_model_memory_bytes")
    assert value(unloaded, "aiplatform_llm_model_loaded", model=MODEL) == 0
    assert (("model", MODEL),) not in samples(unloaded, "aiplatform_llm_model_memory_bytes")
    # a stopped engine is no longer reported
    assert (("model", MODEL),) not in samples(scrape(), "aiplatform_llm_model_loaded")


class Reporting(FakeLLM):
    """A backend that knows its size."""

    memory_bytes = 123_456


async def test_a_model_that_reports_its_size_is_reported_as_it_says() -> None:
    assert MeasuredModel(Reporting("sized")).memory_bytes == 123_456
    engine = LocalLLMEngine(fake_llm(), models=[Reporting(MODEL)])
    async with engine:
        text = scrape()
    assert value(text, "aiplatform_llm_model_memory_bytes", model=MODEL) == 123_456


def test_a_measured_load_is_what_it_added_to_the_process() -> None:
    hoard: list[mmap.mmap] = []

    class Growing(FakeLLM):
        def load(self) -> None:
            super().load()
            # Fresh pages from the kernel, written: 64 MiB that must become resident. (A bytes
            # object could reuse heap pages an earlier test freed and add nothing to RSS.)
            pages = mmap.mmap(-1, 64 * 2**20)
            pages.write(b"\1" * len(pages))
            hoard.append(pages)

    model = MeasuredModel(Growing("growing"))
    model.load()
    size = model.memory_bytes
    assert size is not None
    assert 32 * 2**20 <= size <= 256 * 2**20
    model.unload()
    assert model.memory_bytes is None
    hoard.pop().close()


# -- forwarded calls -------------------------------------------------------------------------------


async def test_forwarded_calls_are_timed_and_their_failures_counted() -> None:
    local = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    request = EmbeddingRequest(input="hello")
    before = scrape()
    async with local, asgi_remote(local, EmbeddingsSettings()) as remote:
        await remote.invoke(EMBED, request)
        await remote.invoke(EMBED, request)
    unreachable = EmbeddingsSettings(url=f"http://127.0.0.1:{free_port()}", circuit_breaker=False)
    async with RemoteEngine(local.kind, unreachable) as down:
        with pytest.raises(EngineUnavailableError):
            await down.invoke(EMBED, request)
    after = scrape()

    embed = {"engine": "embeddings", "operation": "embed"}
    count = "aiplatform_remote_request_duration_seconds_count"
    assert value(after, count, **embed) - value(before, count, **embed) == 3
    errors = "aiplatform_remote_errors_total"
    assert (
        value(after, errors, engine="embeddings", status="503")
        - value(before, errors, engine="embeddings", status="503")
        == 1
    )
    assert value(after, errors, engine="embeddings", status="200") == 0


async def test_a_forwarded_stream_is_timed_to_its_first_event() -> None:
    local = LocalLLMEngine(fake_llm())
    before = scrape()
    async with local, asgi_remote(local, fake_llm()) as remote:
        request = msgspec.convert(
            {"messages": [{"role": "user", "content": "hi"}], "stream": True},
            ChatCompletionRequest,
        )
        chunks = [chunk async for chunk in remote.stream(CHAT, request)]
    after = scrape()
    assert len(chunks) > 2
    count = "aiplatform_remote_request_duration_seconds_count"
    chat = {"engine": "llm", "operation": "chat"}
    assert value(after, count, **chat) - value(before, count, **chat) == 1


# -- batches, queues and jobs ----------------------------------------------------------------------


async def test_embedding_batches_are_counted_by_size() -> None:
    engine = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    before = scrape()
    async with engine:
        await engine.invoke(EMBED, EmbeddingRequest(input=["a", "b", "c", "d", "e"]))
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("aiplatform_embeddings_batch_size_count") == 1
    assert delta("aiplatform_embeddings_batch_size_sum") == 5
    assert delta("aiplatform_embeddings_batch_size_bucket", le="4.0") == 0
    assert delta("aiplatform_embeddings_batch_size_bucket", le="8.0") == 1


class Ping(msgspec.Struct):
    value: int = 0


PING: Operation[Ping, Ping, Any] = Operation(
    name="ping", method="POST", path="/v1/gated/ping", request=Ping, response=Ping
)


class GatedEngine(LocalEngine):
    """Each call holds the engine's one thread until the gate opens."""

    def __init__(self) -> None:
        super().__init__(GATED, settings=EngineSettings(max_queue=8))
        self.gate = threading.Event()
        self.bind(PING, self.ping)

    def load(self) -> None:
        pass

    async def list_models(self) -> list[ModelCard]:
        return []

    async def ping(self, request: Ping) -> Ping:
        await self.run_blocking(self.gate.wait, 10)
        return request


GATED: EngineKind[EngineSettings] = EngineKind(
    name="metrics-gated",
    summary="a test engine whose calls wait for a gate",
    operations=(PING,),
    settings_type=EngineSettings,
    build_local=lambda settings, _: GatedEngine(),
)


async def test_queue_depth_is_read_from_the_engines_when_scraped() -> None:
    engine = GatedEngine()
    depth, running = "aiplatform_engine_queue_depth", "aiplatform_engine_running"
    async with engine, anyio.create_task_group() as group:
        await engine.wait_loaded()
        idle = scrape()
        for _ in range(3):
            group.start_soon(engine.invoke, PING, Ping())
        with anyio.fail_after(10):
            while engine.queue_depth() != (2, 1):  # noqa: ASYNC110 (threads set no event)
                await anyio.sleep(0.005)
        busy = scrape()
        engine.gate.set()
    assert (value(idle, depth, engine=GATED.name), value(idle, running, engine=GATED.name)) == (
        0,
        0,
    )
    assert (value(busy, depth, engine=GATED.name), value(busy, running, engine=GATED.name)) == (
        2,
        1,
    )
    assert (("engine", GATED.name),) not in samples(scrape(), depth)  # stopped: not reported


def test_jobs_are_counted_by_type_and_state_while_their_file_is_open(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.open()
    try:
        for _ in range(2):
            store.insert(
                "metrics.test", "t", b"", summary=None, subject=None, timeout_s=60, max_waiting=10
            )
        text = scrape()
    finally:
        store.close()
    jobs = {
        dict(labels)["status"]: count
        for labels, count in samples(text, "aiplatform_jobs").items()
        if dict(labels)["type"] == "metrics.test"
    }
    assert jobs == {
        "queued": 2,
        "running": 0,
        "deferred": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert not any(
        dict(labels)["type"] == "metrics.test" for labels in samples(scrape(), "aiplatform_jobs")
    )
