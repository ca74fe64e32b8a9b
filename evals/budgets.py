"""Budget tiers on LoCoMo (``memcubed-eval locomo --budgets low,mid,high,auto``): one command from the
dataset to the cost-quality frontier.

1. ingest: one cube per conversation (the runner's ingestion), kept between phases and runs (``state.json``);
2. log: every tier combination (retrieval x context) on every question through ``POST /v1/context`` with
   ``budget={"tiers": ...}`` and ``use_cache=false`` → ``routing-log.jsonl`` (one line per question x
   combination: the query features the service reports, recall@10 of the snippets, evidence recall of the
   whole context, server ms, tokens, LLM calls), checkpointed per conversation;
3. calibrate the abstention floor: each question's best dense cosine in its own cube vs in another
   conversation's cube → ``calibration.json``;
4. train the router on the training conversations with ``memcubed router train`` (a subprocess) into the
   server's data dir; the policy header it writes holds the policy's pick per held-out question at its λ
   and at each λ of the sweep;
5. evaluate on the held-out conversations: the fixed tier sets from the log, ``auto`` live through the
   service (the policy just trained) and offline at several λ (the header's picks scored on the log),
   beside the BM25 and full-context baselines → ``budgets.md``, ``budgets.json``, ``budgets-frontier.png``.

Nothing here imports the service: it is driven over HTTP and through its CLI.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any, Literal

import memcubed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from evals.baselines import TokenCounter, make_baselines, token_counter
from evals.datasets import Conversation, Question, load_locomo
from evals.metrics import context_recall, recall_at_k
from evals.runner import MemcubedSystem
from evals.server import ServerCommandError, embedded, run_memcubed

HEADLINE = (1, 2, 3, 4)
TIERS = ("low", "mid", "high")  # the service's tiers, cheapest first
MODULES = ("retrieval", "context")  # the answer module needs an LLM; see README
BUDGETS = ("low", "mid", "high", "auto")
COST_AXES = ("ms", "tokens", "llm_calls")  # what the router's cost is made of (memcubed router train)
Reward = Literal["recall", "context_recall", "judge"]
LAMBDA_SWEEP = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
LOG_NAME = "routing-log.jsonl"


@dataclass
class BudgetConfig:
    dataset_path: Path
    out_dir: Path
    budgets: list[str] = field(default_factory=lambda: list(BUDGETS))
    conversations: list[str] | None = None
    train_conversations: list[str] | None = None
    max_questions: int | None = None  # per conversation
    top_k: int = 10
    lam: float = 0.1
    reward: Reward = "recall"
    show_progress: bool = True


@dataclass
class Service:
    """Where the evaluation talks to: URL, tenant key, and the server's data dir when we started it."""

    url: str
    api_key: str
    data_dir: Path | None


@contextmanager
def persistent_embedded(out_dir: Path, data_dir: Path | None = None) -> Iterator[Service]:
    """A memcubed (``memcubed serve``, a child process) whose data dir, admin key and tenant survive between
    runs, so the slow part (ingesting and enriching LoCoMo) is done once and every later phase or rerun
    reuses the cubes."""
    data_dir = data_dir or out_dir / "server"
    data_dir.mkdir(parents=True, exist_ok=True)
    keys_path = out_dir / "server-keys.json"
    keys = json.loads(keys_path.read_text()) if keys_path.exists() else {"admin": "mck_" + secrets.token_urlsafe(24)}
    with embedded(data_dir, keys["admin"]) as server:
        if "tenant" not in keys:
            with memcubed.Client(server.url, server.admin_key) as admin:
                keys["tenant"] = admin.tenants.create(f"budgets-{uuid.uuid4().hex[:8]}").api_key
            keys_path.write_text(json.dumps(keys))
            os.chmod(keys_path, 0o600)
        yield Service(server.url, keys["tenant"], data_dir)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _questions(conv: Conversation, limit: int | None) -> list[Question]:
    """Headline questions (LoCoMo 1-4) with resolvable evidence; with a limit, evenly spaced through the
    conversation's list (LoCoMo groups questions by category, so the first N would skew the mix)."""
    chosen = [q for q in conv.questions if q.category_code in HEADLINE and q.evidence]
    if not limit or limit >= len(chosen):
        return chosen
    return [chosen[i * len(chosen) // limit] for i in range(limit)]


def combinations() -> list[dict[str, str]]:
    """Every tier combination of the logged modules, cheapest first."""
    return [dict(zip(MODULES, tiers, strict=True)) for tiers in product(TIERS, repeat=len(MODULES))]


def combo_key(tiers: dict[str, str]) -> str:
    """``retrieval=high,context=low``: how the router's policy header names a combination."""
    return ",".join(f"{m}={tiers[m]}" for m in MODULES)


# --------------------------------------------------------------------------------------------------
# Phase 1: cubes


def ensure_cubes(client: Any, convs: Sequence[Conversation], state_path: Path, progress: Progress
                 ) -> dict[str, dict[str, Any]]:
    """conversation id → {"cube_id", "dia": {memory id: turn id}}; ingests only what ``state.json`` lacks."""
    state: dict[str, dict[str, Any]] = json.loads(state_path.read_text()) if state_path.exists() else {}
    for conv in convs:
        entry = state.get(conv.id)
        if entry is not None:
            try:
                client.cubes.get(entry["cube_id"])
                continue
            except memcubed.NotFoundError:  # the cube is gone (deleted, another server): ingest again
                state.pop(conv.id)
        system = MemcubedSystem(client, "fine", 500, keep_cubes=True)
        task = progress.add_task(f"{conv.id}: ingest + enrich", total=len(conv.turns))
        system.ingest("locomo", conv, partial(progress.advance, task))
        progress.remove_task(task)
        assert system.cube_id is not None
        dia = {m.id: (m.metadata or {}).get("dia_id") for m in client.memories.list(system.cube_id, page_size=500)}
        state[conv.id] = {"cube_id": system.cube_id, "dia": {str(k): v for k, v in dia.items() if v}}
        _write_atomic(state_path, json.dumps(state))
    for conv in convs:  # a rerun may find enrichment still running from an interrupted one
        MemcubedSystem(client, "fine", 500, keep_cubes=True).wait_for_enrichment(state[conv.id]["cube_id"])
    return state


# --------------------------------------------------------------------------------------------------
# Phase 2: the log


def post_context(api: memcubed.Client, query: str, cube_id: str, top_k: int, budget: Any
                 ) -> tuple[dict[str, Any], float]:
    """``POST /v1/context`` without the cache; the response (as JSON) and the client-side ms."""
    t0 = time.perf_counter()
    resp = api.context(query, [cube_id], top_k=top_k, budget=budget, use_cache=False)
    client_ms = (time.perf_counter() - t0) * 1000.0
    return resp.model_dump(mode="json"), client_ms


def score_context(body: dict[str, Any], dia: dict[str, str], q: Question, k: int) -> dict[str, Any]:
    """recall@k of the snippets (turn level) and evidence recall of the whole context, the cost, and the
    query features the router saw (``routing.features``)."""
    items = body.get("items", [])
    snippets = [dia.get(str(i["memory_id"]), f"memory:{i['memory_id']}") for i in items if i.get("role") == "snippet"]
    everything = [dia[str(i["memory_id"])] for i in items if str(i.get("memory_id")) in dia]
    routing = body.get("routing") or {}
    cost = routing.get("cost") or {}
    return {
        "recall": recall_at_k(list(dict.fromkeys(snippets)), set(q.evidence), k),
        "context_recall": context_recall(everything, q.evidence),
        "judge": None,
        "ms": float((cost.get("ms") or {}).get("total") or 0.0),
        "module_ms": {m: v for m, v in (cost.get("ms") or {}).items() if m != "total"},
        "tokens": int(body.get("tokens") or cost.get("tokens") or 0),
        "llm_calls": int(cost.get("llm_calls") or 0),
        "abstained": bool(body.get("abstained")),
        "full_context": bool(body.get("full_context")),
        "routed": routing.get("tiers") or {},
        "reasons": routing.get("reasons") or {},
        "warnings": routing.get("warnings") or [],
        "features": routing.get("features"),
    }


def _row(q: Question, tiers: dict[str, str], scored: dict[str, Any], client_ms: float) -> dict[str, Any]:
    return {"question_id": q.id, "conversation_id": q.conversation_id, "category": q.category_code,
            "tiers": tiers, "client_ms": client_ms, **scored}


def log_conversation(api: memcubed.Client, conv: Conversation, cube: dict[str, Any], config: BudgetConfig,
                     progress: Progress) -> list[dict[str, Any]]:
    """Every combination on every question of one conversation."""
    questions = _questions(conv, config.max_questions)
    combos = combinations()
    task = progress.add_task(f"{conv.id}: {len(combos)} tier combinations", total=len(questions) * len(combos))
    rows: list[dict[str, Any]] = []
    for tiers in combos:  # lazy loads (models, the cube's indexes and graph) are not query cost; a real
        # turn as the query, so nothing abstains and every assembly path runs
        post_context(api, conv.turns[0].content, cube["cube_id"], config.top_k, {"tiers": tiers})
    for q in questions:
        for tiers in combos:
            body, client_ms = post_context(api, q.question, cube["cube_id"], config.top_k, {"tiers": tiers})
            rows.append(_row(q, tiers, score_context(body, cube["dia"], q, config.top_k), client_ms))
            progress.advance(task)
    progress.remove_task(task)
    return rows


# --------------------------------------------------------------------------------------------------
# Phase 3: the abstention floor


def best_cosine(api: memcubed.Client, query: str, cube_id: str) -> float | None:
    """The best candidate's dense cosine (fast-mode search scores are the cosine)."""
    results = api.search(query, [cube_id], top_k=1, mode="fast").results
    return float(results[0].score) if results else None


def calibrate(api: memcubed.Client, convs: Sequence[Conversation], state: dict[str, dict[str, Any]],
              config: BudgetConfig, progress: Progress) -> dict[str, Any]:
    """Best cosine of each question in its own cube (should answer) and in the next conversation's cube
    (should abstain); the floor is the highest threshold that wrongly abstains on ≤ 5 % of in-domain
    questions, with the threshold of best balanced accuracy beside it."""
    if len(convs) < 2:
        return {"note": "needs two conversations"}
    own: list[float] = []
    other: list[float] = []
    task = progress.add_task("abstention floor", total=sum(len(_questions(c, config.max_questions)) for c in convs))
    for i, conv in enumerate(convs):
        foreign = state[convs[(i + 1) % len(convs)].id]["cube_id"]
        for q in _questions(conv, config.max_questions):
            a, b = best_cosine(api, q.question, state[conv.id]["cube_id"]), best_cosine(api, q.question, foreign)
            if a is not None and b is not None:
                own.append(a)
                other.append(b)
            progress.advance(task)
    progress.remove_task(task)

    def rates(t: float) -> tuple[float, float]:
        return sum(s < t for s in own) / len(own), sum(s < t for s in other) / len(other)

    grid = sorted(set(round(s, 3) for s in own + other))
    safe = max((t for t in grid if rates(t)[0] <= 0.05), default=0.0)
    balanced = max(grid, key=lambda t: (1 - rates(t)[0] + rates(t)[1], -t))
    return {
        "questions": len(own),
        "recommended_floor": safe,
        "at_recommended": {"false_abstention": rates(safe)[0], "correct_abstention": rates(safe)[1]},
        "balanced_floor": balanced,
        "at_balanced": {"false_abstention": rates(balanced)[0], "correct_abstention": rates(balanced)[1]},
        "own_cosine_p10_p50": [_quantile(own, 0.1), _quantile(own, 0.5)],
        "other_cosine_p50_p90": [_quantile(other, 0.5), _quantile(other, 0.9)],
    }


def _quantile(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


# --------------------------------------------------------------------------------------------------
# Phase 4: the router


def train_router(log_path: Path, router_home: Path, config: BudgetConfig) -> Path:
    """``memcubed router train`` on the log, with the λ sweep; the header (JSON) of the version it wrote."""
    args = ["router", "train", "--from", str(log_path), "--data-dir", str(router_home), "--lambda", f"{config.lam!r}",
            "--reward", config.reward, "--lambda-sweep", ",".join(f"{lam!r}" for lam in LAMBDA_SWEEP)]
    if config.train_conversations:
        args += ["--train-conversations", ",".join(config.train_conversations)]
    run_memcubed(args)
    headers = {int(m.group(1)): p for p in (router_home / "router").glob("policy-v*.json")
               if (m := re.fullmatch(r"policy-v(\d+)\.json", p.name))}
    if not headers:
        raise ServerCommandError(f"memcubed router train wrote no policy header under {router_home / 'router'}")
    return headers[max(headers)]


# --------------------------------------------------------------------------------------------------
# Phase 5: the held-out evaluation


def run_auto(api: memcubed.Client, convs: Sequence[Conversation], state: dict[str, dict[str, Any]],
             expected: dict[str, str], config: BudgetConfig, progress: Progress) -> dict[str, Any]:
    """``budget: "auto"`` through the service on the held-out questions, with the trained policy loaded;
    ``expected`` (question id → combination) is what the policy picked offline from the logged features."""
    rows: list[dict[str, Any]] = []
    agree = 0
    task = progress.add_task("auto (live)", total=sum(len(_questions(c, config.max_questions)) for c in convs))
    for conv in convs:
        cube = state[conv.id]
        for q in _questions(conv, config.max_questions):
            body, client_ms = post_context(api, q.question, cube["cube_id"], config.top_k, "auto")
            scored = score_context(body, cube["dia"], q, config.top_k)
            rows.append(_row(q, scored["routed"], scored, client_ms))
            agree += all(m in scored["routed"] for m in MODULES) and expected.get(q.id) == combo_key(scored["routed"])
            progress.advance(task)
    progress.remove_task(task)
    versions = {str((r["reasons"] or {}).get("retrieval", "")).split(":")[0] for r in rows}
    return {"rows": rows, "agreement": agree / len(rows) if rows else None, "reasons": sorted(versions)}


def baselines(convs: Sequence[Conversation], config: BudgetConfig, counter: TokenCounter) -> dict[str, dict[str, Any]]:
    """BM25 (top k) and full context (8,192 tokens, most recent) on the held-out questions, in-process."""
    out: dict[str, dict[str, Any]] = {}
    for baseline in make_baselines(["bm25", "full-context"]):
        recalls: list[float] = []
        ctx: list[float] = []
        tokens: list[int] = []
        ms: list[float] = []
        for conv in convs:
            turns = conv.turn_map()
            baseline.index(conv)
            for q in _questions(conv, config.max_questions):
                t0 = time.perf_counter()
                ranked = baseline.retrieve(q, max(config.top_k, 20))
                ms.append((time.perf_counter() - t0) * 1000.0)
                context = ranked if baseline.whole_list_is_context else ranked[: config.top_k]
                recalls.append(recall_at_k(ranked, set(q.evidence), config.top_k) or 0.0)
                ctx.append(context_recall(context, q.evidence) or 0.0)
                tokens.append(counter.count("\n".join(turns[i].content for i in context if i in turns)))
        out[baseline.name] = {"questions": len(recalls), "recall": statistics.fmean(recalls),
                              "context_recall": statistics.fmean(ctx), "mean_ms": statistics.fmean(ms),
                              "mean_tokens": statistics.fmean(tokens), "in_process": True}
    return out


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean quality and cost of a set of logged answers."""
    def mean(key: str) -> float | None:
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        return statistics.fmean(values) if values else None

    ms = sorted(float(r["ms"]) for r in rows)
    return {"questions": len(rows), "recall": mean("recall"), "context_recall": mean("context_recall"),
            "mean_ms": mean("ms"), "p50_ms": ms[len(ms) // 2] if ms else None, "mean_tokens": mean("tokens"),
            "mean_llm_calls": mean("llm_calls"), "mean_client_ms": mean("client_ms")}


def held_out_table(log: Sequence[dict[str, Any]], held: Sequence[str], choices: dict[str, dict[str, str]],
                   auto_live: dict[str, Any] | None, budgets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every system on the same held-out questions: the fixed sets, each combination, auto (live and offline).
    ``choices`` is the policy header's ``held_out_choices``: system ("auto", "auto λ=x") → question → pick."""
    held_rows = [r for r in log if r["conversation_id"] in held]
    systems: dict[str, dict[str, Any]] = {}
    for name in [b for b in budgets if b != "auto"]:
        key = combo_key({m: name for m in MODULES})
        systems[name] = summarise([r for r in held_rows if combo_key(r["tiers"]) == key])
    if "auto" in budgets:
        if auto_live is not None:
            systems["auto"] = summarise(auto_live["rows"]) | {"agreement_with_policy": auto_live["agreement"]}
        offline = _picked(held_rows, choices["auto"])
        systems["auto (offline)" if auto_live is not None else "auto"] = offline
    for combo in combinations():
        key = combo_key(combo)
        systems[f"combo {key}"] = summarise([r for r in held_rows if combo_key(r["tiers"]) == key])
    for lam in LAMBDA_SWEEP:
        systems[f"auto λ={lam:g}"] = _picked(held_rows, choices[f"auto λ={lam:g}"])
    return systems


def _picked(rows: Sequence[dict[str, Any]], chosen: dict[str, str]) -> dict[str, Any]:
    """The logged outcome of the arm the policy picked, per question."""
    by_arm = {(r["question_id"], combo_key(r["tiers"])): r for r in rows}
    return summarise([by_arm[arm] for arm in sorted(chosen.items())])


# --------------------------------------------------------------------------------------------------
# Report


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else (f"{value:,.{digits}f}" if isinstance(value, float) else str(value))


def report(systems: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]], calib: dict[str, Any],
           meta: dict[str, Any], k: int) -> str:
    high = systems.get("high")
    lines = [
        f"## Budget tiers and the router (LoCoMo, held out: {', '.join(meta['held_out'])})", "",
        f"Router v{meta['policy_version']} trained on {', '.join(meta['train'])} (λ={meta['lambda']:g}, "
        f"reward {meta['reward']}); {meta['held_out_questions']} held-out questions of categories 1-4.", "",
        f"| system | R@{k} | context evidence recall | mean ms (server) | p50 ms | mean context tokens | "
        "cost vs High (ms / tokens) |",
        "|---|---|---|---|---|---|---|",
    ]

    def share(s: dict[str, Any], key: str) -> str:
        if not high or not high.get(key) or s.get(key) is None:
            return "-"
        return f"{100 * s[key] / high[key]:.0f} %"

    for name, s in systems.items():
        if name.startswith("combo ") or name.startswith("auto λ"):
            continue
        label = f"**{name}**" if name == "auto" else name
        lines.append(f"| {label} | {_f(s['recall'])} | {_f(s['context_recall'])} | {_f(s['mean_ms'], 1)} | "
                     f"{_f(s['p50_ms'], 1)} | {_f(s['mean_tokens'], 0)} | {share(s, 'mean_ms')} / "
                     f"{share(s, 'mean_tokens')} |")
    for name, b in base.items():
        lines.append(f"| baseline: {name} (in-process) | {_f(b['recall'])} | {_f(b['context_recall'])} | "
                     f"{_f(b['mean_ms'], 1)} | - | {_f(b['mean_tokens'], 0)} | - |")
    lines += ["", "Every tier combination (retrieval, context) on the same questions:", "",
              f"| combination | R@{k} | context evidence recall | mean ms | mean tokens |", "|---|---|---|---|---|"]
    for name, s in systems.items():
        if name.startswith("combo ") or name.startswith("auto λ"):
            lines.append(f"| {name.removeprefix('combo ')} | {_f(s['recall'])} | {_f(s['context_recall'])} | "
                         f"{_f(s['mean_ms'], 1)} | {_f(s['mean_tokens'], 0)} |")
    auto = systems.get("auto")
    if high and auto and auto.get("recall") is not None and high.get("recall") is not None:
        gap = 100 * (high["recall"] - auto["recall"])
        ms_share = auto["mean_ms"] / high["mean_ms"] if high.get("mean_ms") else float("nan")
        tok_share = auto["mean_tokens"] / high["mean_tokens"] if high.get("mean_tokens") else float("nan")
        met = gap <= 2.0 and ms_share <= 0.5 and tok_share <= 0.5
        lines += ["", f"Goal (auto within 2 points of High's R@{k} at ≤ 50 % of High's mean cost): "
                  f"{'**met**' if met else '**not met**'} — {gap:.1f} points below High, "
                  f"{100 * ms_share:.0f} % of High's ms, {100 * tok_share:.0f} % of its tokens."]
    if "recommended_floor" in calib:
        lines += ["", f"Abstention floor (best dense cosine; {calib['questions']} questions asked of their own "
                  "cube vs of another conversation's): "
                  f"**{calib['recommended_floor']:.3f}** (false abstention "
                  f"{100 * calib['at_recommended']['false_abstention']:.1f} %, correct abstention "
                  f"{100 * calib['at_recommended']['correct_abstention']:.1f} %); best balanced accuracy at "
                  f"{calib['balanced_floor']:.3f} ({100 * calib['at_balanced']['false_abstention']:.1f} % / "
                  f"{100 * calib['at_balanced']['correct_abstention']:.1f} %)."]
    return "\n".join(lines) + "\n"


def plot(systems: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]], path: Path, k: int) -> None:
    """recall@k against mean server ms and against mean context tokens: combinations, fixed tiers, the
    router at each λ (its frontier) and the trained λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "mean_ms", "mean server ms per query"),
                           (axes[1], "mean_tokens", "mean context tokens")):
        combos = {n.removeprefix("combo "): s for n, s in systems.items() if n.startswith("combo ")}
        ax.scatter([s[key] for s in combos.values()], [s["recall"] for s in combos.values()], color="#bbbbbb",
                   label="tier combinations", zorder=1)
        sweep = [systems[n] for n in systems if n.startswith("auto λ")]
        ax.plot([s[key] for s in sweep], [s["recall"] for s in sweep], "-o", color="#dd8452", ms=4,
                label="router, λ sweep (offline)", zorder=2)
        for name in ("low", "mid", "high"):
            if name in systems:
                s = systems[name]
                ax.scatter([s[key]], [s["recall"]], color="#4c72b0", zorder=3)
                ax.annotate(name, (s[key], s["recall"]), textcoords="offset points", xytext=(5, -10))
        if "auto" in systems:
            s = systems["auto"]
            ax.scatter([s[key]], [s["recall"]], marker="*", s=220, color="#c44e52", label="auto", zorder=4)
        if key == "mean_tokens":
            for name, b in base.items():
                if name == "bm25":
                    ax.scatter([b[key]], [b["recall"]], marker="s", color="#55a868", zorder=3)
                    ax.annotate("BM25 baseline", (b[key], b["recall"]), textcoords="offset points", xytext=(5, 4))
        ax.set_xlabel(label)
        ax.set_ylabel(f"turn recall@{k} (held out)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("memcubed budget tiers: cost-quality frontier on held-out LoCoMo conversations")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# The whole command


def run_budgets(config: BudgetConfig, service: Service, console: Console | None = None,
                on_phase: Callable[[str], None] | None = None) -> dict[str, Path]:
    """All phases; each is resumable (cubes in state.json, the log per conversation, the policy file)."""
    console = console or Console(stderr=True)
    unknown = [b for b in config.budgets if b not in BUDGETS]
    if unknown:
        raise ValueError(f"unknown budget(s) {', '.join(unknown)}; known: {', '.join(BUDGETS)}")
    say = on_phase or (lambda msg: console.print(msg, soft_wrap=True))
    data = load_locomo(config.dataset_path).select(config.conversations)
    convs = list(data.conversations)
    every = {c.id for c in convs}
    unknown = sorted(set(config.train_conversations or ()) - every)
    if unknown:
        raise ValueError(f"training conversations not in the dataset selection: {', '.join(unknown)}")
    if len(every) < 2 or every <= set(config.train_conversations or ()):
        raise ValueError("every conversation is a training conversation: nothing is held out")
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                        disable=not config.show_progress)
    # Two clients: ingestion retries what fails; the measured requests are sent once (client ms stays honest).
    with memcubed.Client(service.url, service.api_key, timeout=600.0) as client, \
            memcubed.Client(service.url, service.api_key, timeout=300.0, max_retries=0) as api, progress:
        say(f"budgets: {len(convs)} conversations")
        state = ensure_cubes(client, convs, out / "state.json", progress)

        log: list[dict[str, Any]] = []
        for conv in convs:
            path = out / "log" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', conv.id)}.jsonl"
            rows = ([json.loads(line) for line in path.read_text().splitlines() if line.strip()]
                    if path.exists() else None)
            if rows is None or len(rows) != len(_questions(conv, config.max_questions)) * len(combinations()):
                rows = log_conversation(api, conv, state[conv.id], config, progress)
                _write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
            log.extend(rows)
        log_path = out / LOG_NAME
        _write_atomic(log_path, "".join(json.dumps(r) + "\n" for r in log))

        calib_path = out / "calibration.json"
        if calib_path.exists():
            calib = json.loads(calib_path.read_text())
        else:
            calib = calibrate(api, convs, state, config, progress)
            _write_atomic(calib_path, json.dumps(calib, indent=1))

        header_path = train_router(log_path, service.data_dir or out, config)
        header = json.loads(header_path.read_text(encoding="utf-8"))
        train_ids, held_ids = header["train_conversations"], header["held_out_conversations"]
        if not held_ids:
            raise ValueError("every conversation is a training conversation: nothing is held out")
        say(f"router v{header['version']} written to {header_path}; trained on {', '.join(train_ids)}, "
            f"held out {', '.join(held_ids)}")
        held = [c for c in convs if c.id in held_ids]
        auto_live = None
        if "auto" in config.budgets and service.data_dir is not None:
            auto_live = run_auto(api, held, state, header["held_out_choices"]["auto"], config, progress)
    systems = held_out_table(log, held_ids, header["held_out_choices"], auto_live, config.budgets)
    base = baselines(held, config, token_counter())
    meta = {"train": train_ids, "held_out": held_ids, "policy_version": header["version"], "lambda": config.lam,
            "reward": config.reward, "held_out_questions": header["held_out_questions"]}
    paths = {"log": log_path, "calibration": calib_path, "policy": header_path,
             "table": out / "budgets.md", "json": out / "budgets.json", "plot": out / "budgets-frontier.png"}
    _write_atomic(paths["table"], report(systems, base, calib, meta, config.top_k))
    _write_atomic(paths["json"], json.dumps({"meta": meta, "systems": systems, "baselines": base,
                                             "calibration": calib, "cost_axes": list(COST_AXES),
                                             "auto_reasons": auto_live["reasons"] if auto_live else None},
                                            indent=1, default=str))
    plot(systems, base, paths["plot"], config.top_k)
    return paths
