"""The answer module's tiers: low = the local SmolLM2 (the activation service's generate path), mid / high =
the configured OpenAI-compatible models ``llm_model_small`` / ``llm_model_large``. Also the one chat call
the LLM tiers share (extraction at write uses it too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from app.config import Settings
from app.errors import NotReady
from app.schemas.activation import GenerateRequest
from app.services.activation import ActivationService
from app.services.base import Principal

SYSTEM = ("You answer questions about a person's conversations from the memories given. Use only them; "
          "answer in a few words. If they do not say, answer: I don't know.")


@dataclass
class Reply:
    text: str
    model: str
    tokens: int  # prompt + completion tokens as the model reported them (0 when it does not)
    llm_calls: int


def prompt(question: str, context: str) -> str:
    return f"Memories:\n{context}\n\nQuestion: {question}\nAnswer:"


def chat(settings: Settings, model: str, messages: list[dict[str, str]], max_tokens: int,
         json_mode: bool = False) -> tuple[str, int]:
    """One chat completion on the configured endpoint: (text, tokens used)."""
    assert settings.llm_base_url is not None
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    body: dict[str, Any] = {"model": model, "temperature": 0, "max_tokens": max_tokens, "messages": messages}
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    r = httpx.post(f"{settings.llm_base_url.rstrip('/')}/chat/completions", json=body, headers=headers,
                   timeout=settings.llm_timeout_seconds)
    r.raise_for_status()
    data = r.json()
    usage = data.get("usage") or {}
    return str(data["choices"][0]["message"]["content"]).strip(), int(usage.get("total_tokens") or 0)


class Answerer:
    def __init__(self, settings: Settings, activation: ActivationService) -> None:
        self.settings = settings
        self.activation = activation

    def model_for(self, tier: str) -> str:
        s = self.settings
        if tier == "low":
            return s.activation_model
        return (s.llm_model_small if tier == "mid" else s.llm_model_large) or s.llm_model

    def answer(self, principal: Principal, tier: str, question: str, context: str) -> Reply:
        text = prompt(question, context)
        if tier == "low":
            out = self.activation.generate(principal, GenerateRequest(
                prompt=f"{SYSTEM}\n\n{text}", chat=True, use_activation=False,
                max_new_tokens=self.settings.answer_max_new_tokens))
            return Reply(out.text.strip(), out.model_id, out.prompt_tokens + len(out.token_ids), 0)
        model = self.model_for(tier)
        try:
            reply, used = chat(self.settings, model, [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": text}],
                               self.settings.answer_max_new_tokens)
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            raise NotReady(f"the answer model {model!r} failed: {exc}", {"model": model}) from exc
        return Reply(reply, model, used, 1)
