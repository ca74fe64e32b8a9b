"""Fact-like statements ("my address is …", "Alice moved to Berlin", "I'm single now"): the patterns and the
extractors that own them. A fact is (subject, relation, value); two facts of one subject and relation with
different values mean the newer replaced the older. Used at write (supersession, the extraction tier) and by
consolidation.

The speaker is part of the subject, and "I", "we", "my" and "our" all name the speaker ("I live in Boston" and
"We moved to Denver last month" are both where the speaker lives). Every pattern is anchored and has no nested
unbounded quantifier, and runs on one sentence of at most ``MAX_SENTENCE`` characters of the first
``SCAN_CHARS`` of a text (``app.textscan``), so any input costs linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.models import Memory
from app.schemas.memories import MemoryIn
from app.textscan import head

MAX_SENTENCE = 300
SELF = "self"
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")
# Openers that do not change what a sentence states: "Actually, we moved to Denver." / "Update: …".
_LEAD = re.compile(r"^(?:(?:oh|ok|okay|so|well|hey|actually|anyway|btw|by the way|fyi|update|correction|"
                   r"quick update|just so you know|small correction|news|big news|sorry|no wait|wait|"
                   r"change of plans?)\b[,:!.]?\s*){1,3}", re.IGNORECASE)
_CONTRACTIONS = (("i'm", "i am"), ("we're", "we are"), ("i've", "i have"), ("we've", "we have"), ("it's", "it is"),
                 ("he's", "he is"), ("she's", "she is"), ("they're", "they are"))
NAME = r"[A-Z][\w-]{1,30}"
POSSESSIVE = r"(?P<owner>my|our|his|her|their|[A-Z][\w-]{1,30}'s)\s+(?P<attr>[\w' -]{1,40}?)"
FACT = re.compile(
    rf"^(?:{POSSESSIVE}\s+(?:is|are|was|were|has been|changed to|became|is now|are now)"
    rf"|(?P<who>i|we|he|she|they|{NAME})\s+(?P<rel>"
    r"(?:now\s+)?(?:live|lives|lived|am living|are living|is living|reside|resides)\s+(?:in|at|on)"
    r"|(?:just\s+|recently\s+|finally\s+)?(?:moved|relocated)\s+(?:to|into)"
    r"|(?:am|are|is)\s+(?:now\s+)?(?:based|living|staying)\s+in"
    r"|(?:now\s+)?(?:work|works|worked)\s+(?:at|for|as)"
    r"|(?:am|are|is)\s+(?:now\s+)?working\s+(?:at|for|as)"
    r"|(?:just\s+|recently\s+|finally\s+)?(?:got\s+a\s+(?:new\s+)?job\s+(?:at|as)|took\s+a\s+job\s+(?:at|as)|"
    r"started\s+a\s+new\s+job\s+(?:at|as)|started\s+working\s+(?:at|for|as))"
    r"|(?:am|are|is)(?:\s+now)?(?=\s+(?:married|engaged|single|divorced|separated|widowed|dating|in\s+a\s+relationship))"
    r"))\s+(?P<value>[^.!?;]{1,80})[.!;]?$",
    re.IGNORECASE)
RELATION = (("live", "residence"), ("resid", "residence"), ("moved", "residence"), ("relocated", "residence"),
            ("based", "residence"), ("staying", "residence"), ("work", "work"), ("job", "work"))
# Names of one attribute: "my number" and "my cell" are "my phone number".
ALIASES = {"number": "phone number", "cell": "phone number", "cell number": "phone number", "mobile": "phone number",
           "mobile number": "phone number", "phone": "phone number", "email address": "email", "e-mail": "email",
           "home address": "address", "favourite": "favorite"}
# A bare correction of the speaker's last fact: "Actually it's 555-0199." / "Sorry, I meant Denver."
CORRECTION = re.compile(r"^(?:actually|sorry|correction|oops|no wait|wait|my bad|i mean)\b[,:!]?\s*(?:no,?\s*)?"
                        r"(?:it is|it was|i meant|make that|it should be|that should be)\s+(?P<value>[^.!?;]{1,80})"
                        r"[.!;]?$", re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    value: str

    @property
    def key(self) -> tuple[str, str]:
        return self.subject, self.relation


def _normalise(sentence: str) -> str:
    text = " ".join(sentence.replace("\u2019", "'").split())
    for short, long in _CONTRACTIONS:
        text = re.sub(rf"\b{short}\b", long, text, flags=re.IGNORECASE)
    return text


def _sentences(content: str) -> list[str]:
    return [s for s in (_LEAD.sub("", x).strip() for x in _SENTENCE.split(_normalise(head(content))))
            if s and len(s) <= MAX_SENTENCE]


def _owner(word: str, speaker: str) -> str:
    lowered = word.lower()
    if lowered in ("i", "we", "my", "our"):
        return f"{speaker}|{SELF}"
    name = word[:-2] if lowered.endswith("'s") else word
    return f"{speaker}|{name.lower()}" if lowered in ("he", "she", "they", "his", "her", "their") else name.lower()


def facts_in(content: str, speaker: str) -> list[Fact]:
    """Every fact-like sentence of a text said by ``speaker`` ("" when unknown)."""
    found = []
    for sentence in _sentences(content):
        m = FACT.match(sentence)
        if m is None:
            continue
        value = m.group("value").strip().lower()
        if m.group("attr"):
            attr = m.group("attr").strip().lower().replace("favourite", "favorite")
            attr = ALIASES.get(attr, attr)
            found.append(Fact(f"{_owner(m.group('owner'), speaker)}|{attr}", "is", value))
            continue
        rel = m.group("rel").lower()
        kind = next((k for w, k in RELATION if w in rel), "status")
        found.append(Fact(_owner(m.group("who"), speaker), kind, value))
    return found


def correction_in(content: str) -> str | None:
    """The new value of a bare correction ("Actually it's 555-0199."), if the text is one."""
    for sentence in _SENTENCE.split(_normalise(head(content))):
        m = CORRECTION.match(sentence) if len(sentence) <= MAX_SENTENCE else None
        if m is not None:
            return m.group("value").strip().lower()
    return None


def speaker_of(m: Memory) -> str:
    return str((m.meta or {}).get("speaker") or (m.meta or {}).get("said_by") or m.user_id or "")


def fact_key(m: Memory) -> tuple[str, str, str] | None:
    """(subject, relation, value) of a memory's first fact-like sentence, or None."""
    found = facts_in(m.content, speaker_of(m))
    return (found[0].subject, found[0].relation, found[0].value) if found else None


def rule_facts(item: MemoryIn) -> list[str]:
    """Fact-like statements, a first-person one rewritten with the speaker's name as its subject."""
    speaker = item.metadata.get("speaker")
    if not isinstance(speaker, str) or not speaker:
        return []
    out = []
    for sentence in _sentences(item.content):
        m = FACT.match(sentence)
        if m is None:
            continue
        if m.group("who") and m.group("who").lower() in ("i", "we"):
            sentence = speaker + sentence[m.end("who"):]
        elif m.group("owner") and m.group("owner").lower() in ("my", "our"):
            sentence = f"{speaker}'s {sentence[m.start('attr'):]}"
        out.append(sentence.strip().rstrip(".!;"))  # about someone else: kept as said
    return out
