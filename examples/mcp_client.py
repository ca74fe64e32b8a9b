"""Talk to memcubed's MCP server over streamable HTTP (``/mcp`` on the service) with the official MCP client,
the way an agent host does: list the tools, create a cube, remember, recall.

    pip install "memcubed[mcp]"
    export MEMCUBED_URL=http://127.0.0.1:8080 MEMCUBED_API_KEY=mck_...   # a tenant key
    python examples/mcp_client.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def run(cube_name: str) -> None:
    url = os.environ.get("MEMCUBED_URL", "http://127.0.0.1:8080").rstrip("/") + "/mcp"
    # A first recall may load retrieval models on the server: allow it time.
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {os.environ['MEMCUBED_API_KEY']}"}, timeout=120)
    async with Client(streamable_http_client(url, http_client=http)) as mcp:
        print("tools:", ", ".join(tool.name for tool in (await mcp.list_tools()).tools))
        cube = json.loads((await mcp.call_tool("create_cube", {"name": cube_name})).content[0].text)
        await mcp.call_tool("remember", {"cube_id": cube["id"], "facts": ["The user prefers window seats"]})
        recalled = await mcp.call_tool("recall", {"query": "seat preference?", "cube_ids": [cube["id"]]})
        print("recall:", json.loads(recalled.content[0].text)["context"])


def main(argv: list[str] | None = None) -> int:
    asyncio.run(run((argv or sys.argv[1:] or ["mcp-demo"])[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
