"""A small chat agent with long-term memory in memcubed.

Each turn: search the cube for memories relevant to the user's message, put them in the prompt, answer,
then store both sides of the turn with ``messages.add`` so later turns (and later sessions) can recall
them. Memory is scoped per user through ``user_id`` on writes and as a search filter.

Answers come from an OpenAI-compatible chat endpoint when ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and
``MEMCUBED_ANSWER_MODEL`` are all set; otherwise a canned reply quotes the best memory, so the loop runs
with nothing but a memcubed server.

    export MEMCUBED_URL=http://127.0.0.1:8080 MEMCUBED_API_KEY=mck_...   # a tenant key
    python examples/agent_loop.py              # chat on stdin; an empty line or Ctrl-D ends
    python examples/agent_loop.py --demo       # a scripted conversation that shows recall
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import memcubed

ChatMessage = dict[str, str]
Answerer = Callable[[list[ChatMessage]], str]

SYSTEM_PROMPT = (
    "You are a helpful assistant with long-term memory. Relevant memories about the user are listed "
    "below, most relevant first, with when they happened. Use them when they help; do not invent others."
)
DEMO_SCRIPT = (
    "Hi! I'm Alice. I'm allergic to peanuts, and I just moved to Lisbon.",
    "My sister Ana is visiting next week; she loves jazz.",
    "Can you suggest a snack for our trip? Remember my allergy.",
    "Which city do I live in now?",
)


@dataclass
class Turn:
    """What one turn produced: the reply and the memories it was based on."""

    reply: str
    recalled: list[memcubed.SearchHit]


@dataclass
class Agent:
    """Retrieve, answer, remember. ``answer`` is the LLM (or the canned fallback)."""

    memory: memcubed.Client
    cube_id: str
    user_id: str
    answer: Answerer
    session_id: str = field(default_factory=lambda: f"session-{uuid.uuid4().hex[:8]}")
    top_k: int = 5
    min_score: float = 0.2
    recent_turns: int = 6
    history: list[ChatMessage] = field(default_factory=list)

    def turn(self, user_message: str) -> Turn:
        said_at = datetime.now(UTC)
        found = self.memory.search(
            user_message, [self.cube_id], top_k=self.top_k, filters={"user_id": self.user_id}
        )
        recalled = [hit for hit in found.results if hit.score >= self.min_score]
        reply = self.answer(build_prompt(recalled, self.history[-self.recent_turns :], user_message))
        # One idempotency key per turn: a retried write of this turn is stored once.
        self.memory.messages.add(
            self.cube_id,
            self.session_id,
            [
                {"role": "user", "content": user_message, "speaker": self.user_id, "timestamp": said_at},
                {"role": "assistant", "content": reply, "timestamp": datetime.now(UTC)},
            ],
            user_id=self.user_id,
            agent_id="agent-loop",
            idempotency_key=f"{self.session_id}:{len(self.history) // 2}",
        )
        self.history += [{"role": "user", "content": user_message}, {"role": "assistant", "content": reply}]
        return Turn(reply, recalled)


def build_prompt(
    recalled: Sequence[memcubed.SearchHit], recent: Sequence[ChatMessage], message: str
) -> list[ChatMessage]:
    """System prompt with the recalled memories, the recent conversation, then the new message."""
    lines = [SYSTEM_PROMPT, "", "Memories:"]
    for hit in recalled:
        when = (hit.memory.occurred_at or hit.memory.created_at).astimezone(UTC)
        who = hit.memory.metadata.get("role", hit.memory.memory_type)
        lines.append(f"- [{when:%Y-%m-%d %H:%M} UTC, {who}] {hit.memory.content}")
    if not recalled:
        lines.append("- (none yet)")
    return [{"role": "system", "content": "\n".join(lines)}, *recent, {"role": "user", "content": message}]


def canned_answer(prompt: list[ChatMessage]) -> str:
    """The no-LLM fallback: quote the most relevant thing the user said before, if anything."""
    memories = [
        line for line in prompt[0]["content"].splitlines() if line.startswith("- [") and ", user]" in line
    ]
    if not memories:
        return "Nice to meet you! I'll remember what you tell me."
    return f"(canned reply, no LLM configured) I remember you told me: {memories[0].split('] ', 1)[1]}"


def openai_answerer(base_url: str, api_key: str, model: str, http: httpx.Client | None = None) -> Answerer:
    """An answerer backed by any OpenAI-compatible ``/chat/completions`` endpoint, over plain httpx."""
    client = http or httpx.Client(timeout=60.0)
    url = base_url.rstrip("/") + "/chat/completions"

    def answer(prompt: list[ChatMessage]) -> str:
        response = client.post(
            url,
            headers={"Authorization": f"Bearer {api_key}"},
            json={"model": model, "messages": prompt, "temperature": 0.3},
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"]).strip()

    return answer


def answerer_from_env(environ: dict[str, str] | None = None) -> tuple[Answerer, str]:
    """The OpenAI-compatible answerer when all three variables are set, else the canned one."""
    env = dict(os.environ) if environ is None else environ
    base_url, api_key, model = (
        env.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "MEMCUBED_ANSWER_MODEL")
    )
    if base_url and api_key and model:
        return openai_answerer(base_url, api_key, model), f"{model} at {base_url}"
    return (
        canned_answer,
        "canned replies (set OPENAI_BASE_URL, OPENAI_API_KEY and MEMCUBED_ANSWER_MODEL for an LLM)",
    )


def ensure_cube(client: memcubed.Client, name: str) -> memcubed.Cube:
    """The tenant's cube with this name, created on first use."""
    try:
        return client.cubes.create(name, description="Memories of the example agent loop")
    except memcubed.ConflictError:
        return next(cube for cube in client.cubes.list() if cube.name == name)


def run(
    agent: Agent, messages: Iterable[str], out: Callable[[str], object] = print, echo: bool = False
) -> list[Turn]:
    """Run turns until the messages end or one is empty; print what was recalled and the replies."""
    turns = []
    for message in messages:
        if not message.strip():
            break
        if echo:
            out(f"you> {message}")
        turn = agent.turn(message.strip())
        for hit in turn.recalled:
            out(f"    recalled {hit.score:.2f}: {hit.memory.content}")
        out(f"agent> {turn.reply}")
        turns.append(turn)
    return turns


def _stdin_lines() -> Iterable[str]:
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cube", default="agent-loop", help="cube name (created if missing)")
    parser.add_argument("--user", default="alice", help="user id the memories belong to")
    parser.add_argument("--demo", action="store_true", help="run a scripted conversation instead of stdin")
    args = parser.parse_args(argv)

    answer, answered_by = answerer_from_env()
    try:
        with memcubed.Client() as client:
            cube = ensure_cube(client, args.cube)
            agent = Agent(memory=client, cube_id=cube.id, user_id=args.user, answer=answer)
            print(f"memcubed at {client.base_url}, cube {cube.name} ({cube.id}); answers: {answered_by}")
            run(agent, DEMO_SCRIPT if args.demo else _stdin_lines(), echo=args.demo)
    except memcubed.MemcubedError as exc:
        print(f"memcubed error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
