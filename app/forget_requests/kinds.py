"""Sensitive kinds of a forget request's subject, and whose a memory's mention is.

"Forget my address" has to find "I live at 42 Elm Street", which shares no word with it and is not close enough
in embedding space; so a subject of a known kind (address, phone, email, identity or account numbers, passwords,
health, finances, date of birth) also finds the memories that look like that kind of data. The patterns are Postgres
regular expressions (``~*``, evaluated by the database on its rows, never on a request's raw text), written without
nested quantifiers. "Forget my birthday" must leave "my sister's birthday": a first-person subject skips memories whose
every mention of it is owned by someone else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.textscan import head

# Every pattern is linear: alternations of literals, bounded classes, no quantified groups inside quantifiers.
_STREET = (r"\m\d{1,5}[a-z]?\s+(?:[a-z]+\s+){0,3}(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|"
           r"court|ct|way|place|pl|terrace|crescent|close|square|sq|strasse|straße)\M")
_DIGITS7 = r"\d[\d ().-]{5,18}\d"


@dataclass(frozen=True)
class Kind:
    name: str
    cues: frozenset[str]  # words of a subject that name this kind
    patterns: tuple[str, ...]  # Postgres regexes (case-insensitive) for memories holding such data


KINDS = (
    Kind("address", frozenset({"address", "addresses", "street", "apartment", "flat", "home", "postcode", "zip"}),
         (_STREET, r"\mi\s+(?:live|am living|reside|moved)\s+(?:at|on)\M", r"\m(?:my|our)\s+(?:home\s+)?address\M",
          r"\m(?:zip|postal)\s*code\M")),
    Kind("phone", frozenset({"phone", "cell", "mobile", "telephone", "landline"}),
         (r"\m(?:phone|cell|mobile|telephone|landline|number)\M.{0,40}" + _DIGITS7,
          _DIGITS7 + r".{0,30}\m(?:phone|cell|mobile|number)\M", r"\m(?:call|text|reach)\s+me\M.{0,30}\d{3}")),
    Kind("email", frozenset({"email", "e-mail", "mail", "inbox"}),
         (r"[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}\.[a-z0-9.-]{2,63}",)),
    Kind("identity", frozenset({"passport", "ssn", "social", "license", "licence", "id", "identity", "national",
                                "tax", "visa", "insurance", "nhs"}),
         (r"\m(?:passport|ssn|social security|licen[cs]e|id|identity|national|insurance|ni|nhs|tax|visa)\M.{0,40}"
          r"\m[a-z]{0,3} ?\d[a-z0-9 -]{4,16}\M",)),
    Kind("account", frozenset({"account", "bank", "iban", "card", "credit", "debit", "routing", "pin", "wallet"}),
         (r"\m(?:account|iban|card|bank|routing|sort code|wallet)\M.{0,40}\d[\d -]{3,30}\d",
          r"\m[a-z]{2}\d{2}\s?[a-z0-9]{4}\s?\d{4}")),
    Kind("password", frozenset({"password", "passwords", "passcode", "pin", "login", "credentials", "credential",
                                "secret", "token", "key", "passphrase", "recovery", "seed", "phrase"}),
         (r"\m(?:password|passcode|passphrase|pin|login|credentials?|secret|api key|token|recovery phrase|"
          r"seed phrase|recovery words)\M",)),
    Kind("health", frozenset({"health", "medical", "medication", "medications", "diagnosis", "condition", "illness",
                              "therapy", "doctor", "prescription", "disease", "mental", "meds", "medicine",
                              "pregnancy", "pregnant", "therapist", "surgery", "diagnosed"}),
         (r"\m(?:diagnos\w*|medication|medicine|prescri\w*|therapy|therapist|surgery|disease|disorder|"
          r"diabetes|asthma|cancer|depress\w*|anxiety|adhd|allerg\w*|pregnan\w*|hiv|illness|doctor|clinic|"
          r"hospital|symptom\w*|chemo\w*|insulin|antidepressant\w*|meds|pills|tablets)\M", r"\m\d+ ?mg\M",
          r"\m(?:take|taking|on)\s+[a-z]{4,30}\s+(?:every|each|daily|twice|once|morning|night)\M")),
    Kind("finances", frozenset({"finances", "financial", "salary", "income", "debt", "debts", "money", "loan",
                                "loans", "mortgage", "savings", "pay", "wage", "earnings", "bankruptcy"}),
         (r"\m(?:salary|income|debt|loan|mortgage|savings|earn\w*|owe|bankrupt\w*|paid|wage)\M",
          r"[$€£]\s?\d", r"\m\d[\d,.]*\s?(?:k|dollars|euros|pounds|usd|eur)\M", r"\m\d{1,3}(?:,\d{3})+\M",
          r"\m\d[\d,.]*k?\s+(?:a|per)\s+(?:year|month|week|hour)\M")),
    Kind("birth", frozenset({"birth", "birthday", "birthdate", "dob"}),
         (r"\m(?:born|birthday|birthdate|date of birth|dob)\M",)),
)
_WORD = re.compile(r"[a-z][a-z'-]{0,40}")
_FIRST_PERSON = re.compile(r"\b(?:my|our|mine)\b")
# A mention owned by a third party: "sister's birthday", "his address", "Tom's phone" ("your" is the user,
# as an assistant says it).
_OWNER = re.compile(r"(?:\b(?!(?:it|that|he|she|what|there|here|let|who|where|how)'s)[a-z]{1,30}'s|\bhis|\bher|"
                    r"\btheir|\bits)\s+(?:(?!my\b|our\b)[a-z]{1,20}\s+)?$")


def kind_of(subject: str) -> Kind | None:
    """The sensitive kind a subject names ("my home address" → address), if any."""
    words = set(_WORD.findall(subject.lower()))
    return next((k for k in KINDS if words & k.cues), None)


def first_person(sentence: str) -> bool:
    """Whether the request is about the speaker's own data ("forget my birthday")."""
    return _FIRST_PERSON.search(sentence.lower()) is not None


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
