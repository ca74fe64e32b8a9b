"""remember / recall / forget as ready function tools for the OpenAI Agents SDK (``openai-agents``).

>>> agent = Agent(name="assistant", tools=memory_tools(memcubed.AsyncClient(), cube_id))

Each tool is one SDK call on one cube. A REST error reaches the model as its envelope (code and message),
never as a stack trace. Needs the ``openai-agents`` extra.
"""

from __future__ import annotations

import json
from typing import Any

from agents import FunctionTool, RunContextWrapper, function_tool

from ._async_client import AsyncClient
from ._core import BudgetLike
from ._errors import MemcubedError

__all__ = ["memory_tools"]


def _error_for_model(_ctx: RunContextWrapper[Any], error: Exception) -> str:
    """What the model reads when a tool fails: the REST error's code and message, or a generic line."""
    if isinstance(error, MemcubedError):
        return json.dumps({"error": {"code": error.code or "connection_error", "message": error.message}})
    return "An error occurred while running the tool. Please try again."


def memory_tools(client: AsyncClient, cube_id: str, *, session_id: str = "agent",
                 budget: BudgetLike = "auto", top_k: int = 10) -> list[FunctionTool]:
    """The three memory tools for one cube: ``remember``, ``recall`` (``/v1/context`` within ``budget``) and
    ``forget`` (a request in words, carried out by the service's forget detector)."""

    @function_tool(failure_error_function=_error_for_model)
    async def remember(facts: list[str]) -> dict[str, Any]:
        """Store durable facts about the user or the world for later conversations.

        Args:
            facts: Short self-contained statements, e.g. "Alice is allergic to peanuts".
        """
        result = await client.memories.add_many_detailed(
            cube_id, [{"content": fact, "memory_type": "semantic"} for fact in facts])
        return {"admission": [a.model_dump(mode="json", exclude_none=True) for a in result.admission]}

    @function_tool(failure_error_function=_error_for_model)
    async def recall(query: str) -> dict[str, Any]:
        """Look up long-term memory before answering anything that may depend on the past.

        Args:
            query: The question, in the user's words.
        """
        context = await client.context(query, [cube_id], top_k=top_k, budget=budget)
        return {"context": context.context, "abstained": context.abstained,
                "memory_ids": [item.memory_id for item in context.items]}

    @function_tool(failure_error_function=_error_for_model)
    async def forget(request: str) -> dict[str, Any]:
        """Forget what the user asked to forget.

        Args:
            request: The request in words, e.g. "forget my old address".
        """
        result = await client.messages.add_detailed(cube_id, session_id, [{"role": "user", "content": request}])
        return {"forgotten": result.forgotten, "forget_request_id": result.forget_request_id}

    return [remember, recall, forget]
