"""Answer-and-judge protocol over an OpenAI-compatible ``/chat/completions`` endpoint (httpx).

LoCoMo follows the Mem0 / MemOS evaluations: answer from the retrieved memories at temperature 0,
then an LLM judge labels the answer CORRECT or WRONG as a JSON object ``{"label": ...}``; category 5
(adversarial) is scored by LoCoMo's own rule (the answer must say the information is not there).
LongMemEval follows its official evaluation: one yes/no judge prompt per question type and a
separate one for abstention (``_abs``) questions.

The prompt texts below are written for memcubed as faithful equivalents of those upstream prompts
(same instructions, same inputs, same output format); they are printed into every report.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

# --------------------------------------------------------------------------------------------------
# Prompts

LOCOMO_ANSWER_PROMPT = """You are a memory assistant that answers questions from memories of a conversation.

# CONTEXT
You are given memories from a conversation between two speakers. Each memory starts with the date
of the session it comes from.

# INSTRUCTIONS
1. Read all the memories carefully, paying attention to their dates.
2. If the question asks about a specific event or fact, look for direct evidence in the memories.
3. If memories contradict each other, prefer the most recent one.
4. Convert relative time references ("last year", "two months ago") into absolute dates, months or
   years using the date of the memory they appear in. For example, a memory dated 4 May 2022 that
   says "went to India last year" means the trip happened in 2021.
5. Use only the memories. Do not confuse people mentioned in a memory with the speakers.
6. Answer in fewer than 5-6 words.

Memories:

{memories}

Question: {question}

Answer:"""

LOCOMO_JUDGE_PROMPT = """Your task is to label an answer to a question as 'CORRECT' or 'WRONG'. You are given:
    (1) a question (asked by one user to another user),
    (2) a 'gold' (ground truth) answer,
    (3) a generated answer,
which you will label CORRECT or WRONG.

The question asks about something one user should know about the other user from their earlier
conversations. The gold answer is usually short and names the topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer may be much longer; be generous: as long as it is about the same thing as the
gold answer, label it CORRECT.

For questions about time, the gold answer is a date, month, year or period. The generated answer
may be longer or use relative references ("last Tuesday", "next month"); be generous: as long as it
refers to the same date or period as the gold answer, label it CORRECT, whatever the format
("May 7th" and "7 May" are the same date).

Now the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First give a one-sentence explanation of your reasoning, then finish with CORRECT or WRONG.
Do not include both CORRECT and WRONG in your response.

Return the label CORRECT or WRONG as JSON with the key "label"."""

LOCOMO_JUDGE_SYSTEM = "You are an expert grader who decides whether answers match a gold standard answer."

# LoCoMo's upstream rule for adversarial (category 5) questions.
LOCOMO_ADVERSARIAL_MARKERS = ("no information available", "not mentioned")

LONGMEMEVAL_ANSWER_PROMPT = """I will give you several past chat sessions between you and a user. \
Answer the question using the relevant chat history.

History Chats:

{memories}

Current Date: {question_date}
Question: {question}
Answer:"""

_LME_BASE = (
    "I will give you a question, a correct answer, and a response from a model. Answer yes if the "
    "response contains the correct answer, otherwise answer no. If the response is equivalent to the "
    "correct answer or contains all the intermediate steps needed to get it, also answer yes. If the "
    "response contains only part of the information the answer requires, answer no."
)
_LME_TAIL = (
    "\n\nQuestion: {question}\n\nCorrect Answer: {answer}\n\nModel Response: {response}\n\n"
    "Is the model response correct? Answer yes or no only."
)
LONGMEMEVAL_JUDGE_PROMPTS: dict[str, str] = {
    "single-session-user": _LME_BASE + _LME_TAIL,
    "single-session-assistant": _LME_BASE + _LME_TAIL,
    "multi-session": _LME_BASE + _LME_TAIL,
    "temporal-reasoning": _LME_BASE
    + " Also, do not penalise off-by-one errors in a number of days: if the question asks for a number "
    "of days, weeks, months, etc. and the response is off by one (e.g. 19 days where the answer is 18), "
    "the response is still correct." + _LME_TAIL,
    "knowledge-update": _LME_BASE
    + " If the response mentions earlier information together with an updated answer, it is correct as "
    "long as the updated answer is the required one." + _LME_TAIL,
    "single-session-preference": (
        "I will give you a question, a rubric describing the desired personalised response, and a response "
        "from a model. Answer yes if the response satisfies the rubric, otherwise answer no. The response "
        "need not reflect every point of the rubric; it is correct as long as it recalls and uses the "
        "user's personal information correctly.\n\nQuestion: {question}\n\nRubric: {answer}\n\n"
        "Model Response: {response}\n\nIs the model response correct? Answer yes or no only."
    ),
    "abstention": (
        "I will give you an unanswerable question, an explanation, and a response from a model. Answer yes "
        "if the model correctly identifies the question as unanswerable. The model may say that the "
        "information is incomplete, or that some other information is given but not the information "
        "asked for.\n\nQuestion: {question}\n\nExplanation: {answer}\n\nModel Response: {response}\n\n"
        "Does the model correctly identify the question as unanswerable? Answer yes or no only."
    ),
}

PROMPT_SOURCES = (
    "LoCoMo answer and judge prompts: equivalents of mem0ai/mem0 `evaluation/prompts.py` (ANSWER_PROMPT_ZEP, "
    "one memory list) and `evaluation/metrics/llm_judge.py` (ACCURACY_PROMPT), as also used by "
    "MemTensor/MemOS `evaluation/scripts/locomo/locomo_eval.py`; category 5 by snap-research/locomo "
    "`task_eval/evaluation.py`. LongMemEval prompts: equivalents of xiaowu0162/LongMemEval "
    "`src/evaluation/evaluate_qa.py` (get_anscheck_prompt) and its generation prompt."
)


def all_prompts() -> dict[str, str]:
    """Every prompt by name, for the report."""
    out = {
        "locomo_answer": LOCOMO_ANSWER_PROMPT,
        "locomo_judge_system": LOCOMO_JUDGE_SYSTEM,
        "locomo_judge": LOCOMO_JUDGE_PROMPT,
        "locomo_adversarial_rule": "correct iff the answer contains one of: "
        + ", ".join(repr(m) for m in LOCOMO_ADVERSARIAL_MARKERS),
        "longmemeval_answer": LONGMEMEVAL_ANSWER_PROMPT,
    }
    out.update({f"longmemeval_judge[{k}]": v for k, v in LONGMEMEVAL_JUDGE_PROMPTS.items()})
    return out


# --------------------------------------------------------------------------------------------------
# Client


class LLMError(RuntimeError):
    """The endpoint failed after retries or answered something unusable."""


@dataclass(frozen=True)
class LLMConfig:
    """Where the answerer and judge live; read from MEMCUBED_LLM_* environment variables."""

    base_url: str
    api_key: str | None
    model: str
    judge_model: str
    timeout_s: float = 60.0
    max_retries: int = 4

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LLMConfig | None:
        """``None`` when no endpoint is configured: the LLM part is then skipped and reported so."""
        env = dict(os.environ) if env is None else env
        base = env.get("MEMCUBED_LLM_BASE_URL", "").strip()
        if not base:
            return None
        model = env.get("MEMCUBED_LLM_MODEL", "").strip() or "gpt-4o-mini"
        return cls(
            base_url=base.rstrip("/"),
            api_key=env.get("MEMCUBED_LLM_API_KEY") or None,
            model=model,
            judge_model=env.get("MEMCUBED_JUDGE_MODEL", "").strip() or model,
        )

    def fingerprint(self) -> dict[str, str]:
        """What makes LLM results comparable (no secrets)."""
        return {"base_url": self.base_url, "model": self.model, "judge_model": self.judge_model}


class ChatClient:
    """Minimal OpenAI-compatible chat client with retries on 429/5xx and connection errors."""

    def __init__(self, config: LLMConfig, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.config = config
        self._http = httpx.Client(
            base_url=config.base_url, headers=headers, timeout=config.timeout_s, transport=transport
        )

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> str:
        """One chat completion at temperature 0; returns the message text."""
        body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        delay = 0.5
        last: str = ""
        for attempt in range(self.config.max_retries + 1):
            try:
                resp = self._http.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 400 and json_mode and "response_format" in body:
                    body.pop("response_format")  # endpoints without JSON mode: the prompt asks for JSON
                    continue
                if resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                elif resp.status_code >= 400:
                    raise LLMError(f"HTTP {resp.status_code} from {self.config.base_url}: {resp.text[:300]}")
                else:
                    try:
                        return str(resp.json()["choices"][0]["message"]["content"] or "")
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise LLMError(f"unexpected completion shape: {resp.text[:300]}") from exc
            if attempt < self.config.max_retries:
                time.sleep(delay)
                delay *= 2
        raise LLMError(f"LLM endpoint failed after retries: {last}")


# --------------------------------------------------------------------------------------------------
# Protocol steps


def parse_judge_label(text: str) -> bool:
    """CORRECT/WRONG from the judge's JSON, tolerating prose or code fences around it."""
    for match in re.finditer(r"\{[^{}]*\}", text, re.S):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        label = obj.get("label") if isinstance(obj, dict) else None
        if isinstance(label, str):
            return label.strip().upper() == "CORRECT"
    upper = text.upper()
    return "CORRECT" in upper and "WRONG" not in upper


def locomo_adversarial_correct(answer: str) -> bool:
    """LoCoMo category 5: correct when the answer says the information is not there."""
    low = answer.lower()
    return any(m in low for m in LOCOMO_ADVERSARIAL_MARKERS)


def answer_question(
    client: ChatClient, dataset: str, question: str, memories: str, question_date: str | None = None
) -> str:
    """The answerer step, from the context text the system retrieved."""
    if dataset == "longmemeval":
        prompt = LONGMEMEVAL_ANSWER_PROMPT.format(
            memories=memories, question_date=question_date or "", question=question
        )
    else:
        prompt = LOCOMO_ANSWER_PROMPT.format(memories=memories, question=question)
    return client.complete([{"role": "user", "content": prompt}], client.config.model).strip()


def judge_answer(
    client: ChatClient,
    dataset: str,
    question: str,
    gold: str,
    response: str,
    category: str,
    abstention: bool,
) -> tuple[bool, str]:
    """Judge one answer; returns (correct, raw judge output)."""
    if dataset == "longmemeval":
        key = "abstention" if abstention else category
        prompt = LONGMEMEVAL_JUDGE_PROMPTS[key].format(question=question, answer=gold, response=response)
        raw = client.complete([{"role": "user", "content": prompt}], client.config.judge_model, max_tokens=10)
        return "yes" in raw.lower(), raw
    if abstention:  # LoCoMo category 5: rule-based, as upstream
        return locomo_adversarial_correct(response), "rule: adversarial"
    prompt = LOCOMO_JUDGE_PROMPT.format(question=question, gold_answer=gold, generated_answer=response)
    raw = client.complete(
        [{"role": "system", "content": LOCOMO_JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
        client.config.judge_model,
        json_mode=True,
    )
    return parse_judge_label(raw), raw
