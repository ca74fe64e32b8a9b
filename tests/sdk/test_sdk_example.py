"""``examples/agent_loop.py`` against the live server: it recalls before answering and stores every turn."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import httpx
import memcubed
import pytest

from tests.sdk.sdk_helpers import LiveTenant

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_loop.py"


@pytest.fixture(scope="module")
def agent_loop() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agent_loop_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_canned_agent_recalls_and_stores_every_turn(
    agent_loop: ModuleType, live_client: memcubed.Client
) -> None:
    cube = agent_loop.ensure_cube(live_client, "agent")
    assert agent_loop.ensure_cube(live_client, "agent").id == cube.id  # existing cube reused
    agent = agent_loop.Agent(
        memory=live_client, cube_id=cube.id, user_id="alice", answer=agent_loop.canned_answer
    )
    out: list[str] = []
    turns = agent_loop.run(
        agent,
        ["I am allergic to peanuts.", "The weather is nice today.", "What am I allergic to?"],
        out.append,
    )
    assert turns[0].recalled == []
    assert turns[0].reply == "Nice to meet you! I'll remember what you tell me."
    assert turns[2].recalled[0].memory.content == "I am allergic to peanuts."
    assert (
        turns[2].reply
        == "(canned reply, no LLM configured) I remember you told me: I am allergic to peanuts."
    )
    assert out[-1] == f"agent> {turns[2].reply}"
    stored = list(live_client.memories.list(cube.id, session_id=agent.session_id))
    assert len(stored) == 6
    assert sorted((m.metadata["role"], m.content) for m in stored if m.metadata["role"] == "user") == [
        ("user", "I am allergic to peanuts."),
        ("user", "The weather is nice today."),
        ("user", "What am I allergic to?"),
    ]
    assert {(m.user_id, m.agent_id) for m in stored} == {("alice", "agent-loop")}
    assert all(m.occurred_at is not None for m in stored)


def test_openai_compatible_answerer_gets_the_recalled_memories(
    agent_loop: ModuleType, live_client: memcubed.Client
) -> None:
    seen: list[dict[str, object]] = []

    def llm(request: httpx.Request) -> httpx.Response:
        assert request.url == "http://llm.test/v1/chat/completions"
        assert request.headers["Authorization"] == "Bearer sk-test"
        seen.append(json.loads(request.content))
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": " Lisbon. "}}]}
        )

    answer = agent_loop.openai_answerer(
        "http://llm.test/v1/", "sk-test", "small-model", http=httpx.Client(transport=httpx.MockTransport(llm))
    )
    cube = live_client.cubes.create("llm-agent")
    agent = agent_loop.Agent(memory=live_client, cube_id=cube.id, user_id="bob", answer=answer)
    assert agent.turn("I moved to Lisbon in May.").reply == "Lisbon."
    assert agent.turn("Where do I live?").reply == "Lisbon."
    body = seen[1]
    assert body["model"] == "small-model"
    messages = body["messages"]
    assert isinstance(messages, list)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "user] I moved to Lisbon in May." in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "Where do I live?"}


def test_answerer_choice_from_environment(agent_loop: ModuleType) -> None:
    answer, label = agent_loop.answerer_from_env({})
    assert answer is agent_loop.canned_answer
    assert label.startswith("canned replies")
    env = {"OPENAI_BASE_URL": "http://llm.test/v1", "OPENAI_API_KEY": "k", "MEMCUBED_ANSWER_MODEL": "m"}
    answer, label = agent_loop.answerer_from_env(env)
    assert answer is not agent_loop.canned_answer
    assert label == "m at http://llm.test/v1"


def test_main_runs_the_demo(
    agent_loop: ModuleType,
    live_tenant: LiveTenant,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEMCUBED_URL", live_tenant.url)
    monkeypatch.setenv("MEMCUBED_API_KEY", live_tenant.api_key)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "MEMCUBED_ANSWER_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert agent_loop.main(["--demo", "--cube", "demo"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("you> ") for line in printed) == len(agent_loop.DEMO_SCRIPT)
    assert sum(line.startswith("agent> ") for line in printed) == len(agent_loop.DEMO_SCRIPT)
    with memcubed.Client(live_tenant.url, api_key=live_tenant.api_key) as client:
        cube = next(c for c in client.cubes.list() if c.name == "demo")
        assert client.cubes.get(cube.id).memory_count == 2 * len(agent_loop.DEMO_SCRIPT)
