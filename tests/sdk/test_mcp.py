"""The MCP server, live: streamable HTTP at ``/mcp`` in the service and stdio through ``memcubed-mcp``, driven
by the official MCP client. Tools answer what the REST route they wrap answers, errors carry the REST
envelope's code and message, and scoped keys are honoured (a read key cannot call a writing tool)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import httpx2
import memcubed
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextResourceContents
from memcubed.mcp import main

from tests.sdk.sdk_helpers import LiveTenant

ADDRESS = ["My home address is 42 Elm Street, Springfield", "Please send the parcel to my address: 42 Elm Street"]
OTHERS = ["My favourite colour is green", "I have a dog named Rex", "I work as a nurse at the city hospital"]


def over_http(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client(streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=120)))


def result(r: CallToolResult) -> dict[str, Any]:
    """A successful tool result's JSON (its text content, which structured content mirrors)."""
    assert not r.is_error, r.content
    data = json.loads(r.content[0].text)  # type: ignore[union-attr]
    assert r.structured_content == data
    return dict(data)


def tool_error(r: CallToolResult) -> dict[str, Any]:
    assert r.is_error, r.content
    return dict(json.loads(r.content[0].text))  # type: ignore[union-attr]


def rest_error(response: httpx.Response) -> dict[str, Any]:
    return {**response.json(), "status": response.status_code}


async def test_tools_over_http_answer_as_the_rest_routes_they_wrap(live_tenant: LiveTenant) -> None:
    rest = httpx.Client(base_url=live_tenant.url, headers={"Authorization": f"Bearer {live_tenant.api_key}"})
    async with over_http(live_tenant.url, live_tenant.api_key) as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        assert names == ["create_cube", "forget", "get_memory", "list_cubes", "recall", "remember", "search",
                         "update_memory"]
        cube = result(await client.call_tool("create_cube", {"name": "alice", "description": "Alice's memory"}))
        assert (cube["name"], cube["description"], cube["memory_count"]) == ("alice", "Alice's memory", 0)
        stored = result(await client.call_tool("remember", {
            "cube_id": cube["id"], "facts": ["Alice is allergic to peanuts", "Alice moved to Berlin in 2021"],
            "tags": ["profile"]}))
        assert [a["status"] for a in stored["admission"]] == ["admitted", "admitted"]
        assert [(m["content"], m["memory_type"], m["tags"]) for m in stored["memories"]] == [
            ("Alice is allergic to peanuts", "semantic", ["profile"]),
            ("Alice moved to Berlin in 2021", "semantic", ["profile"])]
        peanuts, berlin = (m["id"] for m in stored["memories"])

        recalled = result(await client.call_tool("recall", {"query": "what can't Alice eat?",
                                                            "cube_ids": [cube["id"]], "budget": "low"}))
        expected = rest.post("/v1/context", json={"query": "what can't Alice eat?", "cube_ids": [cube["id"]],
                                                  "budget": "low"}).json()
        assert (recalled["context"], recalled["items"]) == (expected["context"], expected["items"])
        assert recalled["items"][0]["memory_id"] == peanuts

        found = result(await client.call_tool("search", {"query": "where does Alice live?",
                                                         "cube_ids": [cube["id"]], "top_k": 1}))
        assert [hit["memory"]["id"] for hit in found["results"]] == [berlin]
        assert result(await client.call_tool("get_memory", {"memory_id": berlin}))["content"] == (
            "Alice moved to Berlin in 2021")
        updated = result(await client.call_tool("update_memory", {
            "memory_id": berlin, "content": "Alice moved to Munich in 2023", "reason": "she moved again"}))
        assert (updated["content"], updated["version"]) == ("Alice moved to Munich in 2023", 2)
        assert rest.get(f"/v1/memories/{berlin}/history").json()["versions"][0]["reason"] == "she moved again"
        forgotten = result(await client.call_tool("forget", {"memory_id": peanuts}))
        assert (forgotten["id"], forgotten["status"]) == (peanuts, "deleted")
        listed = result(await client.call_tool("list_cubes", {}))
        assert [(c["id"], c["memory_count"]) for c in listed["cubes"]] == [(cube["id"], 1)]

        turns = result(await client.call_tool("remember", {
            "cube_id": cube["id"], "session_id": "chat-1", "messages": [
                {"role": "user", "speaker": "Alice", "content": "I ran my first marathon last Saturday!",
                 "timestamp": "2023-05-08T10:00:00Z"}]}))
        assert [(m["content"], m["session_id"], m["occurred_at"]) for m in turns["memories"]] == [
            ("I ran my first marathon last Saturday!", "chat-1", "2023-05-08T10:00:00Z")]

        resource = await client.read_resource(f"memcubed://memories/{berlin}")
        content = resource.contents[0]
        assert isinstance(content, TextResourceContents)
        assert json.loads(content.text)["content"] == "Alice moved to Munich in 2023"
        prompt = await client.get_prompt("memory_guide")
        assert "call `recall`" in prompt.messages[0].content.text  # type: ignore[union-attr]
    rest.close()


async def test_errors_are_the_rest_envelope_and_keys_are_scoped(live_tenant: LiveTenant) -> None:
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key) as sdk:
        cube = sdk.cubes.create("shared")
        sdk.memories.add(cube.id, "The deploy key rotates every Monday")
        reader = sdk.keys.create(live_tenant.tenant_id, "reader", cube_ids=[cube.id], permission="read")
    missing = str(uuid.uuid4())
    with httpx.Client(base_url=live_tenant.url) as rest:
        not_found = rest_error(rest.get(f"/v1/memories/{missing}",
                                        headers={"Authorization": f"Bearer {live_tenant.api_key}"}))
        denied = rest_error(rest.post(f"/v1/cubes/{cube.id}/memories", json={"memories": [{"content": "x"}]},
                                      headers={"Authorization": f"Bearer {reader.api_key}"}))
        unauthenticated = rest_error(rest.get("/v1/cubes"))
    assert (not_found["status"], not_found["error"]["code"]) == (404, "not_found")
    assert (denied["status"], denied["error"]["code"]) == (403, "permission_denied")

    async with over_http(live_tenant.url, live_tenant.api_key) as client:
        assert tool_error(await client.call_tool("get_memory", {"memory_id": missing})) == not_found
        assert tool_error(await client.call_tool("forget", {"request": "forget my address"})) == {
            "error": {"code": "validation_error", "message": "a forget `request` needs `cube_id`", "details": {}},
            "status": 422}
    async with over_http(live_tenant.url, reader.api_key) as client:
        assert tool_error(await client.call_tool("remember", {"cube_id": cube.id, "facts": ["x"]})) == denied
        recalled = result(await client.call_tool("recall", {"query": "when does the key rotate?",
                                                            "cube_ids": [cube.id], "budget": "low"}))
        assert [item["content"] for item in recalled["items"]] == ["The deploy key rotates every Monday"]
        assert [c["id"] for c in result(await client.call_tool("list_cubes", {}))["cubes"]] == [cube.id]
    async with over_http(live_tenant.url, None) as client:
        assert tool_error(await client.call_tool("list_cubes", {})) == unauthenticated
        assert unauthenticated["status"] == 401


async def test_forget_in_words_forgets_what_the_request_is_about(live_tenant: LiveTenant) -> None:
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key) as sdk:
        cube = sdk.cubes.create("forgetful")
        address_ids = [m.id for m in sdk.memories.add_many(cube.id, [{"content": c} for c in ADDRESS + OTHERS])][:2]
        async with over_http(live_tenant.url, live_tenant.api_key) as client:
            out = result(await client.call_tool("forget", {"request": "Forget my address.", "cube_id": cube.id}))
        assert sorted(out["forgotten"]) == sorted(address_ids)
        assert [r.id for r in sdk.forget_requests.list(cube.id)] == [out["forget_request_id"]]
        assert sorted(m.content for m in sdk.memories.list(cube.id, status="active")) == sorted(
            [*OTHERS, "[forget request: address]"])


def mcp_script() -> str:
    script = shutil.which("memcubed-mcp", path=str(Path(sys.executable).parent))
    assert script is not None, "memcubed-mcp is not installed (pip install -e './clients/python[mcp]')"
    return script


async def test_stdio_server_recalls_what_rest_returns(live_tenant: LiveTenant) -> None:
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key) as sdk:
        cube = sdk.cubes.create("desktop")
        sdk.memories.add(cube.id, "The user prefers window seats")
        expected = sdk.context("seat preference?", [cube.id], budget="low")
    params = StdioServerParameters(command=mcp_script(), args=["--url", live_tenant.url],
                                   env={**os.environ, "MEMCUBED_API_KEY": live_tenant.api_key})
    async with Client(params) as client:
        assert [c["name"] for c in result(await client.call_tool("list_cubes", {}))["cubes"]] == ["desktop"]
        recalled = result(await client.call_tool("recall", {"query": "seat preference?", "cube_ids": [cube.id],
                                                            "budget": "low"}))
    assert [(i["memory_id"], i["content"]) for i in recalled["items"]] == [
        (item.memory_id, item.content) for item in expected.items]
    assert recalled["context"] == expected.context


def test_stdio_script_documents_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "MEMCUBED_API_KEY" in capsys.readouterr().out
