"""The transformers backend: a Hugging Face causal LM from a local folder, on torch.

One model in memory serves every slot (inference only; each generation keeps its own KV cache).
Decoding is token by token with our own sampling, so stop sequences, the token limit, seeds,
log-probabilities and cancellation behave as on llama.cpp. Grammar-held output (JSON schema,
required tool calls) needs llama.cpp and is refused here with a 400.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
from aiplatform.engines.llm.settings import LLMModelSettings
from aiplatform.engines.llm.templates import ChatTemplate, Message, RenderedPrompt
from aiplatform.errors import InvalidRequestError

__all__ = ["TransformersModel"]


class TransformersModel(ConfiguredModel):
    def __init__(self, settings: LLMModelSettings) -> None:
        super().__init__(settings)
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos: set[int] = set()

    def load(self) -> None:
        folder = Path(self._settings.path or "")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} is not a transformers model folder")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if self._settings.threads:
            torch.set_num_threads(self._settings.threads)
        dtype = None if self._settings.dtype == "auto" else getattr(torch, self._settings.dtype)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        auto_model: Any = transformers.AutoModelForCausalLM
        model = auto_model.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
        model.to(self._settings.device).eval()
        eos = model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            self._eos.add(int(tokenizer.eos_token_id))
        own = None
        if tokenizer.chat_template:

            def own(messages: Sequence[Message]) -> RenderedPrompt:
                text = tokenizer.apply_chat_template(
                    list(messages), tokenize=False, add_generation_prompt=True
                )
                return RenderedPrompt(str(text), ())

        self._template = ChatTemplate(
            self.name,
            configured=self._settings.chat_template,
            own=own,
            family=getattr(model.config, "model_type", None),
        )
        self._tokenizer, self._model = tokenizer, model

    def unload(self) -> None:
        self._model = None
        self._tokenizer = None

    def _tokenize(self, text: str) -> Sequence[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self, prompt: PreparedPrompt, params: SamplingParams, cancelled: threading.Event
    ) -> Iterator[Piece]:
        if params.json_mode or params.json_schema is not None:
            raise InvalidRequestError(
                "JSON output held to a schema (response_format, required tool calls) needs a "
                "llama_cpp model; this model runs on transformers.",
                param="response_format",
            )
        import torch

        model, tokenizer = self._model, self._tokenizer
        generator = torch.Generator(device="cpu")
        if params.seed is not None:
            generator.manual_seed(params.seed)
        pieces = PieceAssembler(
            params.stop + prompt.stop, params.max_tokens, logprobs=params.logprobs is not None
        )
        detokenizer = _Detokenizer(tokenizer)
        counts: dict[int, int] = {}
        cache = _new_cache(model)
        inputs = torch.tensor([list(prompt.tokens)], device=model.device)
        finish: FinishReason = "length"
        with torch.inference_mode():
            while True:
                if cancelled.is_set():
                    return
                # The cache object is filled in place by each forward call.
                output = model(input_ids=inputs, use_cache=True, **{_cache_argument(model): cache})
                logits = output.logits[0, -1].float()
                token = _sample(logits, params, counts, generator)
                if token in self._eos:
                    finish = "stop"
                    break
                counts[token] = counts.get(token, 0) + 1
                choice = _choice(logits, token, params.logprobs, tokenizer)
                piece = pieces.add(detokenizer.add(token), choice)
                if piece is not None:
                    yield piece
                if pieces.done:
                    break
                inputs = torch.tensor([[token]], device=model.device)
        last = pieces.finish(finish, detokenizer.rest())
        if last is not None:
            yield last


def _new_cache(model: Any) -> Any:
    """An empty key/value cache for one generation."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # releases before the cache took the model's config
        return DynamicCache()


def _cache_argument(model: Any) -> str:
    """The name ``model.forward`` takes its cache by: ``cache`` in current transformers,
    ``past_key_values`` (deprecated there) in older releases."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class _Detokenizer:
    """Text of a growing token sequence, a token at a time, without decoding it all again.

    Decodes a short window: the tokens since the last emitted text, with a few before them for
    context (a token's text can depend on its neighbours, e.g. leading spaces). Text that ends in
    a replacement character is a character split over tokens and waits for the next token.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._tokens: list[int] = []
        self._prefix = 0  # window start: context for the tokens after ``_read``
        self._read = 0  # tokens before this are emitted

    def add(self, token: int) -> str:
        self._tokens.append(token)
        before = _decode(self._tokenizer, self._tokens[self._prefix : self._read])
        text = _decode(self._tokenizer, self._tokens[self._prefix :])
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._tokens)
        return text[len(before) :]

    def rest(self) -> str:
        """What is still held back (an incomplete character), at the end of the generation."""
        before = _decode(self._tokenizer, self._tokens[self._prefix : self._read])
        return _decode(self._tokenizer, self._tokens[self._prefix :])[len(before) :]


def _decode(tokenizer: Any, tokens: list[int]) -> str:
    return str(
        tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    )


def _sample(logits: Any, params: SamplingParams, counts: dict[int, int], generator: Any) -> int:
    import torch

    scores = logits.clone()
    if counts and (params.presence_penalty or params.frequency_penalty):
        seen = torch.tensor(list(counts), device=scores.device)
        times = torch.tensor(list(counts.values()), dtype=scores.dtype, device=scores.device)
        scores[seen] -= params.presence_penalty + params.frequency_penalty * times
    if params.temperature == 0:
        return int(torch.argmax(scores))
    probs = torch.softmax(scores / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        probs /= probs.sum()
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def _choice(
    logits: Any, token: int, alternatives: int | None, tokenizer: Any
) -> TokenChoice | None:
    """The token's own text (part of a character, when a character spans tokens) and its
    log-probability, with the best alternatives."""
    if alternatives is None:
        return None
    return token_choice(
        logits.cpu().numpy(),
        token,
        _decode(tokenizer, [token]),
        alternatives,
        lambda i: _decode(tokenizer, [i]),
    )
