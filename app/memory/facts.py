"""Fact-like statements ("my address is …", "Alice moved to Berlin"): the pattern and the extractors that own it,
used by consolidation's supersession and by the extraction tier at write."""

from __future__ import annotations

import re

from app.models import Memory
from app.schemas.memories import MemoryIn

# "<subject> <relation> <value>" statements. A bare pronoun subject only counts with a relation that names a
# lasting attribute (lives in, works at…), never with "is/am", which is how most chat sentences start.
POSSESSIVE = r"(?:my|our|his|her|their|the|[A-Z][\w-]+'s)\s+[\w' -]{1,40}?"
ATTRIBUTE = (r"lives? in|lived in|moved to|relocated to|works? (?:at|for|as)|worked (?:at|for|as)|"
             r"(?:is|am|are) (?:now )?(?:living|working|based) (?:in|at|for)")


FACT = re.compile(
    rf"^\s*(?:(?P<subj>{POSSESSIVE})\s+(?P<copula>is|are|was|were|has been|changed to|became)"
    rf"|(?P<who>i|we|he|she|they|[A-Z][\w-]+)\s+(?P<rel>{ATTRIBUTE}))\s+(?P<value>[^.!?]{{1,80}})[.!]?\s*$",
    re.IGNORECASE)


RELATION = {"live": "residence", "moved": "residence", "relocated": "residence", "work": "work", "based": "residence"}


def fact_key(m: Memory) -> tuple[str, str, str] | None:
    """(subject, relation, value) of a fact-like statement, or None. The speaker is part of the subject."""
    match = FACT.match(m.content)
    if match is None:
        return None
    speaker = str((m.meta or {}).get("speaker") or m.user_id or "")
    value = match.group("value").strip().lower()
    if match.group("subj"):
        return f"{speaker}|{match.group('subj').strip().lower()}", "is", value
    rel = match.group("rel").lower()
    kind = next((v for k, v in RELATION.items() if k in rel), rel)
    return f"{speaker}|{match.group('who').lower()}", kind, value


def rule_facts(item: MemoryIn) -> list[str]:
    """A first-person fact-like statement, rewritten with the speaker's name as its subject."""
    speaker = item.metadata.get("speaker")
    m = FACT.match(item.content)
    if m is None or not isinstance(speaker, str) or not speaker:
        return []
    text = item.content
    if m.group("who") and m.group("who").lower() in ("i", "we"):
        text = speaker + text[m.end("who"):]
    elif m.group("subj") and m.group("subj").lower().startswith(("my ", "our ")):
        text = f"{speaker}'s " + text[m.start("subj"):].split(" ", 1)[1]
    return [text.strip().rstrip(".!")]
