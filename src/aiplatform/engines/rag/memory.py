"""Conversation memory: a hidden collection per conversation, one document per turn, numbered
in order and recalled by similarity."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio

from aiplatform.api.rag import (
    ChunkingOptions,
    ConversationRef,
    DocumentInput,
    MemoryAddRequest,
    MemoryDeleted,
    MemoryList,
    MemoryListRequest,
    MemorySearchRequest,
    MemoryTurn,
    SearchRequest,
)
from aiplatform.engines.rag.core import MEMORY, RagCore
from aiplatform.engines.rag.store import CollectionRow, DocumentRow, PreparedDocument
from aiplatform.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from aiplatform.tenant import current_tenant

__all__ = ["ConversationMemory"]

#: Times the next turn numbers are counted again after another writer took them.
_NUMBERING_ATTEMPTS = 8


class ConversationMemory:
    def __init__(self, core: RagCore) -> None:
        self._core = core
        # made when the engine starts: anyio's primitives belong to a running event loop
        self._lock: anyio.Lock | None = None

    def start(self) -> None:
        self._lock = anyio.Lock()

    async def add(self, request: MemoryAddRequest) -> MemoryList:
        core = self._core
        owner = current_tenant()
        conversation = _conversation_id(request.conversation_id)
        # refused before the conversation is created
        core.checked(
            [DocumentInput(text=message.content) for message in request.messages],
            param="messages",
        )
        assert self._lock is not None, "the engine has not been started"
        async with self._lock:  # turns are numbered in the order they are added
            row = await self._conversation_row(owner, conversation)
            inputs = [
                DocumentInput(text=message.content, metadata=dict(message.metadata))
                for message in request.messages
            ]
            # embedded once: a turn's number is in its id and metadata, not in its vectors
            prepared = await core.prepare(row, inputs, ChunkingOptions())
            added, numbered = await self._add_numbered(row, request, prepared)
        texts = {document.id: document.text for document in numbered}
        return MemoryList(
            data=[_turn(conversation, document, texts[document.id]) for document in added]
        )

    async def _conversation_row(self, owner: str, conversation: str) -> CollectionRow:
        """The conversation's collection, made now if it has none (another replica making it at
        the same moment wins, and its collection is used)."""
        core = self._core
        row = await core.run_blocking(core.store.find_collection, owner, MEMORY, conversation)
        if row is not None:
            return row
        try:
            return await core.new_collection(owner, MEMORY, conversation)
        except ConflictError:
            return await core.run_blocking(core.store.collection, owner, MEMORY, conversation)

    async def _add_numbered(
        self,
        row: CollectionRow,
        request: MemoryAddRequest,
        prepared: list[PreparedDocument],
    ) -> tuple[list[DocumentRow], list[PreparedDocument]]:
        """The turns stored under the next free numbers. Turn ``n`` is the document
        ``turn-n``: the store refuses an id twice, so replicas sharing a store that add turns
        at the same moment cannot both take a number; the one refused counts again."""
        core = self._core
        for _ in range(_NUMBERING_ATTEMPTS):
            first_turn = (await core.run_blocking(core.store.counts, row))[0]
            numbered = [
                replace(
                    document,
                    id=f"turn-{turn}",
                    metadata={**message.metadata, "role": message.role, "turn": turn},
                )
                for turn, (document, message) in enumerate(
                    zip(prepared, request.messages, strict=True), first_turn
                )
            ]
            try:
                added = await core.run_blocking(core.store.add_documents, row, numbered)
            except ConflictError:
                continue  # numbers taken meanwhile by another replica
            return added, numbered
        raise ServiceUnavailableError(
            "The conversation is being written by others too often; try again shortly.",
            code="memory_contended",
        )

    async def recent(self, request: MemoryListRequest) -> MemoryList:
        core = self._core
        row = await self._conversation(request.conversation_id)
        documents = await core.run_blocking(core.store.latest_documents, row, request.limit)
        return MemoryList(
            data=[_turn(row.name, document, document.text or "") for document in documents]
        )

    async def search(self, request: MemorySearchRequest) -> MemoryList:
        core = self._core
        row = await self._conversation(request.conversation_id)
        search = SearchRequest(
            query=request.query,
            top_k=request.top_k,
            mode="vector",
            filter={"role": request.role} if request.role else None,
        )
        hits = await core.search(row, search)
        best: dict[str, float] = {}
        for hit in hits:  # a long turn has several chunks: each turn once, at its best
            best.setdefault(hit.document_id, hit.score)
        documents = await core.run_blocking(
            lambda: [core.store.document(row, key, text=True) for key in best]
        )
        return MemoryList(
            data=[
                _turn(row.name, document, document.text or "", score=best[document.id])
                for document in documents
            ]
        )

    async def delete(self, request: ConversationRef) -> MemoryDeleted:
        row = await self._conversation(request.conversation_id)
        await self._core.delete_collection(row)
        return MemoryDeleted(id=row.name)

    async def _conversation(self, conversation_id: str) -> CollectionRow:
        owner = current_tenant()
        name = _conversation_id(conversation_id)
        row = await self._core.run_blocking(self._core.store.find_collection, owner, MEMORY, name)
        if row is None:
            raise NotFoundError(
                f"No conversation '{name}' is remembered.",
                param="conversation_id",
                code="conversation_not_found",
            )
        return row


def _conversation_id(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200:
        raise InvalidRequestError(
            "conversation_id must be 1 to 200 characters.", param="conversation_id"
        )
    return value


def _turn(
    conversation: str, document: DocumentRow, text: str, *, score: float | None = None
) -> MemoryTurn:
    metadata: dict[str, Any] = dict(document.metadata)
    role = str(metadata.pop("role", "user"))
    turn = int(metadata.pop("turn", 0))
    return MemoryTurn(
        id=document.id,
        conversation_id=conversation,
        turn=turn,
        role=role,
        content=text,
        metadata=metadata,
        created_at=document.created_at,
        score=score,
    )
