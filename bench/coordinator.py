"""Memory coordinator benchmark: what leasing costs a request, and what a model swap costs.

On the fake LLM backend (no weights: the figures are the coordinator's and the residency's own
cost, not a model's load time), in one process:

(a) chats on one loaded model, ``--concurrency`` at a time: chats/s with the coordinator off
    (the baseline) and on with an ample budget (every generation touches its lease twice),
    best of interleaved rounds;
(b) chats alternating between two models, one at a time: with a budget that fits both (the
    baseline: no swap), with one that fits one (every chat unloads the other model first), and
    the same through pods leasing over HTTP (in-process ASGI), where the holder learns at its
    heartbeat (every 0.05 s here) that it must unload. A swap in-process is mostly the
    unload's return of freed memory to the system (a garbage collection and a heap trim).

Each figure is given as a ratio to its baseline in the same run; every chat is checked to have
generated its tokens. Run: ``python -m bench.coordinator [--chats 2000] [--swaps 100]
[--rounds 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import httpx
from litestar import Litestar

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage
from aiplatform.coordinator.core import Coordinator
from aiplatform.coordinator.leases import Leaser, LocalLeaser, RemoteLeaser
from aiplatform.coordinator.routes import coordinator_routes
from aiplatform.engines.llm import CHAT
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.server.errors import EXCEPTION_HANDLERS
from bench.checks import require_count, run_bench

MIB = 2**20
TOKENS = 4


def settings(*names: str) -> LLMSettings:
    models = [
        LLMModelSettings(name=name, backend="fake", memory_mib=60, load="on_demand")
        for name in names
    ]
    return LLMSettings(models=models, max_queue=4096)


async def chat(engine: LocalLLMEngine, model: str) -> None:
    request = ChatCompletionRequest(
        model=model, messages=[ChatMessage(role="user", content="hi")], max_tokens=TOKENS
    )
    reply = await engine.invoke(CHAT, request)
    require_count(f"tokens of a chat with {model}", reply.usage.completion_tokens, TOKENS)


async def chats_per_second(leaser: Leaser | None, chats: int, concurrency: int) -> float:
    async with LocalLLMEngine(settings("m"), leaser=leaser) as engine:
        await engine.wait_loaded()
        await chat(engine, "m")
        limiter = anyio.CapacityLimiter(concurrency)

        async def one() -> None:
            async with limiter:
                await chat(engine, "m")

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(chats):
                tg.start_soon(one)
        return chats / (time.perf_counter() - started)


async def alternating(engine: LocalLLMEngine, swaps: int) -> float:
    """Seconds per chat, alternating between the two models."""
    await chat(engine, "a")
    started = time.perf_counter()
    for index in range(swaps):
        await chat(engine, "b" if index % 2 == 0 else "a")
    return (time.perf_counter() - started) / swaps


async def swap_in_process(budget_mib: int, swaps: int) -> float:
    leaser = LocalLeaser(Coordinator({"cpu": budget_mib * MIB}), holder="bench")
    async with LocalLLMEngine(settings("a", "b"), leaser=leaser) as engine:
        await engine.wait_loaded()
        return await alternating(engine, swaps)


@asynccontextmanager
async def pods(service: Litestar) -> AsyncIterator[tuple[LocalLLMEngine, LocalLLMEngine]]:
    async with AsyncExitStack() as stack:
        engines = []
        for name in ("a", "b"):
            leaser = RemoteLeaser(
                "http://coordinator",
                holder=f"pod-{name}",
                service_token=None,
                wait_timeout_s=30,
                transport=httpx.ASGITransport(app=service),  # type: ignore[arg-type]
            )
            await stack.enter_async_context(leaser)
            engine = LocalLLMEngine(settings(name), leaser=leaser)
            engines.append(await stack.enter_async_context(engine))
        yield engines[0], engines[1]


async def swap_over_http(swaps: int) -> float:
    coordinator = Coordinator({"cpu": 100 * MIB}, lease_ttl_s=0.2)  # heartbeats every 0.05 s
    service = Litestar(
        route_handlers=coordinator_routes(coordinator, serve=True),
        exception_handlers=EXCEPTION_HANDLERS,
    )
    async with pods(service) as (pod_a, pod_b):
        await chat(pod_a, "a")
        started = time.perf_counter()
        for index in range(swaps):
            await chat(pod_b if index % 2 == 0 else pod_a, "b" if index % 2 == 0 else "a")
        return (time.perf_counter() - started) / swaps


async def bench(chats: int, swaps: int, concurrency: int, rounds: int) -> None:
    print(
        f"(a) {chats} chats of {TOKENS} tokens on one model, {concurrency} at a time, "
        f"best of {rounds} interleaved rounds"
    )
    off = on = 0.0
    for _ in range(rounds):
        off = max(off, await chats_per_second(None, chats, concurrency))
        ample = LocalLeaser(Coordinator({"cpu": 1 << 40}), holder="bench")
        on = max(on, await chats_per_second(ample, chats, concurrency))
    print(f"    coordinator off   {off:9.0f} chats/s")
    print(f"    coordinator on    {on:9.0f} chats/s   x{on / off:.2f} of off")

    print(f"(b) {swaps} chats alternating between two models, one at a time")
    both = await swap_in_process(200, swaps)
    one = await swap_in_process(100, swaps)
    http = await swap_over_http(max(swaps // 5, 4))
    print(f"    budget fits both          {both * 1000:8.2f} ms a chat")
    print(f"    budget fits one           {one * 1000:8.2f} ms a chat   x{one / both:.1f}")
    print(f"    pods over HTTP, fits one  {http * 1000:8.2f} ms a chat   x{http / both:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=2000)
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    anyio.run(bench, args.chats, args.swaps, args.concurrency, args.rounds)


if __name__ == "__main__":
    run_bench(main)
