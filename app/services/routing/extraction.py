"""The extraction-at-write module's tiers, for ``POST /v1/cubes/{id}/messages`` with a ``budget``:

- low: the raw turns, as without a budget;
- mid: plus rule-based facts (consolidation's fact patterns: "I moved to Berlin" said by Alice → the semantic
  memory "Alice moved to Berlin") and each turn's named entities in its metadata (``entities``);
- high: plus durable facts an LLM extracts from the batch (one call); refused without an LLM. ``auto`` runs
  mid (the router's rule for writes: an LLM call per write only when asked for).

Extracted facts are ordinary semantic memories (``source.type = "extraction"``), so admission, search and
consolidation treat them like any other; they carry the message session and time they came from.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from app.budget.plan import plan
from app.budget.tiers import Meter
from app.config import Settings
from app.graph.extract import entities
from app.llm import LLMUnavailable, chat, fell_back
from app.memory.facts import rule_facts
from app.schemas.memories import MemoryIn
from app.schemas.routing import Budget, CacheReport, Routing, RoutingCost

log = logging.getLogger(__name__)

PROMPT = ("Extract the durable facts from these conversation turns: who did what, when, preferences, plans, "
          "relationships. Name people (no pronouns). Reply with JSON {\"facts\": [\"...\"]}; at most 10 facts.")
MAX_FACTS = 10


def fact_memory(item: MemoryIn, content: str, tier: str) -> MemoryIn:
    return MemoryIn(content=content, memory_type="semantic", user_id=item.user_id, agent_id=item.agent_id,
                    session_id=item.session_id, occurred_at=item.occurred_at, tags=["extracted"],
                    # Who said it, not a speaker: the fact names its subject, and is not a turn of the talk.
                    metadata={"said_by": item.metadata["speaker"]} if item.metadata.get("speaker") else {},
                    source={"type": "extraction", "tier": tier})


def llm_facts(settings: Settings, items: Sequence[MemoryIn]) -> tuple[list[str], int]:
    transcript = "\n".join(f"{it.metadata.get('speaker') or it.metadata.get('role')}: {it.content}"
                           for it in items)[:24_000]
    text, used = chat(settings, settings.llm_model_large or settings.llm_model,
                      [{"role": "system", "content": PROMPT}, {"role": "user", "content": transcript}],
                      max_tokens=800, json_mode=True)
    facts = json.loads(text).get("facts", [])
    if not isinstance(facts, list):
        raise ValueError("facts is not a list")
    return [" ".join(str(f).split()) for f in facts if str(f).strip()][:MAX_FACTS], used


def extract(settings: Settings, budget: Budget, items: list[MemoryIn]) -> tuple[list[MemoryIn], Routing]:
    """The items to write (the turns, then what the tier extracted) and the routing report."""
    started = time.perf_counter()
    llm = settings.llm_base_url is not None
    p = plan(budget, "messages", llm)
    meter = Meter()
    if "extraction" in p.forced:
        tier, reason = p.forced["extraction"], "forced"
    else:  # routed: the policy's rule for writes; an LLM call only when high is asked for
        tier = "mid" if "mid" in p.allowed["extraction"] else p.allowed["extraction"][-1]
        reason = "rule: rule-based facts and entities (no LLM call unless high is asked for)"
    out = list(items)
    with meter.timed("extraction"):
        if tier in ("mid", "high"):
            for item in items:
                names = entities(item.content)
                if names:
                    item.metadata["entities"] = names
        if tier == "mid":
            out += [fact_memory(it, f, "mid") for it in items for f in rule_facts(it)]
        elif tier == "high":
            meter.llm_calls += 1
            try:
                facts, meter.tokens = llm_facts(settings, items)
                out += [fact_memory(items[-1], f, "high") for f in facts]
            except (LLMUnavailable, KeyError, ValueError, TypeError, AttributeError) as exc:
                log.warning("LLM extraction failed (%s); using the rule-based facts", exc)
                fell_back(exc)
                p.warnings.append(f"LLM extraction failed ({type(exc).__name__}); rule-based facts used")
                out += [fact_memory(it, f, "mid") for it in items for f in rule_facts(it)]
    routing = Routing(
        tiers={"extraction": tier}, reasons={"extraction": reason}, warnings=p.warnings,
        cost=RoutingCost(ms=meter.report((time.perf_counter() - started) * 1000), tokens=meter.tokens,
                         llm_calls=meter.llm_calls),
        cache=CacheReport(hit=False))
    return out, routing
