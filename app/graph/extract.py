"""Light enrichment with no model: keywords and named entities.

Entities are runs of capitalised words that are not sentence-initial function words; good enough to
link "Caroline" across turns and "LGBTQ support group" to itself, cheap enough for every write. With an
LLM configured, extraction can be upgraded (see ``app.graph.llm``) without changing the graph model.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter

import Stemmer

from app.textscan import head


def _words(text: str) -> list[str]:
    return text.split()


STOPWORDS = frozenset(_words("""
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    yeah yes oh hey hi wow really thanks thank lot lots got get gonna going also like just so much well know
    think sure great good awesome amazing totally definitely glad love cool nice"""))
# Capitalised words that start sentences or are greetings, not names.
NOT_NAMES = frozenset(_words("""
    I I'm I've I'd I'll Im Hey Hi Hello Wow Oh Yeah Yes No Thanks Thank That That's This These Those It It's
    What When Where Why How Who Which Well So But And Or If Sure Great Good Awesome Amazing Totally
    Definitely Glad Love Cool Nice Haha Lol Congrats Congratulations Absolutely Sounds Look Looks Also Plus
    Anyway By Did Do Does Have Has Had Was Were Is Are Can Could Would Should Will My Your Our Their His Her
    We You They He She There Here Just Not Really Very Maybe Wait See Let Let's Ok Okay Bye Night Morning
    Evening"""))
# Days and months are times (see ``timeexpr``), not entities to link on.
NOT_NAMES |= {*calendar.day_name, *(m for m in calendar.month_name if m)}
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+")
# A connector word needs its own space after it, so a whitespace run splits one way only: linear time even on a
# name followed by megabytes of spaces (``\s+(?:of)?\s*`` could split a run of n spaces n ways at every step).
_ENTITY = re.compile(r"\b([A-Z][a-zA-Z'\-]+(?:\s+(?:(?:of|the|and|de|van|von)\s+)?[A-Z][a-zA-Z'\-]+)*)")
_stemmer = Stemmer.Stemmer("english")


def keywords(text: str, limit: int = 8) -> list[str]:
    """Most frequent content words, stemmed, longest first among ties."""
    words = [w.lower().strip("'-") for w in _WORD.findall(head(text))]
    content = [w for w in words if len(w) > 2 and w not in STOPWORDS]
    counts = Counter(_stemmer.stemWords(content))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    return [w for w, _ in ranked[:limit]]


def entities(text: str) -> list[str]:
    """Named things, as written (deduplicated case-insensitively, order of first mention)."""
    seen: dict[str, str] = {}
    for match in _ENTITY.finditer(head(text)):
        words = match.group(1).split()
        start, end = 0, len(words)  # indexes, not slices: a run of a million "Hey"s stays linear
        while start < end and (words[start].strip("'") in NOT_NAMES or words[start].lower() in STOPWORDS):
            start += 1
        while end > start and words[end - 1].lower() in ("of", "the", "and"):
            end -= 1
        if start == end:
            continue
        name = " ".join(words[start:end]).strip("'-")
        if name.endswith("'s"):
            name = name[:-2]
        if len(name) < 2 or name.lower() in STOPWORDS:
            continue
        seen.setdefault(name.lower(), name)
    return list(seen.values())
