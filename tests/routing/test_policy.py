"""Query features, the documented rules, and loading trained policy files (pure: no server)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.budget.features import FEATURE_NAMES, QueryFeatures, featurize
from app.budget.policy import LearnedPolicy, PolicyStore, RulePolicy, clamp, load_policy, policy_paths
from app.budget.train import fit, read_log, train
from tests.routing.synthetic import write_log

ALL = {"retrieval": ["low", "mid", "high"], "context": ["low", "mid", "high"], "answer": ["low", "mid", "high"]}


def test_features_exact_values() -> None:
    f = featurize("When did Caroline go to the LGBTQ support group?", 419, 19, False)
    assert f == QueryFeatures(length=9, question_word="when", time_expressions=0, entities=2, multi_hop=False,
                              cube_size=419, sessions=19, cached=False)
    f = featurize("What did Melanie paint last week and in May 2023?", 10, 2, True)
    assert (f.question_word, f.time_expressions, f.entities, f.multi_hop, f.cached) == ("what", 2, 1, True, True)
    f = featurize("Would Caroline likely pursue writing?", 0, 0, False)
    assert (f.question_word, f.multi_hop, f.length) == ("yes_no", True, 5)
    assert featurize("violin teacher", 5, 1, False).question_word == "other"
    assert len(f.vector()) == len(FEATURE_NAMES)
    assert featurize("x", -3, -1, False).cube_size == 0


@pytest.mark.parametrize(("query", "expected"), [
    ("When did Bob start learning the violin?", {"retrieval": "high", "context": "mid", "answer": "high"}),
    ("What is the name of Alice's puppy?", {"retrieval": "mid", "context": "low", "answer": "mid"}),
    ("How many children does Melanie have?", {"retrieval": "high", "context": "high", "answer": "high"}),
    ("violin teacher", {"retrieval": "low", "context": "low", "answer": "mid"}),
])
def test_rules_exact_decisions(query: str, expected: dict[str, str]) -> None:
    decision = RulePolicy().choose(featurize(query, 600, 19, False), ALL)
    assert decision.tiers == expected
    assert decision.version is None and decision.lam is None
    assert all(r.startswith("rule: ") for r in decision.reasons.values())


def test_rules_honour_allowed_tiers_and_say_so() -> None:
    f = featurize("When did Bob start learning the violin?", 600, 19, False)
    decision = RulePolicy().choose(f, {"retrieval": ["low", "mid"], "answer": ["low"]})
    assert decision.tiers == {"retrieval": "mid", "answer": "low"}  # only the modules asked about
    assert decision.reasons["retrieval"] == "rule: time expression or 'when' question (high not allowed)"
    assert clamp("context", "low", ["mid", "high"]) == ("mid", " (low not allowed)")
    assert clamp("context", "mid", ["low", "high"]) == ("low", " (mid not allowed)")  # cheaper first
    with pytest.raises(ValueError, match="no tier allowed"):
        clamp("context", "mid", [])


def test_no_policy_file_means_rules_without_warning(tmp_path: Path) -> None:
    policy, warnings = load_policy(tmp_path)
    assert isinstance(policy, RulePolicy) and warnings == []
    assert policy.expected_cost("retrieval", "low") == {"ms": 5.0, "tokens": 0.0, "llm_calls": 0.0}


@pytest.fixture
def trained_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    train(write_log(tmp_path / "log.jsonl"), data_dir, lam=0.1)
    return data_dir


def test_trained_policy_is_deterministic_and_survives_reload(trained_dir: Path) -> None:
    when = featurize("When did Gus move to Kyiv?", 500, 11, False)
    what = featurize("What is the name of Gus's dog?", 500, 11, False)
    policy, warnings = load_policy(trained_dir)
    assert isinstance(policy, LearnedPolicy) and warnings == []
    first = policy.choose(when, ALL)
    assert first.tiers == {"retrieval": "high", "context": "low", "answer": "high"}  # answer: not trained → rule
    assert first.reasons["retrieval"].startswith("policy v1: score ")
    assert first.reasons["answer"] == "rule: multi-fact or temporal question"
    assert (first.version, first.lam) == (1, 0.1)
    assert policy.choose(what, ALL).tiers == {"retrieval": "low", "context": "low", "answer": "mid"}
    again, _ = load_policy(trained_dir)
    assert again.choose(when, ALL) == first == policy.choose(when, ALL)
    assert policy.expected_cost("context", "high")["tokens"] == 1800.0  # learned means, not the rule guesses


def test_compiled_trees_predict_what_scikit_learn_predicts(tmp_path: Path, trained_dir: Path) -> None:
    """The saved .npz arrays give what the fitted scikit-learn regressors give."""
    policy, _ = load_policy(trained_dir)
    assert isinstance(policy, LearnedPolicy)
    trained_on = policy.header["train_conversations"]
    rows = [r for r in read_log(write_log(tmp_path / "log.jsonl")) if r.conversation_id in trained_on]
    model = fit(rows, 0.1, "recall")
    regressors = [model["regressors"][k] for k in policy.keys]
    for query in ("When did Gus move to Kyiv?", "What is the name of Gus's dog?", "violin", "Why and how?"):
        x = featurize(query, 500, 11, False).vector()
        ours = policy.forest.predict(x)
        theirs = [float(r.predict(np.asarray([x]))[0]) for r in regressors]
        assert ours == pytest.approx(theirs, abs=1e-12)


class Planted:
    """Unpickling this leaves a mark on disk: proof that a policy file was (or was not) unpickled."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.mark,))


@pytest.mark.parametrize("kind", ["pickle", "npz holding objects"])
def test_a_pickled_policy_file_is_refused_unread_and_the_rules_decide(trained_dir: Path, tmp_path: Path,
                                                                       kind: str, caplog: pytest.LogCaptureFixture,
                                                                       ) -> None:
    _, model = policy_paths(trained_dir, 1)
    mark = tmp_path / "unpickled"
    if kind == "pickle":
        model.write_bytes(pickle.dumps({"regressors": Planted(mark)}))
    else:
        with model.open("wb") as fh:
            np.savez(fh, owner=np.asarray([Planted(mark)], dtype=object))
    when = featurize("When did Gus move to Kyiv?", 500, 11, False)
    with caplog.at_level(logging.WARNING):
        policy, warnings = load_policy(trained_dir)
    assert not mark.exists()
    assert isinstance(policy, RulePolicy)
    assert warnings == ["router policy v1 unreadable (ValueError); using rules"]
    assert "pickle" in caplog.text  # numpy says why it refused
    assert policy.choose(when, ALL) == RulePolicy().choose(when, ALL)


def test_trained_policy_honours_allowed_tiers(trained_dir: Path) -> None:
    policy, _ = load_policy(trained_dir)
    when = featurize("When did Gus move to Kyiv?", 500, 11, False)
    decision = policy.choose(when, {"retrieval": ["low", "mid"], "context": ["mid"]})
    assert decision.tiers["retrieval"] in ("low", "mid") and decision.tiers["context"] == "mid"
    assert set(decision.tiers) == {"retrieval", "context"}


@pytest.mark.parametrize("damage", ["model", "header", "mismatch"])
def test_corrupt_policy_falls_back_to_rules_with_a_warning(trained_dir: Path, damage: str) -> None:
    header, model = policy_paths(trained_dir, 1)
    if damage == "model":
        model.write_bytes(b"not an npz file")
    elif damage == "header":
        header.write_text("{truncated")
    else:
        header.write_text(header.read_text().replace('"version": 1', '"version": 7'))
    policy, warnings = load_policy(trained_dir)
    assert isinstance(policy, RulePolicy)
    assert len(warnings) == 1 and warnings[0].startswith("router policy v1 unreadable (")


def test_store_picks_up_a_newer_policy_without_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = PolicyStore(data_dir)
    assert isinstance(store.current()[0], RulePolicy)
    log = write_log(tmp_path / "log.jsonl")
    train(log, data_dir, lam=0.1)
    first = store.current()[0]
    assert isinstance(first, LearnedPolicy) and first.version == 1
    assert store.current()[0] is first  # unchanged directory: no re-read
    train(log, data_dir, lam=0.5)
    second = store.current()[0]
    assert isinstance(second, LearnedPolicy) and (second.version, second.lam) == (2, 0.5)
