"""The answer module's tiers: low = the local SmolLM2 (the generation service), mid / high = the configured
OpenAI-compatible models ``llm_model_small`` / ``llm_model_large`` through ``app.llm``."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.errors import NotReady
from app.llm import LLMUnavailable, chat, fell_back
from app.principal import Principal
from app.schemas.activation import GenerateRequest
from app.services.generation import GenerationService

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


class Answerer:
    def __init__(self, settings: Settings, generation: GenerationService) -> None:
        self.settings = settings
        self.generation = generation

    def model_for(self, tier: str) -> str:
        s = self.settings
        if tier == "low":
            return s.activation_model
        return (s.llm_model_small if tier == "mid" else s.llm_model_large) or s.llm_model

    def answer(self, principal: Principal, tier: str, question: str, context: str) -> Reply:
        text = prompt(question, context)
        if tier == "low":
            out = self.generation.generate(principal, GenerateRequest(
                prompt=f"{SYSTEM}\n\n{text}", chat=True, use_activation=False,
                max_new_tokens=self.settings.answer_max_new_tokens))
            return Reply(out.text.strip(), out.model_id, out.prompt_tokens + len(out.token_ids), 0)
        model = self.model_for(tier)
        try:
            reply, used = chat(self.settings, model, [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": text}],
                               self.settings.answer_max_new_tokens)
        except (LLMUnavailable, KeyError, ValueError, TypeError) as exc:
            fell_back(exc)
            reason = exc.reason if isinstance(exc, LLMUnavailable) else "error"
            raise NotReady(f"the answer model {model!r} failed: {exc}",
                           {"model": model, "llm": {"used": False, "fallback": reason}}) from exc
        return Reply(reply, model, used, 1)
