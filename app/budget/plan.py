"""A request's budget → which tiers each module may use, which are forced, and the hard limits.

Refusals are 422s with the reason: a tier that needs an LLM when none is configured, or forced tiers whose
LLM calls exceed ``max_llm_calls``. Only ``auto`` (or a limits budget, which routes) narrows the choice
silently, and then it says so in ``routing.warnings``; a named tier is never downgraded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.budget.features import QueryFeatures
from app.budget.policy import TIERS, Decision, Policy
from app.budget.tiers import SPECS
from app.errors import InvalidInput
from app.schemas.routing import Budget, BudgetLimits

# The modules each route runs, in the order they run.
ROUTE_MODULES: dict[str, tuple[str, ...]] = {
    "search": ("retrieval",),
    "context": ("retrieval", "context"),
    "answer": ("retrieval", "context", "answer"),
    "messages": ("extraction",),
}


@dataclass
class Plan:
    route: str
    forced: dict[str, str]
    allowed: dict[str, list[str]]  # the modules left to the router, with the tiers it may pick
    max_tokens: int | None
    max_ms: float | None
    max_llm_calls: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def modules(self) -> tuple[str, ...]:
        return ROUTE_MODULES[self.route]

    def llm_calls_left(self, spent: int) -> int | None:
        return None if self.max_llm_calls is None else self.max_llm_calls - spent


def plan(budget: Budget, route: str, llm_configured: bool) -> Plan:
    modules = ROUTE_MODULES[route]
    limits = budget if isinstance(budget, BudgetLimits) else BudgetLimits()
    p = Plan(route, {}, {}, limits.max_tokens, limits.max_ms, limits.max_llm_calls)
    if isinstance(budget, str) and budget != "auto":
        p.forced = {m: budget for m in modules}
    elif limits.tiers:
        p.forced = {m: t for m, t in limits.tiers.items() if m in modules}
        ignored = sorted(set(limits.tiers) - set(modules))
        if ignored:
            p.warnings.append(f"budget.tiers for {', '.join(ignored)} ignored: this route does not run them")
    for module, tier in p.forced.items():
        spec = SPECS[module][tier]
        if spec.needs_llm and not llm_configured:
            raise InvalidInput(
                f"{module} tier {tier!r} needs an LLM and none is configured (set MEMCUBED_LLM_BASE_URL), "
                "or send budget 'auto' to route among the available tiers",
                {"field": "budget", "module": module, "tier": tier})
    forced_calls = sum(SPECS[m][t].llm_calls for m, t in p.forced.items() if SPECS[m][t].needs_llm)
    if p.max_llm_calls is not None and forced_calls > p.max_llm_calls:
        raise InvalidInput(
            f"the forced tiers make {forced_calls} LLM call(s) but max_llm_calls is {p.max_llm_calls}",
            {"field": "budget.max_llm_calls", "needed": forced_calls, "limit": p.max_llm_calls})
    calls_left = None if p.max_llm_calls is None else p.max_llm_calls - forced_calls
    for module in modules:
        if module in p.forced:
            continue
        allowed = []
        for tier in TIERS:
            spec = SPECS[module][tier]
            if spec.needs_llm and not llm_configured:
                continue
            if spec.needs_llm and calls_left is not None and spec.llm_calls > calls_left:
                continue
            allowed.append(tier)
        refused = [t for t in TIERS if t not in allowed]
        if refused:
            why = "no LLM is configured" if not llm_configured else f"max_llm_calls is {p.max_llm_calls}"
            p.warnings.append(f"{module}: {', '.join(refused)} not available ({why}); routed among "
                              f"{', '.join(allowed)}")
        p.allowed[module] = allowed
    return p


def fit_latency(p: Plan, policy: Policy) -> None:
    """Best effort on ``max_ms`` before the choice: drop tiers whose expected cost alone is over it (the
    cheapest tier of a module always stays, so a route can always run)."""
    if p.max_ms is None:
        return
    for module, allowed in p.allowed.items():
        cheapest = min(allowed, key=lambda t: policy.expected_cost(module, t)["ms"])
        kept = [t for t in allowed if t == cheapest or policy.expected_cost(module, t)["ms"] <= p.max_ms]
        if len(kept) < len(allowed):
            p.warnings.append(f"{module}: {', '.join(t for t in allowed if t not in kept)} expected over "
                              f"max_ms {p.max_ms:g}")
        p.allowed[module] = kept


def downgrade_to_latency(p: Plan, policy: Policy, tiers: dict[str, str], reasons: dict[str, str]) -> None:
    """After the choice: while the expected total is over ``max_ms``, move the routed module with the most
    expected cost to its next cheaper allowed tier (forced tiers stay)."""
    if p.max_ms is None:
        return

    def total() -> float:
        return sum(policy.expected_cost(m, t)["ms"] for m, t in tiers.items())

    while total() > p.max_ms:
        options = []
        for module, tier in tiers.items():
            if module in p.forced:
                continue
            here = policy.expected_cost(module, tier)["ms"]
            cheaper = [t for t in p.allowed[module] if policy.expected_cost(module, t)["ms"] < here]
            if cheaper:
                best = max(cheaper, key=lambda t: policy.expected_cost(module, t)["ms"])
                options.append((here - policy.expected_cost(module, best)["ms"], module, best))
        if not options:
            p.warnings.append(f"expected cost {total():.0f} ms is over max_ms {p.max_ms:g} at the cheapest tiers")
            return
        _, module, tier = max(options)
        reasons[module] += f"; lowered to {tier} for max_ms"
        tiers[module] = tier


def decide(p: Plan, policy: Policy, features: QueryFeatures) -> Decision:
    """Forced tiers as given, the rest from the policy, then the latency fit."""
    tiers = dict(p.forced)
    reasons = {m: "forced" for m in p.forced}
    version = lam = None
    if p.allowed:
        fit_latency(p, policy)
        d = policy.choose(features, p.allowed)
        tiers.update(d.tiers)
        reasons.update(d.reasons)
        version, lam = d.version, d.lam
    downgrade_to_latency(p, policy, tiers, reasons)
    ordered = {m: tiers[m] for m in p.modules}
    return Decision(ordered, {m: reasons[m] for m in p.modules}, version, lam)


def as_mapping(budget: Budget) -> Mapping[str, object] | str:
    """A stable, hashable-ready form of the budget (cache keys)."""
    return budget if isinstance(budget, str) else budget.model_dump(exclude_none=True)
