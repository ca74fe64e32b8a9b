"""Which tier each memory module runs at for one query: documented rules, or a trained policy file.

Rules (``RulePolicy``; used when no policy file exists or it cannot be read). They come from the LoCoMo
retrieval ablation (docs/benchmarks.md): fine retrieval gains most over dense on temporal and multi-hop
questions, and least on plain single-hop ones, where BM25 + windows already get most of it.

- retrieval: a time expression or a "when" question → high (the time channel, windows);
  a multi-fact cue ("and", "both", "how many", "would ... likely"), two or more entities, or a
  why/how question → high (every channel and graph expansion); a keyword lookup (≤ 3 words, not a
  question) → low (one channel); anything else (short who/what/where facts) → mid.
- context: multi-fact, why or how → high (summaries and graph neighbourhood); temporal → mid (event
  dates, neighbouring turns); otherwise low (top snippets).
- extraction (writes): mid (rule-based facts and entities; no LLM call unless asked for high).
- answer: multi-fact, why/how or temporal → high (large model); otherwise mid (small model).

A preferred tier the budget or configuration does not allow is replaced by the nearest allowed one,
cheaper first, and the reason says so.

A trained policy (``LearnedPolicy``, written by ``memcubed router train``) is ``{data_dir}/router/
policy-v{N}.npz`` (its boosted trees as plain arrays, read with ``allow_pickle=False``: a policy file cannot
run code) with a ``policy-v{N}.json`` header (version, lambda, features, combinations and costs, training
conversations, metrics). It holds one reward regressor per tier combination of the modules it was trained on and
picks argmax(predicted quality - λ · normalised cost) among the allowed combinations, ties broken by
the fixed combination order (cheapest first), so a given file always gives the same decision. Modules
it was not trained on fall back to the rules. The newest version wins; ``PolicyStore`` re-reads when a
newer file appears, so a trained policy takes effect without a restart.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from app.budget.features import FEATURE_NAMES, QueryFeatures

log = logging.getLogger(__name__)

MODULES = ("retrieval", "context", "extraction", "answer")
TIERS = ("low", "mid", "high")
POLICY_DIR = "router"
POLICY_FORMAT = 2  # 2: trees in .npz arrays; 1 (joblib pickles) is refused
_FILE = re.compile(r"^policy-v(\d+)\.json$")

# Expected cost per tier when no trained policy says otherwise: rough figures from docs/benchmarks.md on
# the 2-core machine (retrieval: BM25 / dense+BM25 / fine; context tokens at top_k 10; the answer's LLM calls).
RULE_COSTS: dict[str, dict[str, dict[str, float]]] = {
    "retrieval": {"low": {"ms": 5.0, "tokens": 0.0, "llm_calls": 0.0},
                  "mid": {"ms": 45.0, "tokens": 0.0, "llm_calls": 0.0},
                  "high": {"ms": 55.0, "tokens": 0.0, "llm_calls": 0.0}},
    "context": {"low": {"ms": 1.0, "tokens": 400.0, "llm_calls": 0.0},
                "mid": {"ms": 5.0, "tokens": 1000.0, "llm_calls": 0.0},
                "high": {"ms": 20.0, "tokens": 2000.0, "llm_calls": 0.0}},
    "extraction": {"low": {"ms": 0.0, "tokens": 0.0, "llm_calls": 0.0},
                   "mid": {"ms": 2.0, "tokens": 0.0, "llm_calls": 0.0},
                   "high": {"ms": 1500.0, "tokens": 500.0, "llm_calls": 1.0}},
    "answer": {"low": {"ms": 3000.0, "tokens": 0.0, "llm_calls": 0.0},
               "mid": {"ms": 1000.0, "tokens": 0.0, "llm_calls": 1.0},
               "high": {"ms": 2000.0, "tokens": 0.0, "llm_calls": 1.0}},
}


@dataclass(frozen=True)
class Decision:
    """The tier per module, why, and which policy decided (``version`` None: the rules)."""

    tiers: dict[str, str]
    reasons: dict[str, str]
    version: int | None
    lam: float | None


class Policy(Protocol):
    def choose(self, f: QueryFeatures, allowed: Mapping[str, Sequence[str]]) -> Decision: ...

    def expected_cost(self, module: str, tier: str) -> dict[str, float]: ...


def clamp(module: str, preferred: str, allowed: Sequence[str]) -> tuple[str, str]:
    """The allowed tier nearest to ``preferred`` (cheaper first) and a note when it differs."""
    if preferred in allowed:
        return preferred, ""
    rank = TIERS.index(preferred)
    by_distance = sorted(allowed, key=lambda t: (abs(TIERS.index(t) - rank), TIERS.index(t) > rank,
                                                 TIERS.index(t)))
    if not by_distance:
        raise ValueError(f"no tier allowed for module {module!r}")
    return by_distance[0], f" ({preferred} not allowed)"


class RulePolicy:
    """The documented rules (module docstring); needs no file."""

    version: int | None = None
    lam: float | None = None

    @staticmethod
    def preferred(module: str, f: QueryFeatures) -> tuple[str, str]:
        temporal = f.time_expressions > 0 or f.question_word == "when"
        multi = f.multi_hop or f.entities >= 2 or f.question_word in ("why", "how")
        if module == "retrieval":
            if temporal:
                return "high", "time expression or 'when' question"
            if multi:
                return "high", "multi-fact cue"
            if f.length <= 3 and f.question_word == "other":
                return "low", "keyword lookup"
            return "mid", "short factual question"
        if module == "context":
            if multi:
                return "high", "multi-fact cue"
            if temporal:
                return "mid", "temporal: event dates and neighbours"
            return "low", "top snippets suffice"
        if module == "extraction":
            return "mid", "rule-based facts and entities"
        if module == "answer":
            if multi or temporal:
                return "high", "multi-fact or temporal question"
            return "mid", "short factual question"
        raise ValueError(f"unknown module {module!r}")

    def choose(self, f: QueryFeatures, allowed: Mapping[str, Sequence[str]]) -> Decision:
        tiers: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for module in MODULES:
            if module not in allowed:
                continue
            want, why = self.preferred(module, f)
            tier, note = clamp(module, want, allowed[module])
            tiers[module] = tier
            reasons[module] = f"rule: {why}{note}"
        return Decision(tiers, reasons, None, None)

    def expected_cost(self, module: str, tier: str) -> dict[str, float]:
        return dict(RULE_COSTS[module][tier])


def combo_key(tiers: Mapping[str, str], modules: Sequence[str]) -> str:
    """``retrieval=high,context=low``: one tier combination, in module order."""
    return ",".join(f"{m}={tiers[m]}" for m in modules)


class LearnedPolicy:
    """A trained contextual-bandit policy: one reward regressor per tier combination."""

    def __init__(self, header: dict[str, Any], model: dict[str, Any], forest: CompiledBoosting) -> None:
        """``model``: the header's JSON ``model`` part (modules, combos, costs, feature names); ``forest``: one
        regressor per combination, in combination order."""
        self.version = int(header["version"])
        self.lam = float(header["lambda"])
        self.header = header
        self.modules: list[str] = list(model["modules"])
        self.combos: list[dict[str, str]] = [dict(c) for c in model["combos"]]  # cheapest first
        self.cost: dict[str, float] = {k: float(v) for k, v in model["cost"].items()}
        self.module_costs: dict[str, dict[str, dict[str, float]]] = model["module_costs"]
        self.rules = RulePolicy()
        if list(model["feature_names"]) != list(FEATURE_NAMES):
            raise ValueError("policy was trained on other features")
        if any(m not in MODULES for m in self.modules) or not self.combos:
            raise ValueError("policy names unknown modules or no combinations")
        self.keys = [combo_key(c, self.modules) for c in self.combos]
        for key in self.keys:
            if key not in self.cost:
                raise ValueError(f"policy lacks a cost for {key}")
        if forest.size != len(self.keys):
            raise ValueError("policy has not one regressor per combination")
        self.forest = forest

    def scores(self, f: QueryFeatures, lam: float | None = None) -> dict[str, float]:
        """Predicted quality - λ · normalised cost for every combination (all, allowed or not)."""
        weight = self.lam if lam is None else lam
        predicted = self.forest.predict(f.vector())
        return {key: float(q) - weight * self.cost[key] for key, q in zip(self.keys, predicted, strict=True)}

    def choose(self, f: QueryFeatures, allowed: Mapping[str, Sequence[str]]) -> Decision:
        candidates = [c for c in self.combos
                      if all(m not in allowed or c[m] in allowed[m] for m in self.modules)]
        decided = self.rules.choose(f, allowed)
        tiers, reasons = dict(decided.tiers), dict(decided.reasons)
        if not candidates:
            for m in self.modules:
                if m in reasons:
                    reasons[m] += f" (policy v{self.version}: no trained combination allowed)"
            return Decision(tiers, reasons, self.version, self.lam)
        scores = self.scores(f)
        best = max(candidates, key=lambda c: scores[combo_key(c, self.modules)])  # first max: fixed order
        score = scores[combo_key(best, self.modules)]
        for m in self.modules:
            if m in allowed:
                tiers[m] = best[m]
                reasons[m] = f"policy v{self.version}: score {score:.3f}"
        return Decision(tiers, reasons, self.version, self.lam)

    def expected_cost(self, module: str, tier: str) -> dict[str, float]:
        learned = self.module_costs.get(module, {}).get(tier)
        return dict(learned) if learned else self.rules.expected_cost(module, tier)


class CompiledBoosting:
    """Every combination's gradient-boosted trees as flat arrays, walked together with numpy.

    One decision asks all (9) regressors; scikit-learn's per-call input validation would be paid nine times
    a query, this walks every tree in a few numpy operations. Same arithmetic as ``predict`` (float32 features
    against the stored thresholds); only the summation order differs (below 1e-12). The arrays are also the
    file format (``save``/``load``): numbers only, nothing that unpickles.
    """

    ARRAYS: ClassVar[dict[str, str]] = {"owner": "i", "left": "i", "right": "i", "feature": "i",
                                        "threshold": "f", "value": "f", "rate": "f", "base": "f", "depth": "i"}

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        """From saved arrays, checked for kind and shape: a file is data and may be anything."""
        import numpy as np

        if set(arrays) != set(self.ARRAYS):
            raise ValueError("policy arrays are not the expected ones")
        if any(np.asarray(arrays[k]).dtype.kind != kind for k, kind in self.ARRAYS.items()):
            raise ValueError("policy arrays have the wrong types")
        self.owner, self.left, self.right, self.feature = (
            np.asarray(arrays[k], dtype=np.int64) for k in ("owner", "left", "right", "feature"))
        self.threshold, self.value, self.rate, self.base = (
            np.asarray(arrays[k], dtype=np.float64) for k in ("threshold", "value", "rate", "base"))
        self.depth, self.size = int(arrays["depth"]), len(self.base)
        trees, width = self.left.shape if self.left.ndim == 2 else (-1, -1)
        if (self.owner.shape != (trees,) or self.rate.shape != (trees,) or self.base.ndim != 1
                or any(a.shape != (trees, width) for a in (self.right, self.feature, self.threshold, self.value))
                or not 0 < self.depth <= 64 or trees < 1 or width < 1):
            raise ValueError("policy arrays have inconsistent shapes")
        if (self.owner.min() < 0 or self.owner.max() >= self.size or self.feature.min() < 0
                or self.feature.max() >= len(FEATURE_NAMES)
                or min(self.left.min(), self.right.min()) < -1 or max(self.left.max(), self.right.max()) >= width):
            raise ValueError("policy arrays index out of range")

    @classmethod
    def from_models(cls, models: Sequence[Any]) -> CompiledBoosting:
        """Compile fitted scikit-learn regressors (at training)."""
        import numpy as np
        from sklearn.ensemble import GradientBoostingRegressor

        if not all(isinstance(m, GradientBoostingRegressor) and m.loss == "squared_error" for m in models):
            raise ValueError("policy regressors are not squared-error gradient boosting")
        trees = [(i, e.tree_) for i, m in enumerate(models) for e in m.estimators_[:, 0]]
        width = max(t.node_count for _, t in trees)

        def pad(values: list[Any], fill: float, dtype: Any) -> Any:
            return np.asarray([np.pad(v, (0, width - len(v)), constant_values=fill) for v in values], dtype=dtype)

        owner = np.asarray([i for i, _ in trees], dtype=np.int64)
        return cls({
            "owner": owner,
            "left": pad([t.children_left for _, t in trees], -1, np.int64),
            "right": pad([t.children_right for _, t in trees], -1, np.int64),
            "feature": pad([np.maximum(t.feature, 0) for _, t in trees], 0, np.int64),
            "threshold": pad([t.threshold for _, t in trees], 0.0, np.float64),
            "value": pad([t.value[:, 0, 0] for _, t in trees], 0.0, np.float64),
            "rate": np.asarray([m.learning_rate for m in models], dtype=np.float64)[owner],
            "base": np.asarray([float(m.init_.constant_[0][0]) for m in models], dtype=np.float64),
            "depth": np.asarray(max(int(m.max_depth) for m in models), dtype=np.int64),
        })

    def save(self, path: Path) -> None:
        import numpy as np

        with path.open("wb") as fh:
            np.savez(fh, owner=self.owner, left=self.left, right=self.right, feature=self.feature,
                     threshold=self.threshold, value=self.value, rate=self.rate, base=self.base,
                     depth=np.asarray(self.depth, dtype=np.int64))

    @classmethod
    def load(cls, path: Path) -> CompiledBoosting:
        """An .npz of plain arrays; a pickle (or anything holding objects) is refused, never unpickled."""
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("policy model is not an .npz archive")
        with loaded as npz:
            return cls({name: npz[name] for name in npz.files})

    def predict(self, x: Sequence[float]) -> list[float]:
        import numpy as np

        xs = np.asarray(x, dtype=np.float32).astype(np.float64)
        rows = np.arange(len(self.owner))
        node = np.zeros(len(self.owner), dtype=np.int64)
        for _ in range(self.depth):
            inner = self.left[rows, node] != -1
            go_left = xs[self.feature[rows, node]] <= self.threshold[rows, node]
            step = np.where(go_left, self.left[rows, node], self.right[rows, node])
            node = np.where(inner, step, node)
        contrib = self.rate * self.value[rows, node]
        return (self.base + np.bincount(self.owner, weights=contrib, minlength=self.size)).tolist()


def router_dir(data_dir: Path) -> Path:
    return data_dir / POLICY_DIR


def policy_versions(data_dir: Path) -> list[int]:
    """Versions with a header file, ascending."""
    directory = router_dir(data_dir)
    if not directory.is_dir():
        return []
    found = (_FILE.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def policy_paths(data_dir: Path, version: int) -> tuple[Path, Path]:
    """(header .json, trees .npz) of one version."""
    base = router_dir(data_dir) / f"policy-v{version}"
    return base.with_suffix(".json"), base.with_suffix(".npz")


def read_policy(data_dir: Path, version: int) -> LearnedPolicy:
    """Load one version; raises on anything missing, corrupt or inconsistent."""
    header_path, model_path = policy_paths(data_dir, version)
    header = json.loads(header_path.read_text(encoding="utf-8"))
    if not isinstance(header, dict) or header.get("version") != version or header.get("format") != POLICY_FORMAT:
        raise ValueError("header does not match its file name or format")
    if not isinstance(header.get("model"), dict):
        raise ValueError("header holds no model description")
    return LearnedPolicy(header, header["model"], CompiledBoosting.load(model_path))


def load_policy(data_dir: Path) -> tuple[Policy, list[str]]:
    """The newest policy under ``{data_dir}/router``, or the rules (with a warning when a file is bad)."""
    versions = policy_versions(data_dir)
    if not versions:
        return RulePolicy(), []
    version = versions[-1]
    try:
        return read_policy(data_dir, version), []
    except Exception as exc:  # any failure to read a policy file means: serve with the rules, say so
        log.warning("router policy v%d unreadable, using rules: %s", version, exc)
        return RulePolicy(), [f"router policy v{version} unreadable ({type(exc).__name__}); using rules"]


class PolicyStore:
    """The current policy for a data dir, re-read when the router directory changes (one stat per call)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._loaded: tuple[Policy, list[str]] = (RulePolicy(), [])

    def _stat(self) -> tuple[int, ...]:
        try:
            st = router_dir(self.data_dir).stat()
        except OSError:
            return (0,)
        return (st.st_mtime_ns, st.st_ino)

    def current(self) -> tuple[Policy, list[str]]:
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                self._loaded = load_policy(self.data_dir)
                self._stamp = stamp
            return self._loaded
