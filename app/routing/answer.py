"""The answer module's tiers: low = the local SmolLM2 (the activation service's generate path), mid / high =
the configured OpenAI-compatible models ``llm_model_small`` / ``llm_model_large``. Also ``chat``, the service's
LLM client bound to the settings (extraction at write uses it too)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.config import Settings
from app.errors import NotReady
from app.schemas.activation import GenerateRequest
from app.services.activation import ActivationService
from app.services.base import Principal
from app.services.consolidation import chat_completion

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
    done = chat_completion(settings.llm_base_url, settings.llm_api_key, model, settings.llm_timeout_seconds,
                           messages, max_tokens=max_tokens, json_mode=json_mode)
    return done.text, done.tokens


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
