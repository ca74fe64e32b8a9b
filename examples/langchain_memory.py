"""LangChain on memcubed: a chat history kept as conversation turns, and a retriever that answers from them
within a budget (``memcubed.langchain``).

    pip install "memcubed[langchain]"
    export MEMCUBED_URL=http://127.0.0.1:8080 MEMCUBED_API_KEY=mck_...   # a tenant key
    python examples/langchain_memory.py
"""

from __future__ import annotations

import sys

import memcubed
from memcubed.langchain import MemcubedChatMessageHistory, MemcubedRetriever


def main(argv: list[str] | None = None) -> int:
    name = (argv or sys.argv[1:] or ["langchain-demo"])[0]
    with memcubed.Client() as client:
        cube = next((c for c in client.cubes.list() if c.name == name), None) or client.cubes.create(name)
        history = MemcubedChatMessageHistory(client, cube.id, session_id="trip-planning")
        history.add_user_message("My sister Ana loves jazz and visits Lisbon next week.")
        history.add_ai_message("Great, I'll keep that in mind for her visit.")
        retriever = MemcubedRetriever(client=client, cube_ids=[cube.id], budget="low", top_k=1)
        for doc in retriever.invoke("What music does Ana like?"):
            print(f"recalled: {doc.page_content}")
        print(f"history: {len(history.messages)} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
