"""The answer-and-judge path against a real fake OpenAI-compatible HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evals.llm import (
    LONGMEMEVAL_JUDGE_PROMPTS,
    ChatClient,
    LLMConfig,
    LLMError,
    all_prompts,
    answer_question,
    judge_answer,
    parse_judge_label,
)
from tests.evals.fake_llm import FakeLLM, fake_llm_server


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with fake_llm_server() as server:
        yield server


def _config(llm: FakeLLM) -> LLMConfig:
    cfg = LLMConfig.from_env(
        {
            "MEMCUBED_LLM_BASE_URL": llm.url + "/",
            "MEMCUBED_LLM_API_KEY": "sk-test",
            "MEMCUBED_LLM_MODEL": "answer-model",
            "MEMCUBED_JUDGE_MODEL": "judge-model",
        }
    )
    assert cfg is not None
    return cfg


def test_config_from_env() -> None:
    assert LLMConfig.from_env({}) is None
    cfg = LLMConfig.from_env({"MEMCUBED_LLM_BASE_URL": "http://x/v1", "MEMCUBED_LLM_MODEL": "m"})
    assert cfg is not None and (cfg.model, cfg.judge_model, cfg.api_key) == ("m", "m", None)
    assert cfg.fingerprint() == {"base_url": "http://x/v1", "model": "m", "judge_model": "m"}


def test_locomo_answer_and_judge(llm: FakeLLM) -> None:
    with ChatClient(_config(llm)) as chat:
        answer = answer_question(chat, "locomo", "What is the name of Alice's puppy?", "08 May 2023 13:56: Alice: Rex")
        assert answer == "Rex"
        assert judge_answer(
            chat, "locomo", "What is the name of Alice's puppy?", "Rex", answer, "single-hop", False
        ) == (
            True,
            '{"label": "CORRECT"}',
        )
        assert judge_answer(chat, "locomo", "q?", "June 2023", "Rex", "temporal", False)[0] is False
    answer_req, judge_req, _ = llm.requests
    assert answer_req["model"] == "answer-model" and answer_req["temperature"] == 0
    assert answer_req["_auth"] == "Bearer sk-test"
    assert "08 May 2023 13:56: Alice: Rex" in answer_req["messages"][0]["content"]
    assert judge_req["model"] == "judge-model" and judge_req["temperature"] == 0
    assert judge_req["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in judge_req["messages"]] == ["system", "user"]
    assert 'json with the key "label"' in judge_req["messages"][1]["content"].lower()


def test_locomo_adversarial_uses_upstream_rule(llm: FakeLLM) -> None:
    with ChatClient(_config(llm)) as chat:
        assert judge_answer(chat, "locomo", "q", "", "Not mentioned in the conversation", "adversarial", True) == (
            True,
            "rule: adversarial",
        )
        assert judge_answer(chat, "locomo", "q", "", "A poodle", "adversarial", True)[0] is False
    assert llm.requests == []  # no LLM call for category 5


def test_longmemeval_judges(llm: FakeLLM) -> None:
    with ChatClient(_config(llm)) as chat:
        ok, raw = judge_answer(
            chat,
            "longmemeval",
            "What degree?",
            "Business Administration",
            "Business Administration",
            "single-session-user",
            False,
        )
        assert (ok, raw) == (True, "Yes.")
        assert judge_answer(chat, "longmemeval", "q", "18 days", "19 days", "temporal-reasoning", False)[0] is False
        assert judge_answer(chat, "longmemeval", "q", "not enough info", "x", "multi-session", True)[0] is False
        ans = answer_question(chat, "longmemeval", "What degree did I graduate with?", "hist", "2023/05/30 (Tue) 23:40")
        assert ans == "Business Administration"
    prompts = [r["messages"][0]["content"] for r in llm.requests]
    assert "off-by-one" in prompts[1]  # temporal-reasoning prompt
    assert "unanswerable" in prompts[2]  # abstention prompt for _abs questions
    assert "Current Date: 2023/05/30 (Tue) 23:40" in prompts[3]
    assert all(r["max_tokens"] == 10 for r in llm.requests[:3])


def test_retries_and_json_mode_fallback(llm: FakeLLM) -> None:
    cfg = _config(llm)
    llm.fail_first = [500, 429]
    with ChatClient(cfg) as chat:
        assert chat.complete([{"role": "user", "content": "Question: When did Bob start?"}], "m") == "In June 2023"
    assert len(llm.requests) == 3
    llm.requests.clear()
    llm.reject_json_mode = True
    with ChatClient(cfg) as chat:
        assert judge_answer(chat, "locomo", "q", "Rex", "Rex", "single-hop", False)[0] is True
    assert ["response_format" in r for r in llm.requests] == [True, False]


def test_hard_errors_are_clear(llm: FakeLLM) -> None:
    cfg = LLMConfig(base_url=llm.url + "/nope", api_key=None, model="m", judge_model="m", max_retries=0)
    with ChatClient(cfg) as chat, pytest.raises(LLMError, match="HTTP 404"):
        chat.complete([{"role": "user", "content": "x"}], "m")
    llm.fail_first = [503, 503]
    cfg = LLMConfig(base_url=llm.url, api_key=None, model="m", judge_model="m", max_retries=1)
    with ChatClient(cfg) as chat, pytest.raises(LLMError, match="failed after retries: HTTP 503"):
        chat.complete([{"role": "user", "content": "x"}], "m")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('{"label": "CORRECT"}', True),
        ('{"label": "WRONG"}', False),
        ('The answer is right.\n```json\n{"label": "CORRECT"}\n```', True),
        ("Reasoning... CORRECT", True),
        ("CORRECT or WRONG?", False),
        ("", False),
    ],
)
def test_parse_judge_label(text: str, label: bool) -> None:
    assert parse_judge_label(text) is label


def test_prompts_listed_for_the_report() -> None:
    prompts = all_prompts()
    assert {"locomo_answer", "locomo_judge", "longmemeval_answer", "longmemeval_judge[abstention]"} <= set(prompts)
    assert set(LONGMEMEVAL_JUDGE_PROMPTS) == {
        "single-session-user",
        "single-session-assistant",
        "single-session-preference",
        "multi-session",
        "temporal-reasoning",
        "knowledge-update",
        "abstention",
    }
