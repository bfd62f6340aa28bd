"""Chat completions with the ``rag`` extension: the LLM engine wrapped so that a request naming
a collection is answered from that collection, with citations.

The composition runs at the server that received the request and reaches every engine through
its protocol: the RAG engine (search, conversation memory), the rerank engine when asked, and the
LLM, each in-process or remote. The LLM only ever sees a plain chat request whose system message
carries the numbered sources.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec

from aiplatform.api.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
)
from aiplatform.api.rag import (
    Citation,
    MemoryAddRequest,
    MemoryMessage,
    MemorySearchRequest,
    RagChatOptions,
    SearchHit,
    SearchRequest,
)
from aiplatform.api.rerank import RerankRequest
from aiplatform.engines.base import Engine, Operation
from aiplatform.engines.llm.operations import CHAT
from aiplatform.engines.rag.operations import ADD_MEMORY, SEARCH, SEARCH_MEMORY
from aiplatform.engines.rerank.operations import RERANK
from aiplatform.engines.wrapped import WrappedEngine
from aiplatform.errors import InvalidRequestError, NotFoundError

__all__ = ["RagChat", "build_prompt"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)

#: Candidates fetched per source kept, when the rerank engine picks the sources.
_RERANK_POOL = 4
_CITATION = re.compile(r"\[(\d{1,3})\]")
_INSTRUCTIONS = (
    "Answer the user's question using only the numbered sources below. After each fact, cite "
    "its source as [n]. If the sources do not contain the answer, say that you do not know."
)


class RagChat(WrappedEngine):
    """The LLM engine, plus the platform's ``rag`` extension of chat completions."""

    def __init__(
        self, llm: Engine, *, rag: Engine | None = None, rerank: Engine | None = None
    ) -> None:
        super().__init__(llm)
        self._rag = rag
        self._rerank = rerank

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        if op is CHAT and isinstance(request, ChatCompletionRequest) and request.rag is not None:
            result: Any = await self._answer(request, request.rag)
            return result  # type: ignore[no-any-return]
        return await self.inner.invoke(op, request)

    def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        if op is CHAT and isinstance(request, ChatCompletionRequest) and request.rag is not None:
            chunks: Any = self._stream(request, request.rag)
            return chunks  # type: ignore[no-any-return]
        return self.inner.stream(op, request)

    async def _answer(
        self, request: ChatCompletionRequest, options: RagChatOptions
    ) -> ChatCompletion:
        prompt, citations = await self._grounded(request, options)
        answer = await self.inner.invoke(CHAT, prompt)
        text = answer.choices[0].message.content or "" if answer.choices else ""
        answer.citations = _mark_cited(citations, text)
        await self._remember(request, options, text)
        return answer

    async def _stream(
        self, request: ChatCompletionRequest, options: RagChatOptions
    ) -> AsyncIterator[ChatCompletionChunk]:
        prompt, citations = await self._grounded(request, options)
        parts: list[str] = []
        first = True
        async for chunk in self.inner.stream(CHAT, prompt):
            if first:
                chunk.citations = citations
                first = False
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
            yield chunk
        await self._remember(request, options, "".join(parts))

    async def _grounded(
        self, request: ChatCompletionRequest, options: RagChatOptions
    ) -> tuple[ChatCompletionRequest, list[Citation]]:
        """The plain chat request with the sources in its system message, and the sources."""
        if self._rag is None:
            raise InvalidRequestError(
                "rag needs the RAG engine, which this server does not run (enable engines.rag).",
                param="rag",
            )
        if options.rerank and self._rerank is None:
            raise InvalidRequestError(
                "rag.rerank needs the rerank engine, which this server does not run "
                "(enable engines.rerank).",
                param="rag.rerank",
            )
        question = _last_user_text(request.messages)
        pool = options.top_k * _RERANK_POOL if options.rerank else options.top_k
        search = SearchRequest(
            collection_id=options.collection,
            query=question,
            top_k=pool,
            filter=options.filter,
            mode=options.mode,
            score_threshold=options.score_threshold,
        )
        hits = (await self._rag.invoke(SEARCH, search)).data
        if options.rerank and hits:
            hits = await self._reranked(question, hits, options.top_k)
        citations = [
            Citation(
                index=number,
                collection_id=options.collection,
                document_id=hit.document_id,
                chunk_id=hit.chunk_id,
                score=hit.score,
                text=hit.text,
                metadata=hit.metadata,
            )
            for number, hit in enumerate(hits[: options.top_k], start=1)
        ]
        recalled = await self._recalled(options, question)
        messages = build_prompt(request.messages, citations, recalled)
        return msgspec.structs.replace(request, messages=messages, rag=None), citations

    async def _reranked(self, question: str, hits: list[SearchHit], keep: int) -> list[SearchHit]:
        assert self._rerank is not None  # checked by _grounded
        ranked = await self._rerank.invoke(
            RERANK,
            RerankRequest(
                query=question,
                documents=[hit.text for hit in hits],
                top_n=keep,
                return_documents=False,
            ),
        )
        return [
            msgspec.structs.replace(hits[result.index], score=result.relevance_score)
            for result in ranked.results
        ]

    async def _recalled(self, options: RagChatOptions, question: str) -> list[str]:
        """Earlier turns of the conversation that bear on the question."""
        if options.conversation_id is None or self._rag is None:
            return []
        try:
            found = await self._rag.invoke(
                SEARCH_MEMORY,
                MemorySearchRequest(
                    conversation_id=options.conversation_id, query=question, top_k=4
                ),
            )
        except NotFoundError as exc:
            if exc.code != "conversation_not_found":
                raise
            return []  # a new conversation: nothing to recall yet
        return [f"{turn.role}: {turn.content}" for turn in found.data]

    async def _remember(
        self, request: ChatCompletionRequest, options: RagChatOptions, answer: str
    ) -> None:
        if options.conversation_id is None or self._rag is None:
            return
        messages = [MemoryMessage(role="user", content=_last_user_text(request.messages))]
        if answer.strip():
            messages.append(MemoryMessage(role="assistant", content=answer))
        await self._rag.invoke(
            ADD_MEMORY,
            MemoryAddRequest(conversation_id=options.conversation_id, messages=messages),
        )


def build_prompt(
    messages: list[ChatMessage], citations: list[Citation], recalled: list[str]
) -> list[ChatMessage]:
    """``messages`` with the instructions and numbered sources leading the system message."""
    sections = [_INSTRUCTIONS, ""]
    if citations:
        sections += [f"[{c.index}] {c.text}" for c in citations]
    else:
        sections.append("(no source matched the question)")
    if recalled:
        sections += ["", "Earlier in this conversation:", *recalled]
    grounding = "\n".join(sections)
    if messages and messages[0].role in ("system", "developer"):
        first = messages[0]
        own = first.text
        merged = msgspec.structs.replace(
            first, content=f"{own}\n\n{grounding}" if own else grounding
        )
        return [merged, *messages[1:]]
    return [ChatMessage(role="system", content=grounding), *messages]


def _mark_cited(citations: list[Citation], answer: str) -> list[Citation]:
    cited = {int(number) for number in _CITATION.findall(answer)}
    return [msgspec.structs.replace(c, cited=c.index in cited) for c in citations]


def _last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            text = message.text
            if text.strip():
                return text
    raise InvalidRequestError(
        "rag retrieves with the last user message, and there is none with text.",
        param="messages",
    )
