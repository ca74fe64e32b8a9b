"""An MCP server for memcubed: tools, resources and a prompt that let any MCP client (a desktop agent, an IDE,
an agent framework) remember, recall and forget through the memcubed REST API.

Every tool is a thin wrapper around one :class:`memcubed.AsyncClient` call, so it needs nothing of the service
but its HTTP API and the caller's key: an error is the REST error envelope (same code and message), returned
as an MCP tool error. Two ways to run it:

* stdio, for desktop clients: ``memcubed-mcp --url http://127.0.0.1:8080`` (key from ``MEMCUBED_API_KEY``);
* streamable HTTP inside the service at ``/mcp`` (``app/api/mcp.py``), where each call uses the caller's own
  ``Authorization`` header, so scoped keys are honoured exactly as in REST.

Needs the ``mcp`` extra: ``pip install "memcubed[mcp]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal, NoReturn, ParamSpec

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from ._async_client import AsyncClient
from ._errors import MemcubedError
from ._version import __version__

__all__ = ["AGENT_ROUTES", "TOOL_ROUTES", "ClientProvider", "build_server", "main", "shared_client"]

ClientProvider = Callable[[Context], AbstractAsyncContextManager[AsyncClient]]
"""Gives a tool the SDK client to call the REST API with, for the MCP request in ``Context``."""

# Each tool and the REST operations it calls; tests/sdk/test_sdk_openapi.py checks them against the server.
TOOL_ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "remember": (("POST", "/v1/cubes/{cube_id}/memories"), ("POST", "/v1/cubes/{cube_id}/messages")),
    "recall": (("POST", "/v1/context"),),
    "search": (("POST", "/v1/search"),),
    "get_memory": (("GET", "/v1/memories/{memory_id}"),),
    "update_memory": (("PATCH", "/v1/memories/{memory_id}"),),
    "forget": (("DELETE", "/v1/memories/{memory_id}"), ("POST", "/v1/cubes/{cube_id}/messages")),
    "list_cubes": (("GET", "/v1/cubes"),),
    "create_cube": (("POST", "/v1/cubes"),),
}

# The routes an agent needs: each must be reachable through some tool (the coverage test fails by name).
AGENT_ROUTES: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/v1/context"),
    ("POST", "/v1/search"),
    ("POST", "/v1/cubes/{cube_id}/messages"),
    ("POST", "/v1/cubes/{cube_id}/memories"),
    ("GET", "/v1/memories/{memory_id}"),
    ("PATCH", "/v1/memories/{memory_id}"),
    ("DELETE", "/v1/memories/{memory_id}"),
    ("GET", "/v1/cubes"),
    ("POST", "/v1/cubes"),
})

INSTRUCTIONS = (
    "memcubed is your long-term memory. Before answering anything that may depend on the past (the user's "
    "preferences, facts about them, earlier sessions), call `recall` with the question. After a turn that "
    "teaches something worth keeping, call `remember`. When the user asks you to forget something, call "
    "`forget`. Memories live in cubes: call `list_cubes` once to find yours, `create_cube` if there is none."
)

GUIDE = """You have a long-term memory (memcubed). Use it like this:

1. Find your cube: call `list_cubes` once per conversation; if none fits, `create_cube` with a short name.
2. Recall before you answer: when the user's message may depend on anything said before (preferences, facts
   about them, plans, earlier sessions), call `recall` with their question in their own words. Read the
   returned `context`; if `abstained` is true, memory has nothing on it: say so rather than guess.
3. Remember what is worth keeping: after a turn that states a durable fact, preference, decision or event,
   call `remember`, either with the conversation `messages` (the service extracts facts and keeps event
   times) or with short self-contained `facts` ("Alice is allergic to peanuts", not "she can't eat that").
   Do not store secrets (passwords, keys) or things that only matter for this turn.
4. Correct instead of duplicating: if a fact changed, `remember` the new one (the service supersedes the old)
   or `update_memory` the old one by id. Duplicates are merged automatically.
5. Forget on request: when the user asks you to forget something, call `forget` with their request in words
   (or the memory id), and tell them what was forgotten.
6. Use `search` when you need the memory records themselves (ids, tags, dates), e.g. to update one.
"""

Budget = Literal["low", "mid", "high", "auto"]
CubeIds = Annotated[list[str], Field(min_length=1, description="Cube ids to read from (see list_cubes).")]
MemoryType = Literal["episodic", "semantic", "procedural"]


class Turn(BaseModel):
    """One conversation message."""

    role: str = Field(description='Who spoke: "user", "assistant", ...')
    content: str = Field(min_length=1, description="What was said.")
    speaker: str | None = Field(default=None, description="The speaker's name, if known.")
    timestamp: str | None = Field(default=None, description="When it was said, ISO 8601 with a timezone.")


def error_envelope(exc: MemcubedError) -> dict[str, Any]:
    """The REST error envelope the SDK error came from (``status`` added); ``connection_error`` without one."""
    return {
        "error": {"code": exc.code or "connection_error", "message": exc.message, "details": exc.details},
        "status": exc.status,
    }


P = ParamSpec("P")


def _tool_errors(fn: Callable[P, Awaitable[dict[str, Any]]]) -> Callable[P, Awaitable[Any]]:
    """REST errors become MCP tool errors carrying the REST envelope, so the model reads code and message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return await fn(*args, **kwargs)
        except MemcubedError as exc:
            envelope = error_envelope(exc)
            return CallToolResult(content=[TextContent(type="text", text=json.dumps(envelope))], is_error=True)

    return wrapper


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def shared_client(client: AsyncClient) -> ClientProvider:
    """A provider that hands every call the same client (stdio: one user, one key)."""

    @asynccontextmanager
    async def provide(_ctx: Context) -> AsyncIterator[AsyncClient]:
        yield client

    return provide


def build_server(clients: ClientProvider) -> MCPServer:
    """The memcubed MCP server; ``clients`` gives each call the SDK client to reach the REST API with."""
    # log_level only applies where nothing configured logging before (the stdio script): quiet by default.
    server = MCPServer("memcubed", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    @server.tool()
    @_tool_errors
    async def remember(
        ctx: Context,
        cube_id: Annotated[str, Field(description="The cube to write to (see list_cubes).")],
        messages: Annotated[
            list[Turn] | None,
            Field(description="Conversation turns to store; facts are extracted and event times kept. "
                              "A turn asking to forget something is carried out."),
        ] = None,
        facts: Annotated[
            list[str] | None,
            Field(description="Self-contained statements to store as they are, e.g. 'Alice is vegan'."),
        ] = None,
        session_id: Annotated[str, Field(description="Conversation id the messages belong to.")] = "default",
        memory_type: Annotated[MemoryType, Field(description="Kind of the facts: semantic (facts about the "
                                                             "world or the user), episodic (events), "
                                                             "procedural (how-to).")] = "semantic",
        tags: Annotated[list[str] | None, Field(description="Labels for the facts.")] = None,
        budget: Annotated[Budget | None, Field(description="Messages only: extraction effort.")] = None,
    ) -> dict[str, Any]:
        """Store conversation turns (`messages`) or facts (`facts`, exactly one of the two) in a cube.

        Returns the stored memories and, per input item, what admission decided (admitted, merged into a
        duplicate, rejected), which older facts a new one superseded, and what a forget request among the
        messages forgot (`forgotten`, `forget_request_id`)."""
        if (messages is None) == (facts is None):
            raise_invalid("pass exactly one of `messages` or `facts`")
        async with clients(ctx) as client:
            if messages is not None:
                turns = [turn.model_dump(exclude_none=True) for turn in messages]
                return _dump(await client.messages.add_detailed(cube_id, session_id, turns, budget=budget))
            items = [{"content": fact, "memory_type": memory_type, "tags": tags or []} for fact in facts or []]
            return _dump(await client.memories.add_many_detailed(cube_id, items))

    @server.tool()
    @_tool_errors
    async def recall(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, description="The question, in the user's words.")],
        cube_ids: CubeIds,
        budget: Annotated[Budget, Field(description="Retrieval effort: low (fast, dense), mid, high (most "
                                                    "thorough), auto (the service decides).")] = "auto",
        top_k: Annotated[int, Field(ge=1, le=200, description="Most memories to return.")] = 10,
    ) -> dict[str, Any]:
        """The memory context to read before answering `query`: `context` (text to read), its `items`,
        `tokens`, and `abstained` (true when memory holds nothing relevant). Use this by default."""
        async with clients(ctx) as client:
            return _dump(await client.context(query, cube_ids, top_k=top_k, budget=budget))

    @server.tool()
    @_tool_errors
    async def search(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, description="What to look for.")],
        cube_ids: CubeIds,
        mode: Annotated[Literal["fast", "fine"], Field(description="fast: dense only; fine: dense, keyword, "
                                                                   "time and graph channels fused.")] = "fast",
        top_k: Annotated[int, Field(ge=1, le=200, description="Most results.")] = 10,
        tag: Annotated[str | None, Field(description="Only memories with this tag.")] = None,
        memory_type: Annotated[MemoryType | None, Field(description="Only memories of this type.")] = None,
    ) -> dict[str, Any]:
        """Memory records that match `query`, best first, each with its id and score. Use it to find a
        memory to update or forget; to answer a question, prefer `recall`."""
        filters = {key: value for key, value in (("tag", tag), ("memory_type", memory_type)) if value}
        async with clients(ctx) as client:
            return _dump(await client.search(query, cube_ids, top_k=top_k, mode=mode, filters=filters or None))

    @server.tool()
    @_tool_errors
    async def get_memory(
        ctx: Context, memory_id: Annotated[str, Field(description="The memory's id.")]
    ) -> dict[str, Any]:
        """One memory by id, with its content, type, tags, status and version."""
        async with clients(ctx) as client:
            return _dump(await client.memories.get(memory_id))

    @server.tool()
    @_tool_errors
    async def update_memory(
        ctx: Context,
        memory_id: Annotated[str, Field(description="The memory's id.")],
        content: Annotated[str | None, Field(min_length=1, description="The corrected text.")] = None,
        tags: Annotated[list[str] | None, Field(description="The new tags (replace the old).")] = None,
        importance: Annotated[float | None, Field(ge=0, le=1, description="0 (trivia) to 1 (vital).")] = None,
        reason: Annotated[str, Field(description="Why it changed; kept in its history.")] = "update",
    ) -> dict[str, Any]:
        """Correct a memory; its previous state is kept as a version. Returns the updated memory."""
        fields = {key: value for key, value in (("content", content), ("tags", tags), ("importance", importance))
                  if value is not None}
        async with clients(ctx) as client:
            return _dump(await client.memories.update(memory_id, reason=reason, **fields))

    @server.tool()
    @_tool_errors
    async def forget(
        ctx: Context,
        memory_id: Annotated[str | None, Field(description="Forget this memory (soft delete, restorable).")]
        = None,
        request: Annotated[
            str | None,
            Field(description="Or: what to forget, in words, e.g. 'forget my old address'; needs cube_id."),
        ] = None,
        cube_id: Annotated[str | None, Field(description="The cube a `request` applies to.")] = None,
        session_id: Annotated[str, Field(description="Conversation the request was made in.")] = "default",
    ) -> dict[str, Any]:
        """Forget one memory by id, or everything a request in words is about (pass exactly one). A request
        returns the ids it forgot (`forgotten`) and its `forget_request_id`, which can be reverted."""
        if (memory_id is None) == (request is None):
            raise_invalid("pass exactly one of `memory_id` or `request`")
        async with clients(ctx) as client:
            if memory_id is not None:
                return _dump(await client.memories.delete(memory_id))
            if cube_id is None:
                raise_invalid("a forget `request` needs `cube_id`")
            turn = {"role": "user", "content": request}
            result = await client.messages.add_detailed(cube_id, session_id, [turn])
            return {"forgotten": [str(i) for i in result.forgotten], "forget_request_id": result.forget_request_id}

    @server.tool()
    @_tool_errors
    async def list_cubes(ctx: Context) -> dict[str, Any]:
        """The cubes this key can read: id, name, description and memory count."""
        async with clients(ctx) as client:
            return {"cubes": [_dump(cube) for cube in await client.cubes.list()]}

    @server.tool()
    @_tool_errors
    async def create_cube(
        ctx: Context,
        name: Annotated[str, Field(min_length=1, description="Unique within your tenant, e.g. 'alice'.")],
        description: Annotated[str | None, Field(description="What the cube is for.")] = None,
    ) -> dict[str, Any]:
        """Create a cube (a named memory container) and return it with its id."""
        async with clients(ctx) as client:
            return _dump(await client.cubes.create(name, description=description))

    @server.resource("memcubed://cubes/{cube_id}", mime_type="application/json",
                     description="A cube: name, description, memory count, enrichment backlog.")
    async def cube_resource(cube_id: str, ctx: Context) -> str:
        async with _resource_errors(), clients(ctx) as client:
            return json.dumps(_dump(await client.cubes.get(cube_id)))

    @server.resource("memcubed://cubes/{cube_id}/memories", mime_type="application/json",
                     description="A cube's memories, newest first (the first 100).")
    async def cube_memories_resource(cube_id: str, ctx: Context) -> str:
        async with _resource_errors(), clients(ctx) as client:
            memories = []
            async for memory in client.memories.list(cube_id, page_size=100):
                memories.append(_dump(memory))
                if len(memories) == 100:
                    break
            return json.dumps({"memories": memories})

    @server.resource("memcubed://memories/{memory_id}", mime_type="application/json", description="A memory.")
    async def memory_resource(memory_id: str, ctx: Context) -> str:
        async with _resource_errors(), clients(ctx) as client:
            return json.dumps(_dump(await client.memories.get(memory_id)))

    @server.prompt(description="How an agent should use its long-term memory: recall, remember, forget.")
    def memory_guide() -> str:
        return GUIDE

    return server


class InvalidArguments(MemcubedError):
    """Tool arguments the REST API cannot express (e.g. both or neither of two alternatives)."""


def raise_invalid(message: str) -> NoReturn:
    raise InvalidArguments(message, status=422, code="validation_error")


@asynccontextmanager
async def _resource_errors() -> AsyncIterator[None]:
    """A REST error while reading a resource becomes an MCP resource error with the REST envelope."""
    try:
        yield
    except MemcubedError as exc:
        raise ResourceError(json.dumps(error_envelope(exc))) from exc


def main(argv: list[str] | None = None) -> None:
    """``memcubed-mcp``: the MCP server on stdio, for desktop clients; the key comes from MEMCUBED_API_KEY."""
    parser = argparse.ArgumentParser(prog="memcubed-mcp", description=main.__doc__)
    parser.add_argument("--url", default=os.environ.get("MEMCUBED_URL"), help="memcubed base URL "
                        "(default: MEMCUBED_URL, else http://127.0.0.1:8080)")
    args = parser.parse_args(argv)

    async def serve() -> None:
        async with AsyncClient(args.url) as client:
            await build_server(shared_client(client)).run_stdio_async()

    asyncio.run(serve())
