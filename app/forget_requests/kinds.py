"""Sensitive kinds of a forget request's subject, and whose a memory's mention is.

"Forget my address" has to find "I live at 42 Elm Street", which shares no word with it and is not close enough
in embedding space; so a subject of a known kind (address, phone, email, identity or account numbers, passwords,
health, finances, date of birth) also finds the memories that look like that kind of data. The patterns are Postgres
regular expressions (``~*``, evaluated by the database on its rows, never on a request's raw text), written without
nested quantifiers. "Forget my birthday" must leave "my sister's birthday": a first-person subject skips memories whose
every mention of it is owned by someone else.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from app.textscan import SCAN_CHARS, head

# Every pattern is linear: alternations of literals, bounded classes, no quantified groups inside quantifiers.
_STREET = (r"\m\d{1,5}[a-z]?\s+(?:[a-z]+\s+){0,3}(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|"
           r"court|ct|way|place|pl|terrace|crescent|close|square|sq|strasse|straße|hill|row|walk|mews|gardens|grove|rise|"
           r"quay|wharf|parade|green|park|circus|gate|alley|highway|hwy|parkway|pkwy|plaza)\M")
# Streets named after their type: "3 Rue des Lilas", "12 Via Roma", "7 Calle Mayor".
_STREET_FIRST = (r"\m\d{1,5}[a-z]?,?\s+(?:rue|via|calle|avenida|rua|chemin|avenue|boulevard|piazza|plaza)\s+"
                 r"(?:[a-z']+\s+){0,2}[a-z]+\M")
_DIGITS7 = r"\d[\d ().-]{5,18}\d"
_AMOUNTS = (r"[$€£]\s?\d[\d,.]*k?", r"\m\d[\d,.]*\s?(?:k|dollars|euros|pounds|usd|eur)\M", r"\m\d{1,3}(?:,\d{3})+\M",
            r"\m\d[\d,.]*k?\s+(?:a|per)\s+(?:year|month|week|hour)\M")
_EMAIL_PATTERN = r"[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}\.[a-z0-9.-]{2,63}"
_IDENTITY = (r"\m(?:passport|ssn|social security|licen[cs]e|id|identity|national|insurance|ni|nhs|tax|visa)\M.{0,40}"
             r"\m[a-z]{0,3} ?\d[a-z0-9 -]{4,16}\M")
_ACCOUNT = (r"\m(?:account|iban|card|bank|routing|sort code|wallet)\M.{0,40}\d[\d -]{3,30}\d",
            r"\m[a-z]{2}\d{2}\s?[a-z0-9]{4}\s?\d{4}")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}"
_DATES = (r"\m\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\M",
          rf"\m\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?\M",
          rf"\m{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\M")


@dataclass(frozen=True)
class Kind:
    name: str
    cues: frozenset[str]  # words of a subject that name this kind
    patterns: tuple[str, ...]  # Postgres regexes (case-insensitive) for memories holding such data
    # The data itself ("42 Elm Street", "58,500 a year"): what a mixed memory loses instead of all of it. A kind
    # without them (a password's cue, a diagnosis) takes the whole memory.
    values: tuple[str, ...] = ()
    # RE2, case-sensitive, group ``v``: the name a memory of this kind gives its data ("diagnosed with Crohn's
    # disease" → "Crohn"), which later memories repeat without the kind's words ("the flare ups from the Crohn's").
    echoes: tuple[str, ...] = ()


KINDS = (
    Kind("address", frozenset({"address", "addresses", "street", "apartment", "flat", "home", "postcode", "zip"}),
         (_STREET, _STREET_FIRST, r"\mi\s+(?:live|am living|reside|moved)\s+(?:at|on)\M",
          r"\m(?:my|our)\s+(?:home\s+)?address\M", r"\m(?:zip|postal)\s*code\M"), (_STREET, _STREET_FIRST)),
    Kind("phone", frozenset({"phone", "cell", "mobile", "telephone", "landline"}),
         (r"\m(?:phone|cell|mobile|telephone|landline|number)\M.{0,40}" + _DIGITS7,
          _DIGITS7 + r".{0,30}\m(?:phone|cell|mobile|number)\M", r"\m(?:call|text|reach)\s+me\M.{0,30}\d{3}"),
         (r"\+?" + _DIGITS7,)),
    Kind("email", frozenset({"email", "e-mail", "mail", "inbox"}),
         (_EMAIL_PATTERN,), (_EMAIL_PATTERN,)),
    Kind("identity", frozenset({"passport", "ssn", "social", "license", "licence", "id", "identity", "national",
                                "tax", "visa", "insurance", "nhs"}),
         (_IDENTITY,), (_IDENTITY,)),
    Kind("account", frozenset({"account", "bank", "iban", "card", "credit", "debit", "routing", "pin", "wallet"}),
         _ACCOUNT, _ACCOUNT),
    Kind("password", frozenset({"password", "passwords", "passcode", "pin", "login", "credentials", "credential",
                                "secret", "token", "key", "passphrase", "recovery", "seed", "phrase"}),
         (r"\m(?:password|passcode|passphrase|pin|login|credentials?|secret|api key|token|recovery phrase|"
          r"seed phrase|recovery words)\M",)),
    Kind("health", frozenset({"health", "medical", "medication", "medications", "diagnosis", "condition", "illness",
                              "therapy", "doctor", "prescription", "disease", "mental", "meds", "medicine",
                              "pregnancy", "pregnant", "diagnosed"}),
         (r"\m(?:diagnos\w*|medication|medicine|prescri\w*|therapy|therapist|surgery|disease|disorder|"
          r"diabetes|asthma|cancer|depress\w*|anxiety|adhd|allerg\w*|pregnan\w*|hiv|illness|doctor|clinic|"
          r"hospital|symptom\w*|chemo\w*|insulin|antidepressant\w*|meds|pills|tablets)\M", r"\m\d+ ?mg\M",
          r"\m(?:take|taking|on)\s+[a-z]{4,30}\s+(?:every|each|daily|twice|once|morning|night)\M"),
         echoes=(r"\b[Dd]iagnosed\s+with\s+(?:an?\s+|the\s+)?(?P<v>[A-Z][A-Za-z-]{2,30})",
                 r"\b(?P<v>[A-Z][A-Za-z-]{2,30})(?:'s)?\s+(?:disease|syndrome|disorder)\b")),
    Kind("finances", frozenset({"finances", "financial", "salary", "income", "debt", "debts", "money", "loan",
                                "loans", "mortgage", "savings", "pay", "wage", "earnings", "bankruptcy"}),
         (r"\m(?:salary|income|debt|loan|mortgage|savings|earn\w*|owe|bankrupt\w*|paid|wage)\M",
          *_AMOUNTS), _AMOUNTS),
    Kind("birth", frozenset({"birth", "birthday", "birthdate", "dob"}),
         (r"\m(?:born|birthday|birthdate|date of birth|dob)\M",), _DATES),
)
_WORD = re.compile(r"[a-z][a-z'-]{0,40}")
_FIRST_PERSON = re.compile(r"\b(?:my|our|mine)\b")
# A mention owned by a third party: "sister's birthday", "his address", "Tom's phone" ("your" is the user,
# as an assistant says it).
_OWNER = re.compile(r"(?:\b(?!(?:it|that|he|she|what|there|here|let|who|where|how)'s)[a-z]{1,30}'s|\bhis|\bher|"
                    r"\btheir|\bits)\s+(?:(?!my\b|our\b)[a-z]{1,20}\s+)?$")


def kind_of(subject: str) -> Kind | None:
    """The sensitive kind a subject names ("my home address" → address), if any; of two, the one its first cue
    names ("email address" is an email, not a street address)."""
    for word in _WORD.findall(subject.lower()[:200]):
        if (kind := next((k for k in KINDS if word in k.cues), None)) is not None:
            return kind
    return None


def first_person(sentence: str) -> bool:
    """Whether the request is about the speaker's own data ("forget my birthday")."""
    return _FIRST_PERSON.search(sentence.lower()) is not None


def mentions(content: str, words: Sequence[str], how: Callable[[Iterable[bool]], bool]) -> bool:
    """Whether ``any`` or ``all`` of the words start a word of the text (case-insensitive)."""
    text = head(content).lower()
    return how(re.search(rf"\b{re.escape(w)}", text) is not None for w in words)


def owned_by_another(content: str, words: list[str]) -> bool:
    """Every mention of the subject's words is someone else's ("my sister's birthday"), and there is one."""
    text = head(content).lower()
    seen = False
    for word in words:
        for m in re.finditer(rf"\b{re.escape(word)}", text):
            seen = True
            if _OWNER.search(text[max(0, m.start() - 60):m.start()]) is None:
                return False
    return seen


# Someone else as the subject of the clause a kind's data sits in: "my parents live at 14 Willow Crescent",
# "her number is …", "Tom's email is …". The speaker back in the clause ("my sister and I live at") makes it theirs.
_KIN = (r"(?:parents?|mum|mom|mother|dad|father|sisters?|brothers?|sons?|daughters?|wife|husband|partner|"
        r"boyfriend|girlfriend|friends?|neighbou?rs?|boss|colleagues?|in-laws|grand(?:parents?|ma|pa|mother|father)|"
        r"aunt|uncle|cousins?|kids?|children|flatmates?|roommates?|landlord|landlady)")
_ANOTHER = re.compile(rf"\b(?:(?:my|our)\s+{_KIN}|he|she|they|his|her|their|(?!it's|that's|what's|there's|here's)"
                      rf"[a-z]{{2,30}}'s)\b")
_SPEAKER = re.compile(r"\b(?:i|we|me|us)\b")
_CLAUSE_END = re.compile(r"[.!?;\n]")


def _python_pattern(pattern: str) -> Any:
    """A kind's Postgres pattern on RE2 (linear time): ``\\m``/``\\M`` (word start/end) are ``\\b`` there."""
    return re2.compile("(?i)" + pattern.replace(r"\m", r"\b").replace(r"\M", r"\b"))


_PY_PATTERNS = {k.name: tuple(_python_pattern(p) for p in k.patterns) for k in KINDS}


_NUMBERS = frozenset({"number", "numbers", "digits", "code", "codes"})


def fits(content: str, subject: str) -> bool:
    """Whether a memory can be what a pointing request means ("that number" has digits, "that address" an
    address's data; anything else, any memory)."""
    text = head(content)
    if (kind := kind_of(subject)) is not None:
        return any(p.search(text) for p in _PY_PATTERNS[kind.name])
    if _NUMBERS & set(_WORD.findall(subject.lower())):
        return _DIGITS.search(text) is not None
    return True


def kind_owned_by_another(content: str, kind: Kind) -> bool:
    """Every piece of ``kind``'s data in the text sits in a clause about someone else, and there is one
    ("forget my address" leaves "my parents live at 14 Willow Crescent")."""
    text = head(content).lower()
    seen = False
    for pattern in _PY_PATTERNS[kind.name]:
        for m in pattern.finditer(text):
            seen = True
            before = text[max(0, m.start() - 80):m.start()]
            clause = before[ends[-1].end():] if (ends := list(_CLAUSE_END.finditer(before))) else before
            others = list(_ANOTHER.finditer(clause))
            if not others or _SPEAKER.search(clause, others[-1].end()) is not None:
                return False
    return seen


_VALUE_PATTERNS = {k.name: tuple(_python_pattern(p) for p in k.values) for k in KINDS}
REDACTED = "[forgotten]"
_LEFT_WORD = re.compile(r"[^\W\d_]{3,}")
MAX_SPANS = 50
# What must be left beside the data for a memory to be kept, redacted, rather than archived: words that say
# something ("born in Newcastle" is; "please send the parcel to my address" is about the data alone).
MIN_LEFT_WORDS = 3
_FILLER = frozenset({"the", "and", "are", "was", "were", "for", "with", "from", "that", "this", "these", "those",
                     "please", "you", "your", "our", "his", "her", "its", "their", "but", "not", "any", "all", "can",
                     "will", "just", "also", "about", "into", "have", "has", "had", "been", "very", "too", "then",
                     "than", "it's", "i'm", "there", "here", "what", "which", "who", "when", "where", "how", "now",
                     "ok", "okay", "yes", "yeah", "thanks", "thank", "again", "still", "got", "get", "put", "send",
                     "use", "keep", "note", "noted", "save"})


def redact(content: str, kind: Kind) -> tuple[str, list[str]] | None:
    """The memory without ``kind``'s data, and the data taken out; None when the kind has no value patterns, none
    is found, or too little would be left to keep ("my email is x@y.z" goes whole; "I'm Lena, I live in Hamburg,
    reach me at x@y.z" keeps Hamburg)."""
    if len(content) > SCAN_CHARS or not _VALUE_PATTERNS[kind.name]:
        return None
    spans = _spans(content, _VALUE_PATTERNS[kind.name])
    return _cut(content, spans, kind.cues) if spans is not None else None


def redact_name(content: str, words: list[str]) -> tuple[str, list[str]] | None:
    """The memory without a name ("forget about Callum", "the bit about Larkspur"): the data of any kind that holds
    the name ("8 Larkspur Way"), else the name itself; only when the memory writes every word of it capitalised (a
    name, not a topic such as "my trip") and says enough beside it."""
    if len(content) > SCAN_CHARS or not words:
        return None
    lowered = [w.lower() for w in words]
    named = [[m.span() for m in itertools.islice(re2.finditer(rf"(?i)\b{re2.escape(w)}(?:'s)?\b", content),
                                                   MAX_SPANS) if content[m.start()].isupper()] for w in lowered]
    if not all(named):
        return None
    spans: list[tuple[int, int]] = []
    for patterns in _VALUE_PATTERNS.values():
        found = _spans(content, patterns) or []
        spans += [(a, b) for a, b in found if any(w in content[a:b].lower() for w in lowered)]
    spans += [span for found in named for span in found]
    return _cut(content, sorted(spans), frozenset())


def _spans(content: str, patterns: tuple[Any, ...]) -> list[tuple[int, int]] | None:
    """Where the patterns match, sorted; None when there are more than MAX_SPANS (mostly data)."""
    spans = sorted({m.span() for pattern in patterns for m in itertools.islice(pattern.finditer(content),
                                                                               MAX_SPANS + 1)})
    return None if len(spans) > MAX_SPANS else spans


def _cut(content: str, spans: list[tuple[int, int]], cues: frozenset[str]) -> tuple[str, list[str]] | None:
    """``content`` with the (sorted) spans replaced by REDACTED, and what they held; None when there are none or
    fewer than MIN_LEFT_WORDS words (neither ``cues`` nor filler) would be left."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    if not merged:
        return None
    parts, taken, at = [], [], 0
    for start, end in merged:
        parts += [content[at:start], REDACTED]
        taken.append(content[start:end])
        at = end
    text = "".join(parts) + content[at:]
    left = [w for w in _LEFT_WORD.findall(text.replace(REDACTED, " ")) if w.lower() not in cues | _FILLER]
    return (text, taken) if len(left) >= MIN_LEFT_WORDS else None


_ECHO_PATTERNS = {k.name: tuple(re2.compile(p) for p in k.echoes) for k in KINDS}
# Capitalised words that open a condition's name without being it ("diagnosed with Type 2 diabetes").
_NOT_ECHOES = frozenset({"type", "stage", "grade", "chronic", "acute", "severe", "mild", "early", "late", "the",
                         "some", "his", "her", "their", "my"})


def echoes_in(content: str, kind: Kind) -> list[str]:
    """The names ``kind``'s data goes by in this memory, for finding the memories that repeat them."""
    text = head(content)
    found = (m.group("v") for pattern in _ECHO_PATTERNS[kind.name] for m in pattern.finditer(text))
    return list(dict.fromkeys(v for v in found if v.lower() not in _NOT_ECHOES))[:10]


_TOKEN = re.compile(r"[^\s,;:!?()\[\]{}\"']{4,64}")
_EMAIL = re.compile(r"[\w.%+-]{1,64}@[\w-]{1,63}\.[\w.-]{2,63}")
_DIGITS = re.compile(r"\d")
_ALPHA = re.compile(r"[^\W\d_]")
_DIGIT_RUN = re.compile(r"(?:\d[ -]?){6,19}\d")


def values_in(content: str) -> list[str]:
    """The literal values a forgotten memory holds that other memories may repeat ("Got it, 07911 123456 for the
    courier"): numbers of six or more digits (spaces and dashes kept), e-mail addresses, and tokens that mix
    letters and digits ("K4471932", "tangerine-Moose-77"). Years and short numbers are not values."""
    text = head(content)
    found = [m.group(0) for m in _EMAIL.finditer(text)] + [m.group(0) for m in _DIGIT_RUN.finditer(text)]
    for m in _TOKEN.finditer(text):
        token = m.group(0).strip(".")
        if "@" not in token and _DIGITS.search(token) and _ALPHA.search(token) and len(token) >= 5:
            found.append(token)
    return list(dict.fromkeys(v for v in found if len(v) >= 5))[:20]
