"""A LangGraph graph whose long-term memory is a memcubed cube, through ``memcubed.langgraph.MemcubedStore``.

The graph has two nodes: ``recall`` searches the user's namespace for what they said before, ``remember``
stores the new message under it. No LLM: the reply quotes the best memory, so it runs with a server alone.

    pip install "memcubed[langgraph]"
    export MEMCUBED_URL=http://127.0.0.1:8080 MEMCUBED_API_KEY=mck_...   # a tenant key
    python examples/langgraph_memory.py
"""

from __future__ import annotations

import sys
import uuid
from typing import TypedDict

import memcubed
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from memcubed.langgraph import MemcubedStore


class State(TypedDict):
    user: str
    message: str
    reply: str


def recall(state: State) -> dict[str, str]:
    hits = get_store().search(("users", state["user"]), query=state["message"], limit=1)
    return {"reply": f"I remember: {hits[0].value['content']}" if hits else "Nothing on that yet."}


def remember(state: State) -> dict[str, str]:
    get_store().put(("users", state["user"]), uuid.uuid4().hex, {"content": state["message"]})
    return {}


def build(store: MemcubedStore):  # type: ignore[no-untyped-def]  # LangGraph's compiled type is generic noise
    graph = StateGraph(State)
    graph.add_node("recall", recall)
    graph.add_node("remember", remember)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "remember")
    graph.add_edge("remember", END)
    return graph.compile(store=store)


def main(argv: list[str] | None = None) -> int:
    user = (argv or sys.argv[1:] or ["alice"])[0]
    with memcubed.Client() as client:
        app = build(MemcubedStore(client, prefix="example"))
        for message in ("I'm allergic to peanuts.", "What am I allergic to?"):
            out = app.invoke({"user": user, "message": message, "reply": ""})
            print(f"you> {message}\nagent> {out['reply']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
