"""The framework integrations against the real packages from PyPI and the live server: the LangGraph store,
the LangChain retriever and chat history, and the OpenAI Agents SDK tools (invoked through the SDK's own
tool invocation API; no model involved)."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import memcubed
import pytest
from agents import FunctionTool
from agents.tool_context import ToolContext
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import InvalidNamespaceError
from memcubed.langchain import MemcubedChatMessageHistory, MemcubedRetriever
from memcubed.langgraph import MemcubedStore
from memcubed.openai_agents import memory_tools

from tests.sdk.sdk_helpers import LiveTenant

ALICE = ("users", "alice")


@pytest.fixture
def store(live_client: memcubed.Client) -> MemcubedStore:
    return MemcubedStore(live_client)


def test_langgraph_store_put_get_search_delete(store: MemcubedStore, live_client: memcubed.Client) -> None:
    store.put(ALICE, "diet", {"content": "Alice is vegan", "source": "chat"})
    store.put(ALICE, "city", {"content": "Alice lives in Berlin", "source": "profile"})
    store.put(("users", "bob"), "diet", {"content": "Bob eats everything", "source": "chat"})
    diet = store.get(ALICE, "diet")
    assert diet is not None
    assert (diet.namespace, diet.key, diet.value) == (ALICE, "diet", {"content": "Alice is vegan", "source": "chat"})
    assert store.get(ALICE, "nothing") is None
    assert store.get(("users", "carol"), "diet") is None

    store.put(ALICE, "city", {"content": "Alice moved to Munich", "source": "profile"})
    city = store.get(ALICE, "city")
    assert city is not None and city.value == {"content": "Alice moved to Munich", "source": "profile"}
    cubes = {cube.name: cube for cube in live_client.cubes.list()}
    assert sorted(cubes) == ["langgraph/users/alice", "langgraph/users/bob"]
    memories = list(live_client.memories.list(cubes["langgraph/users/alice"].id))
    assert sorted((m.content, m.version) for m in memories) == [("Alice is vegan", 1), ("Alice moved to Munich", 2)]

    hits = store.search(ALICE, query="what does Alice eat?", limit=1)
    assert [(h.key, h.namespace) for h in hits] == [("diet", ALICE)]
    assert hits[0].score is not None and hits[0].score > 0
    assert [(h.namespace, h.key) for h in store.search(("users",), filter={"source": "chat"})] == [
        (("users", "bob"), "diet"), (ALICE, "diet")]
    assert store.list_namespaces(prefix=("users",)) == [ALICE, ("users", "bob")]
    assert store.list_namespaces(suffix=("bob",)) == [("users", "bob")]
    assert store.list_namespaces(max_depth=1) == [("users",)]

    with pytest.raises(InvalidNamespaceError):
        store.put(("users", "a/b"), "diet", {"content": "x"})

    store.delete(ALICE, "diet")
    assert store.get(ALICE, "diet") is None
    assert [h.key for h in store.search(ALICE)] == ["city"]


async def test_langgraph_store_async_and_in_a_graph(store: MemcubedStore) -> None:
    await store.aput(ALICE, "pet", {"content": "Alice has a dog named Rex"})
    item = await store.aget(ALICE, "pet")
    assert item is not None and item.value == {"content": "Alice has a dog named Rex"}
    assert [h.key for h in await store.asearch(ALICE, query="pets")] == ["pet"]

    class State(TypedDict):
        question: str
        answer: str

    def answer(state: State) -> dict[str, str]:
        hits = get_store().search(ALICE, query=state["question"], limit=1)
        return {"answer": hits[0].value["content"] if hits else ""}

    graph = StateGraph(State)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    out = await graph.compile(store=store).ainvoke({"question": "What is the dog called?", "answer": ""})
    assert out["answer"] == "Alice has a dog named Rex"


@pytest.fixture
def cube(live_client: memcubed.Client) -> Iterator[str]:
    yield live_client.cubes.create(f"lc-{uuid.uuid4().hex[:8]}").id


def test_langchain_retriever_returns_the_context_items(live_client: memcubed.Client, cube: str) -> None:
    live_client.memories.add_many(cube, [{"content": "Alice is allergic to peanuts"},
                                         {"content": "Alice moved to Berlin in 2021"}])
    retriever = MemcubedRetriever(client=live_client, cube_ids=[cube], budget="low", top_k=1)
    docs = retriever.invoke("what can't Alice eat?")
    expected = live_client.context("what can't Alice eat?", [cube], top_k=1, budget="low")
    assert [(d.page_content, d.metadata["memory_id"]) for d in docs] == [
        (item.content, item.memory_id) for item in expected.items]
    assert docs[0].page_content == "Alice is allergic to peanuts"


def test_langchain_chat_history_round_trips_through_messages(live_client: memcubed.Client, cube: str) -> None:
    history = MemcubedChatMessageHistory(live_client, cube, "chat-1")
    history.add_user_message("Hi, I'm Alice and I love hiking")
    history.add_ai_message("Nice to meet you, Alice!")
    history.add_messages([HumanMessage("Any trails near Berlin?"), AIMessage("Try the Grunewald loop.")])
    again = MemcubedChatMessageHistory(live_client, cube, "chat-1")
    assert [(type(m).__name__, m.content) for m in again.messages] == [
        ("HumanMessage", "Hi, I'm Alice and I love hiking"), ("AIMessage", "Nice to meet you, Alice!"),
        ("HumanMessage", "Any trails near Berlin?"), ("AIMessage", "Try the Grunewald loop.")]
    assert MemcubedChatMessageHistory(live_client, cube, "chat-2").messages == []
    hits = live_client.search("hiking", [cube], top_k=1).results
    assert [h.memory.content for h in hits] == ["Hi, I'm Alice and I love hiking"]
    history.clear()
    assert history.messages == []


async def invoke(tool: FunctionTool, arguments: dict[str, Any]) -> Any:
    """Call a tool the way the Agents SDK's runner does: its invoker, with a ToolContext and JSON arguments."""
    raw = json.dumps(arguments)
    return await tool.on_invoke_tool(
        ToolContext(context=None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=raw), raw)


async def test_openai_agents_tools_remember_recall_forget(live_tenant: LiveTenant) -> None:
    async with memcubed.AsyncClient(live_tenant.url, api_key=live_tenant.api_key) as client:
        cube = (await client.cubes.create("agent")).id
        tools = {tool.name: tool for tool in memory_tools(client, cube, budget="low")}
        assert sorted(tools) == ["forget", "recall", "remember"]
        assert tools["remember"].params_json_schema["required"] == ["facts"]
        stored = await invoke(tools["remember"], {"facts": [
            "My home address is 42 Elm Street, Springfield", "I have a dog named Rex"]})
        assert [a["status"] for a in stored["admission"]] == ["admitted", "admitted"]
        recalled = await invoke(tools["recall"], {"query": "What is my dog's name?"})
        assert recalled["abstained"] is False
        assert "I have a dog named Rex" in recalled["context"]
        forgotten = await invoke(tools["forget"], {"request": "Forget my address."})
        assert len(forgotten["forgotten"]) == 1 and forgotten["forget_request_id"]
        assert (await client.memories.get(forgotten["forgotten"][0])).status == "archived"

        missing = memory_tools(client, str(uuid.uuid4()))
        error = json.loads(await invoke(missing[1], {"query": "anything"}))
        assert error["error"]["code"] == "not_found"



EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(example: str, tenant: LiveTenant, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run ``examples/<example>.py``'s main on the live server with a tenant key; return what it printed."""
    monkeypatch.setenv("MEMCUBED_URL", tenant.url)
    monkeypatch.setenv("MEMCUBED_API_KEY", tenant.api_key)
    spec = importlib.util.spec_from_file_location(f"example_{example}", EXAMPLES / f"{example}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.main([]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(("example", "printed"), [
    ("langgraph_memory", ["you> I'm allergic to peanuts.", "agent> Nothing on that yet.",
                          "you> What am I allergic to?", "agent> I remember: I'm allergic to peanuts."]),
    # The low tier's context also brings the turn's neighbour in the session.
    ("langchain_memory", ["recalled: My sister Ana loves jazz and visits Lisbon next week.",
                          "recalled: Great, I'll keep that in mind for her visit.", "history: 2 messages"]),
    ("mcp_client", ["tools: remember, recall, search, get_memory, update_memory, forget, list_cubes, create_cube",
                    "recall: - The user prefers window seats"]),
])
def test_examples_run_against_the_live_server(example: str, printed: list[str], live_tenant: LiveTenant,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_example(example, live_tenant, monkeypatch, capsys) == printed


def test_openai_agents_example_without_a_model_calls_the_tools(live_tenant: LiveTenant,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    remembered, recalled = run_example("openai_agents_memory", live_tenant, monkeypatch, capsys)
    assert remembered.startswith('remember: {"admission": [{"status": "admitted"')
    assert json.loads(recalled.removeprefix("recall: "))["context"].count("The user is vegetarian") == 1
