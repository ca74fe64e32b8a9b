"""The one client for every LLM step (summaries, forget-request classifier, extraction, answers): any
OpenAI-compatible ``/chat/completions`` endpoint set by ``MEMCUBED_LLM_*``; every caller also works without one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from app.config import Settings


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # prompt + completion tokens as the endpoint reports them (0 when it does not)


def chat_completion(base_url: str, api_key: str | None, model: str, timeout: float,
                    messages: list[dict[str, str]], *, max_tokens: int | None = None,
                    json_mode: bool = False) -> Completion:
    """One deterministic call to an OpenAI-compatible ``/chat/completions``: every LLM step of the service
    (summaries, forget-request classifier, extraction, answers) goes through here."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body: dict[str, Any] = {"model": model, "temperature": 0, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    r = httpx.post(f"{base_url.rstrip('/')}/chat/completions", json=body, headers=headers, timeout=timeout)
    r.raise_for_status()
    data = r.json()
    usage = data.get("usage") or {}
    return Completion(str(data["choices"][0]["message"]["content"]).strip(), int(usage.get("total_tokens") or 0))


def chat(settings: Settings, model: str, messages: list[dict[str, str]], max_tokens: int,
         json_mode: bool = False) -> tuple[str, int]:
    """One chat completion on the configured endpoint: (text, tokens used)."""
    assert settings.llm_base_url is not None
    done = chat_completion(settings.llm_base_url, settings.llm_api_key, model, settings.llm_timeout_seconds,
                           messages, max_tokens=max_tokens, json_mode=json_mode)
    return done.text, done.tokens
