"""An OpenAI Agents SDK agent with memcubed memory tools (``memcubed.openai_agents.memory_tools``).

With ``OPENAI_API_KEY`` set the agent runs on a model and decides itself when to remember, recall or
forget. Without it, the script calls the same tools the way the Agents SDK does, so it runs with a memcubed
server alone.

    pip install "memcubed[openai-agents]"
    export MEMCUBED_URL=http://127.0.0.1:8080 MEMCUBED_API_KEY=mck_...   # a tenant key
    python examples/openai_agents_memory.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import memcubed
from agents import Agent, Runner
from agents.tool_context import ToolContext
from memcubed.openai_agents import memory_tools

INSTRUCTIONS = ("You have long-term memory. Call `recall` before answering anything that may depend on the "
                "past, `remember` for durable facts the user tells you, `forget` when asked to forget.")


async def run(cube_name: str) -> None:
    async with memcubed.AsyncClient() as client:
        cube = next((c for c in await client.cubes.list() if c.name == cube_name), None) or (
            await client.cubes.create(cube_name))
        tools = memory_tools(client, cube.id, budget="low")
        if os.environ.get("OPENAI_API_KEY"):
            agent = Agent(name="assistant", instructions=INSTRUCTIONS, tools=list(tools))
            await Runner.run(agent, "I'm vegetarian, please remember that.")
            print((await Runner.run(agent, "What should I cook for myself tonight?")).final_output)
            return
        by_name = {tool.name: tool for tool in tools}
        for name, arguments in (("remember", {"facts": ["The user is vegetarian"]}),
                                ("recall", {"query": "What does the user eat?"})):
            raw = json.dumps(arguments)
            result = await by_name[name].on_invoke_tool(
                ToolContext(context=None, tool_name=name, tool_call_id=name, tool_arguments=raw), raw)
            print(f"{name}: {json.dumps(result)}")


def main(argv: list[str] | None = None) -> int:
    asyncio.run(run((argv or sys.argv[1:] or ["agents-demo"])[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
