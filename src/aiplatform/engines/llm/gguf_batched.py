"""Batched decoding on llama.cpp: every running generation advances in one decode call.

One llama.cpp context holds a sequence per slot. A scheduler thread admits waiting requests
(prefilling their prompts), then repeatedly decodes one token for every running sequence in a
single batch and samples each with its own sampler chain (temperature, top-p, penalties,
grammar, seed). On a CPU the weights are read once per step for all sequences instead of once
per sequence, so aggregate tokens/s grows with the number of concurrent streams.
"""

from __future__ import annotations

import codecs
import queue
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiplatform.engines.llm.generation import (
    FinishReason,
    Piece,
    PreparedPrompt,
    SamplingParams,
    TokenChoice,
    token_choice,
)
from aiplatform.engines.llm.gguf import (
    LlamaCppModel,
    grammar_text,
    resolve_model_path,
    token_text,
)
from aiplatform.engines.llm.pieces import PieceAssembler
from aiplatform.errors import InvalidRequestError

__all__ = ["BatchedLlamaCppModel"]

_END = object()


@dataclass(eq=False)
class _Job:
    prompt: PreparedPrompt
    params: SamplingParams
    cancelled: threading.Event
    out: queue.Queue[object] = field(default_factory=queue.Queue)
    seq: int = -1
    sampler: Any = None
    pieces: PieceAssembler | None = None
    decoder: Any = None
    position: int = 0
    last: int = 0


class BatchedLlamaCppModel(LlamaCppModel):
    """Same templates, tokenization and settings as :class:`LlamaCppModel`; one shared context."""

    def load(self) -> None:
        import llama_cpp
        from llama_cpp import Llama

        path = resolve_model_path(self._settings.path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        settings = self._settings
        # The holder owns the weights (and tokenizes, and knows the chat template).
        self._vocab = Llama(
            model_path=str(path), n_ctx=8, n_gpu_layers=settings.gpu_layers, verbose=False
        )
        self._configure_template()
        self._vocab_pointer = llama_cpp.llama_model_get_vocab(self._vocab._model.model)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = settings.context_length * settings.slots
        params.n_batch = 512
        params.n_ubatch = 512
        params.n_seq_max = settings.slots
        params.kv_unified = False
        threads = self._threads()
        params.n_threads = threads
        params.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self._vocab._model.model, params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create the batched context")
        self._batch = llama_cpp.llama_batch_init(512, 0, settings.slots)
        self._pending: queue.Queue[_Job] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._schedule, name=f"llm-batch-{self.name}", daemon=True
        )
        self._thread.start()

    def unload(self) -> None:
        import llama_cpp

        if getattr(self, "_thread", None) is None:
            return
        self._stopping.set()
        self._thread.join()
        self._thread = None  # type: ignore[assignment]
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        self._vocab.close()
        self._vocab = None

    def generate(
        self, prompt: PreparedPrompt, params: SamplingParams, cancelled: threading.Event
    ) -> Iterator[Piece]:
        job = _Job(prompt, params, cancelled)
        self._pending.put(job)
        while True:
            item = job.out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Piece)
            yield item

    # -- the scheduler thread ------------------------------------------------------------------

    def _schedule(self) -> None:
        free = list(range(self._settings.slots))
        running: list[_Job] = []
        while not self._stopping.is_set():
            self._admit(free, running)
            if running:
                self._step(free, running)
        for job in running:
            self._end(job, free, RuntimeError("the model is unloading"))

    def _admit(self, free: list[int], running: list[_Job]) -> None:
        """Start waiting jobs on free sequences (waiting a moment when nothing runs)."""
        while free:
            try:
                job = self._pending.get(timeout=0 if running else 0.05)
            except queue.Empty:
                return
            if job.cancelled.is_set():
                job.out.put(_END)
                continue
            job.seq = free.pop()
            try:
                started = self._start(job)
            except Exception as exc:
                self._end(job, free, exc)
                continue
            if started:
                running.append(job)
            else:
                self._end(job, free)

    def _step(self, free: list[int], running: list[_Job]) -> None:
        """Decode one token for every running job in a single batch."""
        import llama_cpp

        batch = self._batch
        batch.n_tokens = len(running)
        for index, job in enumerate(running):
            batch.token[index] = job.last
            batch.pos[index] = job.position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = job.seq
            batch.logits[index] = True
        if llama_cpp.llama_decode(self._ctx, batch) != 0:
            for job in running:
                self._end(job, free, RuntimeError("llama.cpp failed to decode a batch"))
            running.clear()
            return
        for index, job in enumerate(list(running)):
            job.position += 1
            if job.cancelled.is_set() or not self._advance(job, index):
                self._end(job, free)
                running.remove(job)

    def _start(self, job: _Job) -> bool:
        """Prefill the prompt on the job's sequence and take its first token; False when that
        already ended it."""
        import llama_cpp

        params = job.params
        job.sampler = self._sampler(params)
        job.pieces = PieceAssembler(
            params.stop + job.prompt.stop, params.max_tokens, logprobs=params.logprobs is not None
        )
        job.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens = list(job.prompt.tokens)
        batch = self._batch
        for start in range(0, len(tokens), 512):
            chunk = tokens[start : start + 512]
            batch.n_tokens = len(chunk)
            for index, token in enumerate(chunk):
                batch.token[index] = token
                batch.pos[index] = start + index
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = job.seq
                batch.logits[index] = start + index == len(tokens) - 1
            if llama_cpp.llama_decode(self._ctx, batch) != 0:
                raise RuntimeError("llama.cpp failed to read the prompt")
        job.position = len(tokens)
        return self._advance(job, (len(tokens) - 1) % 512)

    def _advance(self, job: _Job, index: int) -> bool:
        """Sample the job's next token from batch row ``index``; False when the job is done."""
        import llama_cpp

        assert job.pieces is not None
        token = llama_cpp.llama_sampler_sample(job.sampler, self._ctx, index)
        if llama_cpp.llama_vocab_is_eog(self._vocab_pointer, token):
            self._finish(job, "stop")
            return False
        text = job.decoder.decode(self._vocab.detokenize([token], special=False))
        choice = None
        if job.params.logprobs is not None:
            choice = self._token_choice(index, token, text, job.params.logprobs)
        piece = job.pieces.add(text, choice)
        if piece is not None:
            job.out.put(piece)
        if job.pieces.done:
            self._finish(job, "length")
            return False
        job.last = token
        return True

    @staticmethod
    def _finish(job: _Job, reason: FinishReason) -> None:
        assert job.pieces is not None
        last = job.pieces.finish(reason, job.decoder.decode(b"", final=True))
        if last is not None:
            job.out.put(last)

    def _end(self, job: _Job, free: list[int], error: BaseException | None = None) -> None:
        if error is not None:
            job.out.put(error)
        job.out.put(_END)
        if job.seq >= 0:
            self._release(job)
            free.append(job.seq)
            job.seq = -1

    def _release(self, job: _Job) -> None:
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), job.seq, -1, -1)
        if job.sampler is not None:
            llama_cpp.llama_sampler_free(job.sampler)
            job.sampler = None

    def _sampler(self, params: SamplingParams) -> Any:
        import llama_cpp

        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        grammar = grammar_text(params)
        if grammar is not None:
            sampler = llama_cpp.llama_sampler_init_grammar(
                self._vocab_pointer, grammar.encode(), b"root"
            )
            if not sampler:
                llama_cpp.llama_sampler_free(chain)
                raise InvalidRequestError(
                    "response_format json_schema cannot be held by a grammar",
                    param="response_format",
                )
            add(chain, sampler)
        if params.presence_penalty or params.frequency_penalty:
            add(
                chain,
                llama_cpp.llama_sampler_init_penalties(
                    64, 1.0, params.frequency_penalty, params.presence_penalty
                ),
            )
        if params.temperature == 0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_p < 1.0:
                add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
            seed = params.seed if params.seed is not None else random.getrandbits(31)
            add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def _token_choice(self, index: int, token: int, text: str, alternatives: int) -> TokenChoice:
        import llama_cpp
        import numpy as np

        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._ctx, index), shape=(self._vocab.n_vocab(),)
        )
        return token_choice(logits, token, text, alternatives, lambda i: token_text(self._vocab, i))
