"""LangChain on memcubed: a retriever over ``/v1/context`` (with a ``budget``) and a chat message history kept
as conversation turns through ``/messages``. Needs the ``langchain`` extra (``langchain-core``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ._client import Client
from ._core import BudgetLike
from ._models import Memory

__all__ = ["MemcubedChatMessageHistory", "MemcubedRetriever"]

# Roles of turns written by other clients (REST, MCP) as LangChain message types; ours are stored as types.
ROLES = {"user": "human", "assistant": "ai"}


class MemcubedRetriever(BaseRetriever):
    """Documents for a query: the items of memcubed's context, assembled within ``budget``.

    Each document's ``page_content`` is a memory's text; ``metadata`` holds ``memory_id``, ``score``,
    ``occurred_at`` and ``session_id``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client
    cube_ids: list[str]
    budget: BudgetLike = "auto"
    top_k: int = 10

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        context = self.client.context(query, self.cube_ids, top_k=self.top_k, budget=self.budget)
        return [
            Document(page_content=item.content, id=item.memory_id, metadata={
                "memory_id": item.memory_id, "score": item.score, "session_id": item.session_id,
                "occurred_at": item.occurred_at.isoformat() if item.occurred_at else None})
            for item in context.items
        ]


class MemcubedChatMessageHistory(BaseChatMessageHistory):
    """One conversation (``session_id``) in a cube, each message a turn stored through ``/messages``, so the
    turns are also memories that search and recall see. ``clear`` soft-deletes them (restorable)."""

    def __init__(self, client: Client, cube_id: str, session_id: str, *, user_id: str | None = None) -> None:
        super().__init__()
        self.client = client
        self.cube_id = cube_id
        self.session_id = session_id
        self.user_id = user_id

    def _turns(self) -> list[Memory]:
        turns = [m for m in self.client.memories.list(self.cube_id, session_id=self.session_id)
                 if m.source.get("type") == "message" and m.status != "deleted"]
        # Turns of one write share a timestamp; their message ids (time, position) keep the order.
        return sorted(turns, key=lambda m: (m.occurred_at or m.created_at, m.metadata.get("message_id", "")))

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return messages_from_dict([
            {"type": ROLES.get(role, role), "data": {"content": m.content, "id": m.id}}
            for m in self._turns() if (role := m.metadata.get("role", "user"))
        ])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        now, stamp = datetime.now(UTC), time.time_ns()
        turns: list[dict[str, Any]] = []
        for position, message in enumerate(messages):
            if not isinstance(message.content, str):
                raise ValueError("memcubed stores text messages only")
            turns.append({"role": message_to_dict(message)["type"], "content": message.content,
                          "timestamp": now, "id": f"{stamp:020d}-{position:06d}", "speaker": message.name})
        self.client.messages.add(self.cube_id, self.session_id, turns, user_id=self.user_id)

    def clear(self) -> None:
        for memory in self._turns():
            self.client.memories.delete(memory.id)
