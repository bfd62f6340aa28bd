"""A non-streamed call stops when its client disconnects, down to the LLM generation."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from litestar.types import ReceiveMessage

from aiplatform.api.chat import ChatCompletionRequest, ChatMessage, ModelStatesRequest
from aiplatform.engines.llm import CHAT, MODEL_STATES
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.settings import LLMSettings
from aiplatform.errors import ClientDisconnectedError, InvalidRequestError
from aiplatform.server.disconnect import unless_disconnected

pytestmark = pytest.mark.anyio


class Client:
    """An ASGI receive channel: the body, then nothing until :meth:`leave`."""

    def __init__(self) -> None:
        self._left = anyio.Event()
        self._body_sent = False

    def leave(self) -> None:
        self._left.set()

    async def receive(self) -> ReceiveMessage:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}


async def test_an_answer_ready_first_is_returned() -> None:
    async def answer() -> str:
        await anyio.lowlevel.checkpoint()
        return "done"

    assert await unless_disconnected(Client().receive, answer) == "done"


async def test_an_error_is_raised_as_itself() -> None:
    async def fail() -> None:
        raise InvalidRequestError("bad")

    with pytest.raises(InvalidRequestError, match="bad"):
        await unless_disconnected(Client().receive, fail)


async def test_a_disconnect_cancels_the_call() -> None:
    client, cancelled = Client(), anyio.Event()

    async def forever() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async def leave_soon() -> None:
        await anyio.sleep(0.01)
        client.leave()

    with anyio.fail_after(10):  # a guard against a hang, not a speed check
        async with anyio.create_task_group() as group:
            group.start_soon(leave_soon)
            with pytest.raises(ClientDisconnectedError):
                await unless_disconnected(client.receive, forever)
    assert cancelled.is_set()


async def test_a_disconnect_stops_the_generation_and_frees_its_slot() -> None:
    model = FakeLLM("m", slots=1, token_delay_s=0.05)  # 24 tokens: 1.2 s when left alone
    client = Client()
    request = ChatCompletionRequest(messages=[ChatMessage(role="user", content="hi")])
    async with LocalLLMEngine(LLMSettings(), models=[model]) as engine:
        await engine.wait_loaded()
        model.load()

        async def leave_when_generating() -> None:
            while model.produced < 2:  # noqa: ASYNC110 (watches a thread's counter)
                await anyio.sleep(0.01)
            client.leave()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(leave_when_generating)
                with pytest.raises(ClientDisconnectedError):
                    await unless_disconnected(client.receive, lambda: engine.invoke(CHAT, request))
            states = await engine.invoke(MODEL_STATES, ModelStatesRequest())
            assert states.data[0].active == 0
            reply = await engine.invoke(CHAT, request)  # the only slot serves the next one
        assert reply.choices[0].finish_reason is not None
        assert model.produced < 2 * 24  # the abandoned generation did not run to its end
