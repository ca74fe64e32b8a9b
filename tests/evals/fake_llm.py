"""A real HTTP server that speaks the OpenAI ``/chat/completions`` shape with canned replies.

The evaluation code talks to it over the network exactly as to a real endpoint; only the model is fake.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def canned_reply(messages: list[dict[str, str]]) -> str:
    """Answers and verdicts that depend only on the prompt, so tests can predict every score."""
    prompt = messages[-1]["content"]
    if prompt.startswith("Statements to compare:"):  # supersession judge: "switched from X" replaces OLD lines on X
        switched = re.search(r"NEW: .*?switched from (\w+)", prompt, re.IGNORECASE)
        olds = re.findall(r"OLD (\d+): (.*)", prompt)
        return json.dumps({"replaces": [int(i) for i, old in olds
                                        if switched and switched.group(1).lower() in old.lower()]})
    if prompt.startswith("Message to classify:"):  # forget-request classifier: only "make my X vanish" is one
        found = re.search(r"make (?:my )?(.+?) vanish", prompt, re.IGNORECASE)
        return json.dumps({"forget": found is not None, "subject": found.group(1) if found else None})
    if "Generated answer:" in prompt:  # LoCoMo judge: CORRECT iff the gold answer is in the generated one
        gold = re.findall(r"Gold answer: (.*)", prompt)[-1]  # the last one: the first is the example
        gen = re.findall(r"Generated answer: (.*)", prompt)[-1]
        ok = gold.strip().lower() in gen.strip().lower()
        return json.dumps({"label": "CORRECT" if ok else "WRONG"})
    if "Is the model response correct?" in prompt or "identify the question as unanswerable" in prompt:
        return "Yes." if "Model Response: Business Administration" in prompt else "No"
    questions = re.findall(r"Question: (.*)", prompt)
    text = questions[-1] if questions else ""
    if "puppy" in text and "Alice" in text:
        return "Rex"
    if "When did Bob" in text:
        return "In June 2023"
    if "Bob's puppy" in text:
        return "Not mentioned in the conversation"
    if "degree" in text:
        return "Business Administration"
    return "I don't know"


@dataclass
class FakeLLM:
    """Server state: the URL to use and every request body received."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: list[int] = field(default_factory=list)  # status codes to answer before succeeding
    reject_json_mode: bool = False
    delay: float = 0.0  # seconds to wait before each answer (a slow endpoint)
    fail_always: int | None = None  # status code to answer every call with (a failing endpoint)


@contextmanager
def fake_llm_server() -> Iterator[FakeLLM]:
    """Start on a free port in a thread; stop on exit."""
    state = FakeLLM(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client timed out (slowed down)
                self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body["_auth"] = self.headers.get("Authorization")
            state.requests.append(body)
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            if state.delay:
                time.sleep(state.delay)
            if state.fail_always is not None:
                self._send(state.fail_always, {"error": {"message": "down"}})
                return
            if state.fail_first:
                self._send(state.fail_first.pop(0), {"error": {"message": "try again"}})
                return
            if state.reject_json_mode and "response_format" in body:
                self._send(400, {"error": {"message": "response_format not supported"}})
                return
            reply = canned_reply(body["messages"])
            self._send(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
