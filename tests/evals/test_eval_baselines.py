"""Baselines on the tiny conversation: exact rankings, one shape for all."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from evals.baselines import (
    BM25Baseline,
    DenseBaseline,
    FullContextBaseline,
    RecencyBaseline,
    format_turn,
    make_baselines,
    model_path,
    token_counter,
)
from evals.datasets import Conversation, load_locomo
from tests.evals.tiny import write_tiny_locomo

ALL = ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2", "D2:3"]


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Conversation:
    return load_locomo(write_tiny_locomo(tmp_path_factory.mktemp("tiny"))).conversations[0]


def test_recency(conv: Conversation) -> None:
    b = RecencyBaseline()
    b.index(conv)
    assert b.retrieve(conv.questions[0], 20) == ["D2:3", "D2:2", "D2:1", "D1:3", "D1:2", "D1:1"]
    assert b.retrieve(conv.questions[0], 2) == ["D2:3", "D2:2"]


def test_bm25_exact_ranks(conv: Conversation) -> None:
    b = BM25Baseline()
    b.index(conv)
    q = conv.questions
    # "What is the name of Alice's puppy?" -> what, name, alic, puppi
    assert b.retrieve(q[0], 20) == ["D1:1", "D1:2", "D1:3", "D2:2"]
    # "When did Bob start learning the violin?" -> D2:1 has bob, start, learn, violin
    assert b.retrieve(q[1], 20) == ["D2:1", "D2:2", "D1:2", "D2:3"]
    assert b.retrieve(q[2], 20) == ["D2:3", "D2:1", "D2:2", "D1:2"]
    assert b.retrieve(q[1], 2) == ["D2:1", "D2:2"]
    # no shared term: nothing is a hit (zero scores are not returned)
    assert b.retrieve(q[4], 20) == []


def test_dense_faiss(conv: Conversation) -> None:
    b = DenseBaseline()
    b.index(conv)
    for q in conv.questions:
        ranked = b.retrieve(q, 20)
        assert sorted(ranked) == ALL  # every turn, each once
    assert b.retrieve(conv.questions[1], 20)[0] == "D2:1"  # violin start
    assert b.retrieve(conv.questions[2], 3)[:2] == ["D2:1", "D2:3"]  # violin teacher
    assert len(b.retrieve(conv.questions[0], 3)) == 3


def test_full_context_budget_keeps_most_recent(conv: Conversation) -> None:
    # costs measured with the model's own tokenizer, independently of TokenCounter
    tok = AutoTokenizer.from_pretrained(str(model_path()))
    turns = {t.id: t for t in conv.turns}
    cost = {i: len(tok(format_turn(turns[i]) + "\n", add_special_tokens=False)["input_ids"]) for i in ALL}
    budget = cost["D2:3"] + cost["D2:2"]
    b = FullContextBaseline(budget)
    b.index(conv)
    assert b.retrieve(conv.questions[0], 1) == ["D2:3", "D2:2"]  # depth does not cut a full context
    b = FullContextBaseline(budget - 1)
    b.index(conv)
    assert b.retrieve(conv.questions[0], 20) == ["D2:3"]
    b = FullContextBaseline(10_000)
    b.index(conv)
    assert b.retrieve(conv.questions[0], 20) == list(reversed(ALL))


def test_token_counter_is_untruncated() -> None:
    counter = token_counter()
    assert counter.count("") == 0
    assert counter.count("hello world") == 2
    assert counter.count("hello world " * 300) == 600  # the model's 128-token truncation is off
    assert counter.count_many(["hello", "hello world"]) == [1, 2]


def test_make_baselines() -> None:
    assert [b.name for b in make_baselines(["bm25", "recency"])] == ["bm25", "recency"]
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        make_baselines(["nope"])


def test_same_shape(conv: Conversation, tmp_path: Path) -> None:
    for b in make_baselines(["full-context", "recency", "bm25", "dense"]):
        b.index(conv)
        ranked = b.retrieve(conv.questions[0], 20)
        assert isinstance(ranked, list) and all(isinstance(i, str) and i in ALL for i in ranked)
