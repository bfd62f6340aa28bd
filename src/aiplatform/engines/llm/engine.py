"""The in-process LLM engine: validates requests, runs generations on slots, shapes responses."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc

from aiplatform.api.chat import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    ModelLoadRequest,
    ModelState,
    ModelStates,
    ModelStatesRequest,
    ToolCallDelta,
)
from aiplatform.api.openai import ModelCard
from aiplatform.coordinator.context import current_leaser
from aiplatform.coordinator.leases import Leaser
from aiplatform.engines.llm.generation import (
    LLMModel,
    Piece,
    PreparedPrompt,
    SamplingParams,
)
from aiplatform.engines.llm.kind import LLM
from aiplatform.engines.llm.operations import CHAT, COMPLETE, LOAD_MODEL, MODEL_STATES, UNLOAD_MODEL
from aiplatform.engines.llm.requests import (
    context_overflow,
    json_format,
    only_one_choice,
    plain_message,
    sampling_params,
    with_max_tokens,
)
from aiplatform.engines.llm.residency import Memory, Resident, footprint_of
from aiplatform.engines.llm.responses import (
    chat_logprobs,
    completion_chunk,
    completion_logprobs,
    new_id,
    usage,
)
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.engines.llm.tools import ToolPlan, plan_tools
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.threads import ThreadPool
from aiplatform.errors import InvalidRequestError, model_not_found
from aiplatform.observability.metrics_engines import GenerationTiming
from aiplatform.observability.metrics_models import MeasuredModel

__all__ = ["LocalLLMEngine", "make_model"]

logger = logging.getLogger(__name__)


def make_model(settings: LLMModelSettings) -> LLMModel:
    """The model the settings describe; llama.cpp is imported only when it loads."""
    if settings.backend == "fake":
        from aiplatform.engines.llm.fake import FakeLLM

        return FakeLLM(
            settings.name,
            context_length=settings.context_length,
            slots=settings.slots,
            token_delay_s=settings.fake_token_delay_ms / 1000,
        )
    if settings.backend == "transformers":
        from aiplatform.engines.llm.hf import TransformersModel

        return TransformersModel(settings)
    if settings.batched_decoding:
        from aiplatform.engines.llm.gguf_batched import BatchedLlamaCppModel

        return BatchedLlamaCppModel(settings)
    from aiplatform.engines.llm.gguf import LlamaCppModel

    return LlamaCppModel(settings)


def _running_of(pool: ThreadPool) -> Callable[[], int]:
    """How many of ``pool``'s calls are running on its threads right now."""
    return lambda: pool.running


@dataclass(slots=True)
class _Started:
    """First item of every generation: the prompt's size, once it is known to fit."""

    prompt_tokens: int


class LocalLLMEngine(LocalEngine):
    def __init__(
        self,
        settings: LLMSettings,
        models: Sequence[LLMModel] | None = None,
        *,
        leaser: Leaser | None = None,
    ) -> None:
        """``leaser``: where the models' memory is leased (by default the memory coordinator
        the server builds the engine with; None when it is off)."""
        super().__init__(LLM, settings=settings, max_concurrency=1)
        built = list(models) if models is not None else [make_model(m) for m in settings.models]
        if not built:
            raise ValueError("the llm engine needs at least one model")
        self._models = {model.name: model for model in built}
        self._default = settings.default_model or built[0].name
        if self._default not in self._models:
            raise ValueError(f"default_model {self._default!r} is not among the models")
        # Each model's slots: its generations run there, and wait there (bounded) for a slot.
        self._pools = {
            model.name: ThreadPool(
                f"Model '{model.name}'",
                workers=model.slots,
                max_queue=settings.max_queue,
                queue_timeout_s=settings.queue_timeout_s,
                thread_name_prefix=f"llm-{model.name}",
            )
            for model in built
        }
        for pool in self._pools.values():
            self.track_calls(pool)
        configured = {m.name: m for m in settings.models}
        leaser = leaser if leaser is not None else current_leaser()
        self._memory = Memory(leaser) if leaser is not None and models is None else None
        # Models handed in belong to the caller, who loads and unloads them.
        self._residents = {
            model.name: Resident(
                MeasuredModel(model),  # the memory its loads add is reported at /metrics
                self._pools[model.name].executor,
                idle_unload_s=configured[model.name].idle_unload_s
                if model.name in configured
                else None,
                manage=models is None,
                running=_running_of(self._pools[model.name]),
                memory=self._memory,
                footprint=footprint_of(configured[model.name])
                if model.name in configured
                else None,
            )
            for model in built
        }
        self._load_at_startup = [
            name
            for name in self._models
            if name not in configured or configured[name].load == "startup"
        ]
        self._created = int(time.time())
        self.bind(CHAT, self.chat)
        self.bind_stream(CHAT, self.chat_stream)
        self.bind(COMPLETE, self.complete)
        self.bind_stream(COMPLETE, self.complete_stream)
        self.bind(LOAD_MODEL, self.load_model)
        self.bind(UNLOAD_MODEL, self.unload_model)
        self.bind(MODEL_STATES, self.model_states)

    def load(self) -> None:
        if self._memory is not None:  # startup loads lease their memory first (start_background)
            self._memory.wait_warm(len(self._load_at_startup))
            return
        for name in self._load_at_startup:
            self._residents[name].load_now()

    def unload(self) -> None:
        for name, resident in self._residents.items():
            self._pools[name].shutdown()
            resident.unload_now()

    async def start_background(self, task_group: anyio.abc.TaskGroup) -> None:
        idle = [r.idle_unload_s for r in self._residents.values() if r.idle_unload_s]
        if idle:
            task_group.start_soon(self._unload_idle_models, max(min(idle) / 4, 0.05))
        if self._memory is not None:
            startup = [self._residents[name] for name in self._load_at_startup]
            await self._memory.run(task_group, startup)

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            for resident in self._residents.values():  # unloaded now: their memory is free
                await resident.release_lease()

    async def _unload_idle_models(self, interval_s: float) -> None:
        while True:
            await anyio.sleep(interval_s)
            for resident in self._residents.values():
                if await resident.unload_if_idle():
                    logger.info("unloaded idle model %s", resident.model.name)

    async def load_model(self, request: ModelLoadRequest) -> ModelState:
        resident = self._resident(request.model)
        await self.wait_loaded()
        await resident.acquire()
        resident.release()
        return self._state(resident)

    async def unload_model(self, request: ModelLoadRequest) -> ModelState:
        resident = self._resident(request.model)
        await self.wait_loaded()
        await resident.unload()
        return self._state(resident)

    async def model_states(self, request: ModelStatesRequest) -> ModelStates:
        return ModelStates(data=[self._state(resident) for resident in self._residents.values()])

    def model_residency(self) -> list[tuple[LLMModel, bool]]:
        """Each model, and whether it is in memory now."""
        return [(resident.model, resident.loaded) for resident in self._residents.values()]

    def _resident(self, name: str) -> Resident:
        return self._residents[self._model(name).name]

    @staticmethod
    def _state(resident: Resident) -> ModelState:
        return ModelState(id=resident.model.name, loaded=resident.loaded, active=resident.active)

    async def list_models(self) -> list[ModelCard]:
        return [ModelCard(id=name, created=self._created) for name in self._models]

    # -- chat ----------------------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        model, params, messages, tools = self._chat_setup(request)
        started, pieces = await self._collect(model, lambda: model.prepare_chat(messages), params)
        text = "".join(piece.text for piece in pieces)
        finish = pieces[-1].finish_reason if pieces else "length"
        calls = tools.parse(text) if tools is not None else None
        message = AssistantMessage(content=None if calls else text, tool_calls=calls or None)
        choice = ChatChoice(
            index=0,
            message=message,
            finish_reason="tool_calls" if calls else finish,
            logprobs=chat_logprobs(pieces) if params.logprobs is not None else None,
        )
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(time.time()),
            model=model.name,
            choices=[choice],
            usage=usage(started.prompt_tokens, pieces),
        )

    async def chat_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        model, params, messages, tools = self._chat_setup(request)
        ident, created = new_id("chatcmpl"), int(time.time())

        def chunk(
            delta: ChatDelta, finish: str | None = None, logprobs: ChoiceLogprobs | None = None
        ) -> ChatCompletionChunk:
            choice = ChatChunkChoice(
                index=0,
                delta=delta,
                finish_reason=finish,  # type: ignore[arg-type]
                logprobs=logprobs,
            )
            return ChatCompletionChunk(
                id=ident, created=created, model=model.name, choices=[choice]
            )

        started: _Started | None = None
        pieces: list[Piece] = []
        async for item in self._run(model, lambda: model.prepare_chat(messages), params):
            if isinstance(item, _Started):
                started = item
                yield chunk(ChatDelta(role="assistant", content=""))
                continue
            pieces.append(item)
            if tools is None and item.text:
                logprobs = chat_logprobs([item]) if params.logprobs is not None else None
                yield chunk(ChatDelta(content=item.text), logprobs=logprobs)
        finish: str | None = pieces[-1].finish_reason if pieces else "length"
        if tools is not None:
            text = "".join(piece.text for piece in pieces)
            calls = tools.parse(text)
            if calls:
                deltas = [
                    ToolCallDelta(index=i, id=call.id, type="function", function=call.function)
                    for i, call in enumerate(calls)
                ]
                yield chunk(ChatDelta(tool_calls=deltas))
                finish = "tool_calls"
            elif text:
                yield chunk(ChatDelta(content=text))
        yield chunk(ChatDelta(), finish)
        if request.stream_options is not None and request.stream_options.include_usage:
            assert started is not None
            yield ChatCompletionChunk(
                id=ident,
                created=created,
                model=model.name,
                choices=[],
                usage=usage(started.prompt_tokens, pieces),
            )

    def _chat_setup(
        self, request: ChatCompletionRequest
    ) -> tuple[LLMModel, SamplingParams, list[dict[str, str]], ToolPlan | None]:
        only_one_choice(request.n)
        model = self._model(request.model)
        tools = plan_tools(request.tools, request.tool_choice)
        messages = [plain_message(message, index) for index, message in enumerate(request.messages)]
        if tools is not None:
            messages = tools.prompt(messages)
        json_mode, schema = json_format(request)
        if request.top_logprobs is not None and not request.logprobs:
            raise InvalidRequestError("top_logprobs needs logprobs=true.", param="top_logprobs")
        if tools is not None and tools.schema is not None:
            if json_mode:
                raise InvalidRequestError(
                    "response_format and a required tool call cannot be combined.",
                    param="response_format",
                )
            json_mode, schema = True, tools.schema
        params = sampling_params(
            request,
            max_tokens=request.max_completion_tokens or request.max_tokens,
            logprobs=(request.top_logprobs or 0) if request.logprobs else None,
            json_mode=json_mode,
            json_schema=schema,
        )
        return model, params, messages, tools

    # -- completions ---------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        model, params, prompt = self._completion_setup(request)
        started, pieces = await self._collect(model, lambda: model.prepare_text(prompt), params)
        text = "".join(piece.text for piece in pieces)
        finish = pieces[-1].finish_reason if pieces else "length"
        return Completion(
            id=new_id("cmpl"),
            created=int(time.time()),
            model=model.name,
            choices=[
                CompletionChoice(
                    index=0,
                    text=(prompt + text) if request.echo else text,
                    finish_reason=finish,
                    logprobs=completion_logprobs(pieces) if params.logprobs is not None else None,
                )
            ],
            usage=usage(started.prompt_tokens, pieces),
        )

    async def complete_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionChunk]:
        model, params, prompt = self._completion_setup(request)
        ident, created = new_id("cmpl"), int(time.time())
        started: _Started | None = None
        pieces: list[Piece] = []
        async for item in self._run(model, lambda: model.prepare_text(prompt), params):
            if isinstance(item, _Started):
                started = item
                if request.echo:
                    yield completion_chunk(ident, created, model.name, prompt, None)
                continue
            pieces.append(item)
            logprobs = completion_logprobs([item]) if params.logprobs is not None else None
            yield completion_chunk(
                ident, created, model.name, item.text, item.finish_reason, logprobs=logprobs
            )
        if request.stream_options is not None and request.stream_options.include_usage:
            assert started is not None
            yield CompletionChunk(
                id=ident,
                created=created,
                model=model.name,
                choices=[],
                usage=usage(started.prompt_tokens, pieces),
            )

    def _completion_setup(self, request: CompletionRequest) -> tuple[LLMModel, SamplingParams, str]:
        only_one_choice(request.n)
        if request.logprobs is not None and request.echo:
            raise InvalidRequestError(
                "logprobs with echo (prompt log-probabilities) are not served.", param="logprobs"
            )
        model = self._model(request.model)
        prompt = request.prompt if isinstance(request.prompt, str) else request.prompt[0]
        if not prompt:
            raise InvalidRequestError("prompt is empty.", param="prompt")
        params = sampling_params(request, max_tokens=request.max_tokens, logprobs=request.logprobs)
        return model, params, prompt

    # -- running generations -------------------------------------------------------------------

    def _model(self, name: str | None) -> LLMModel:
        model = self._models.get(name or self._default)
        if model is None:
            raise model_not_found(name, list(self._models))
        return model

    async def _run(
        self, model: LLMModel, prepare: Callable[[], PreparedPrompt], params: SamplingParams
    ) -> AsyncIterator[_Started | Piece]:
        """One generation on one of the model's slots: ``_Started``, then its pieces."""
        timing = GenerationTiming(model.name)
        await self.wait_loaded()

        def generation(cancelled: threading.Event) -> Iterator[_Started | Piece]:
            prompt = prepare()
            prompt_tokens = len(prompt.tokens)
            budget = model.context_length - prompt_tokens
            if budget <= 0 or (params.max_tokens is not None and params.max_tokens > budget):
                raise context_overflow(prompt_tokens, params.max_tokens, model.context_length)
            yield _Started(prompt_tokens)
            limited = params if params.max_tokens is not None else with_max_tokens(params, budget)
            yield from model.generate(prompt, limited, cancelled)

        resident, pool = self._residents[model.name], self._pools[model.name]
        ticket = pool.admit()  # refused at once (429) when the model's queue is full
        try:
            was_loaded = resident.loaded
            if await resident.acquire() or not was_loaded:
                pool.backlog.renew(ticket)  # the wait for an on-demand load is not the queue's
            try:
                async for item in pool.iterate(generation, ticket=ticket):
                    if isinstance(item, _Started):
                        timing.started()
                    else:
                        timing.piece(item.tokens)
                    yield item
            finally:
                timing.close()
                resident.release()
        finally:
            pool.release(ticket)

    async def _collect(
        self, model: LLMModel, prepare: Callable[[], PreparedPrompt], params: SamplingParams
    ) -> tuple[_Started, list[Piece]]:
        started: _Started | None = None
        pieces: list[Piece] = []
        async for item in self._run(model, prepare, params):
            if isinstance(item, _Started):
                started = item
            else:
                pieces.append(item)
        assert started is not None
        return started, pieces
