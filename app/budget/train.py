"""Train the router from evaluation logs (``memcubed router train``): a contextual bandit with full feedback.

The budget evaluation (evals/budgets.py) runs every tier combination on every question and logs one JSON
line per question x combination: the query features, the tiers, the rewards (``recall`` = turn recall@10
of the snippets, ``context_recall`` = evidence turns anywhere in the context, ``judge`` when an LLM
judged the answer) and the measured cost (server ms, context tokens, LLM calls). Because every arm is
observed for every question, each combination gets its own reward regressor (gradient-boosted trees,
fixed seed) fitted on the training conversations, and the policy picks argmax(predicted reward - λ·cost)
where cost is the combination's mean cost on the training split, normalised so the dearest combination
costs 1 per axis (ms, tokens, LLM calls; axes that never vary are left out).

The held-out conversations are never seen in training; with full logs the policy is evaluated on them
exactly (the logged outcome of the arm it picks), beside every fixed tier.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from app.budget.features import FEATURE_NAMES, QueryFeatures
from app.budget.policy import (
    MODULES,
    POLICY_FORMAT,
    TIERS,
    CompiledBoosting,
    LearnedPolicy,
    combo_key,
    policy_paths,
    policy_versions,
    router_dir,
)

Reward = Literal["recall", "context_recall", "judge"]
REWARDS: tuple[Reward, ...] = ("recall", "context_recall", "judge")
COST_AXES = ("ms", "tokens", "llm_calls")
SEED = 0


@dataclass(frozen=True)
class LogRow:
    """One question answered at one tier combination."""

    question_id: str
    conversation_id: str
    category: int | None
    features: QueryFeatures
    tiers: dict[str, str]
    rewards: dict[str, float | None]
    cost: dict[str, float]

    @staticmethod
    def from_json(data: dict[str, Any]) -> LogRow:
        return LogRow(
            question_id=str(data["question_id"]),
            conversation_id=str(data["conversation_id"]),
            category=data.get("category"),
            features=QueryFeatures(**data["features"]),
            tiers={str(k): str(v) for k, v in data["tiers"].items()},
            rewards={r: (None if data.get(r) is None else float(data[r])) for r in REWARDS},
            cost={a: float(data.get(a) or 0.0) for a in COST_AXES},
        )


def read_log(path: Path) -> list[LogRow]:
    """Every row of a results JSONL file; a malformed line is an error naming its line number."""
    rows: list[LogRow] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(LogRow.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a routing log row ({exc})") from exc
    return rows


def split_conversations(conversations: Iterable[str], train: Sequence[str] | None,
                        train_share: float = 0.6) -> tuple[list[str], list[str]]:
    """(training, held-out) conversation ids: the given training ids, else the first 60 % in sorted order."""
    every = sorted(set(conversations))
    if train:
        unknown = sorted(set(train) - set(every))
        if unknown:
            raise ValueError(f"training conversations not in the log: {', '.join(unknown)}")
        chosen = sorted(set(train))
    else:
        chosen = every[: max(1, math.ceil(len(every) * train_share))]
    return chosen, [c for c in every if c not in chosen]


def _modules(rows: Sequence[LogRow]) -> list[str]:
    present = {m for r in rows for m in r.tiers}
    unknown = present - set(MODULES)
    if unknown:
        raise ValueError(f"unknown module(s) in the log: {', '.join(sorted(unknown))}")
    return [m for m in MODULES if m in present]


def _combo_order(combos: Iterable[dict[str, str]], modules: Sequence[str]) -> list[dict[str, str]]:
    """Cheapest first (by tier ranks), then by name: the fixed tie-break order."""
    return sorted(combos, key=lambda c: (sum(TIERS.index(c[m]) for m in modules),
                                         [TIERS.index(c[m]) for m in modules]))


def by_question(rows: Sequence[LogRow], modules: Sequence[str], reward: Reward
                ) -> dict[str, dict[str, LogRow]]:
    """question id → combination key → row; questions without a reward are dropped."""
    out: dict[str, dict[str, LogRow]] = defaultdict(dict)
    for r in rows:
        if r.rewards.get(reward) is not None:
            out[r.question_id][combo_key(r.tiers, modules)] = r
    return dict(out)


def fit(rows: Sequence[LogRow], lam: float, reward: Reward) -> dict[str, Any]:
    """The model dict a ``LearnedPolicy`` is built from."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    if lam < 0:
        raise ValueError("lambda must be >= 0")
    modules = _modules(rows)
    seen: dict[str, dict[str, str]] = {combo_key(r.tiers, modules): {m: r.tiers[m] for m in modules}
                                       for r in rows if all(m in r.tiers for m in modules)}
    combos = _combo_order(seen.values(), modules)
    table = by_question(rows, modules, reward)
    if not table:
        raise ValueError(f"no row has a {reward!r} reward")
    mean_cost: dict[str, dict[str, float]] = {}
    regressors: dict[str, Any] = {}
    for combo in combos:
        key = combo_key(combo, modules)
        arm = [q[key] for _, q in sorted(table.items()) if key in q]
        if not arm:
            raise ValueError(f"no rewarded row for {key}")
        x = np.asarray([r.features.vector() for r in arm], dtype=np.float64)
        y = np.asarray([r.rewards[reward] for r in arm], dtype=np.float64)
        model = GradientBoostingRegressor(n_estimators=80, max_depth=2, learning_rate=0.05, subsample=1.0,
                                          min_samples_leaf=5, random_state=SEED)
        regressors[key] = model.fit(x, y)
        mean_cost[key] = {a: statistics.fmean(r.cost[a] for r in arm) for a in COST_AXES}
    top = {a: max(c[a] for c in mean_cost.values()) for a in COST_AXES}
    axes = [a for a in COST_AXES if top[a] > 0]
    cost = {k: (statistics.fmean(c[a] / top[a] for a in axes) if axes else 0.0) for k, c in mean_cost.items()}
    module_costs: dict[str, dict[str, dict[str, float]]] = {}
    for m in modules:
        for tier in TIERS:
            mine = [mean_cost[combo_key(c, modules)] for c in combos if c[m] == tier]
            if mine:
                module_costs.setdefault(m, {})[tier] = {a: statistics.fmean(c[a] for c in mine) for a in COST_AXES}
    return {"modules": modules, "combos": combos, "regressors": regressors, "cost": cost,
            "mean_cost": mean_cost, "module_costs": module_costs, "feature_names": list(FEATURE_NAMES),
            "reward": reward}


@dataclass
class Outcome:
    """Mean reward and cost of one system (a fixed tier set or the policy) over some questions."""

    reward: list[float] = field(default_factory=list)
    cost: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in COST_AXES})
    picks: dict[str, int] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)  # question id → combination

    def add(self, row: LogRow, reward: Reward, key: str) -> None:
        value = row.rewards[reward]
        assert value is not None
        self.reward.append(value)
        for a in COST_AXES:
            self.cost[a].append(row.cost[a])
        self.picks[key] = self.picks.get(key, 0) + 1
        self.chosen[row.question_id] = key

    def summary(self) -> dict[str, Any]:
        mean = statistics.fmean
        return {"questions": len(self.reward), "reward": mean(self.reward) if self.reward else None,
                **{f"mean_{a}": (mean(v) if v else None) for a, v in self.cost.items()}, "picks": self.picks}


def fixed_sets(modules: Sequence[str]) -> dict[str, dict[str, str]]:
    """The fixed tier sets ``low``, ``mid``, ``high``: every module at that tier."""
    return {t: {m: t for m in modules} for t in TIERS}


def evaluate(policy: LearnedPolicy, rows: Sequence[LogRow], reward: Reward,
             lams: Sequence[float] = ()) -> dict[str, dict[str, Any]]:
    """Fixed tier sets, every single combination, and the policy (at its λ and at each of ``lams``)
    on ``rows``, using the logged outcome of the arm each picks; only questions with every arm logged."""
    return {name: o.summary() for name, o in outcomes(policy, rows, reward, lams).items()}


def outcomes(policy: LearnedPolicy, rows: Sequence[LogRow], reward: Reward,
             lams: Sequence[float] = ()) -> dict[str, Outcome]:
    """``evaluate``'s systems before summing up: each keeps the combination it chose per question."""
    modules = policy.modules
    keys = [combo_key(c, modules) for c in policy.combos]
    table = {q: arms for q, arms in by_question(rows, modules, reward).items() if all(k in arms for k in keys)}
    allowed = {m: list(TIERS) for m in modules}
    systems: dict[str, Outcome] = defaultdict(Outcome)
    fixed = {name: combo_key(tiers, modules) for name, tiers in fixed_sets(modules).items()}
    for _qid, arms in sorted(table.items()):
        for name, key in fixed.items():
            if key in arms:
                systems[name].add(arms[key], reward, key)
        for key in keys:
            systems[f"combo {key}"].add(arms[key], reward, key)
        f = next(iter(arms.values())).features
        key = combo_key(policy.choose(f, allowed).tiers, modules)
        systems["auto"].add(arms[key], reward, key)
        for lam in lams:
            scores = policy.scores(f, lam)
            best = max(keys, key=lambda k: scores[k])
            systems[f"auto λ={lam:g}"].add(arms[best], reward, best)
        oracle = max(keys, key=lambda k: (arms[k].rewards[reward] or 0.0) - policy.lam * policy.cost[k])
        systems["oracle"].add(arms[oracle], reward, oracle)
    return dict(systems)


@dataclass(frozen=True)
class Trained:
    version: int
    header: dict[str, Any]
    header_path: Path
    model_path: Path


def train(results: Path, data_dir: Path, lam: float, reward: Reward = "recall",
          train_conversations: Sequence[str] | None = None, lams: Sequence[float] = ()) -> Trained:
    """Fit on the training conversations, evaluate on the held-out ones, write the next policy version."""
    rows = read_log(results)
    if not rows:
        raise ValueError(f"{results} holds no rows")
    train_ids, held_ids = split_conversations((r.conversation_id for r in rows), train_conversations)
    train_rows = [r for r in rows if r.conversation_id in train_ids]
    held_rows = [r for r in rows if r.conversation_id in held_ids]
    assert not {r.question_id for r in train_rows} & {r.question_id for r in held_rows}
    model = fit(train_rows, lam, reward)
    version = (policy_versions(data_dir) or [0])[-1] + 1
    header: dict[str, Any] = {
        "format": POLICY_FORMAT,
        "version": version,
        "lambda": lam,
        "reward": reward,
        "created_at": datetime.now(UTC).isoformat(),
        "source": str(results),
        "features": list(FEATURE_NAMES),
        "modules": model["modules"],
        "combinations": [combo_key(c, model["modules"]) for c in model["combos"]],
        "normalised_cost": model["cost"],
        "mean_cost": model["mean_cost"],
        "train_conversations": train_ids,
        "held_out_conversations": held_ids,
        "train_questions": len({r.question_id for r in train_rows}),
        "held_out_questions": len({r.question_id for r in held_rows}),
    }
    spec = {k: v for k, v in model.items() if k != "regressors"}
    header["model"] = spec
    forest = CompiledBoosting.from_models([model["regressors"][combo_key(c, spec["modules"])] for c in spec["combos"]])
    policy = LearnedPolicy(header, spec, forest)
    held = outcomes(policy, held_rows, reward, lams) if held_rows else {}
    header["metrics"] = {"held_out": {name: o.summary() for name, o in held.items()},
                         "train": evaluate(policy, train_rows, reward)}
    # What the policy picks per held-out question, at its λ ("auto") and each swept λ ("auto λ=x"):
    # a caller with richer logs (evals/budgets.py) scores those picks on its own metrics.
    header["held_out_choices"] = {name: o.chosen for name, o in held.items() if name.split(" λ=")[0] == "auto"}
    header_path, model_path = policy_paths(data_dir, version)
    router_dir(data_dir).mkdir(parents=True, exist_ok=True)
    tmp_model = model_path.with_suffix(".npz.tmp")
    forest.save(tmp_model)
    os.replace(tmp_model, model_path)  # the model first: a header is what makes a version visible
    tmp_header = header_path.with_suffix(".json.tmp")
    tmp_header.write_text(json.dumps(header, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp_header, header_path)
    return Trained(version, header, header_path, model_path)
