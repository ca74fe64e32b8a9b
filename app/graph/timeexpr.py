"""Time expressions normalised against the moment they were said ("last Saturday" on 8 May 2023 → 6 May).

Rule-based on purpose: it runs on every write with no model, and its few patterns cover what
conversations say ("yesterday", "last week", "two days ago", "in May 2023", "on 7 May 2023").
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any

import re2

from app.textscan import SPACE, head

WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3, "few": 3, "several": 3}
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

_num = r"(\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few|few|several)"
_month = "|".join(sorted(MONTHS, key=len, reverse=True))
_PATTERNS = [
    ("ago", rf"\b{_num}\s+(day|week|month|year)s?\s+ago\b"),
    ("relday", r"\b(yesterday|today|tonight|tomorrow|this morning|last night)\b"),
    ("weekday", r"\b(last|this past|this|next)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"),
    ("relunit", r"\b(last|this|next|past)\s+(week|weekend|month|year)\b"),
    ("dmy", rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_month})\.?,?\s+(\d{{4}})\b"),
    ("mdy", rf"\b({_month})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b"),
    ("my", rf"\b(?:in\s+)?({_month})\.?\s+(\d{{4}})\b"),
    ("year", r"\b(?:in|since|during|of)\s+((?:19|20)\d{2})\b"),
]
# RE2, which finds the few matches of a long text at DFA speed where ``re`` tries every alternative at every
# word; Python's Unicode ``\s`` and ``\d`` are spelled out (RE2's are ASCII-only; its ``\b`` stays ASCII).
PATTERNS: list[tuple[str, Any]] = [
    (kind, re2.compile("(?i)" + p.replace(r"\s", SPACE).replace(r"\d", r"\p{Nd}")))
    for kind, p in _PATTERNS
]
MAX_MATCHES = 256
"""Matches of one pattern read in one text: far more than any real text holds, and a bound on a hostile one."""


def matches(pattern: Any, text: str) -> Iterator[Any]:
    return islice(pattern.finditer(text), MAX_MATCHES)


@dataclass(frozen=True)
class TimeRef:
    """A normalised time expression: the text, and the [start, end) day range it names."""

    text: str
    start: date
    end: date

    def as_json(self) -> dict[str, str]:
        return {"text": self.text, "start": self.start.isoformat(), "end": self.end.isoformat()}


def _month_range(year: int, month: int) -> tuple[date, date]:
    last = calendar.monthrange(year, month)[1]
    return date(year, month, 1), date(year, month, last) + timedelta(days=1)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS.get(word.lower(), 1)


def _resolve(kind: str, m: Any, ref: date) -> tuple[date, date] | None:
    g = [x.lower() if isinstance(x, str) else x for x in m.groups()]
    if kind == "ago":
        day = ref - timedelta(days=_count(g[0]) * UNIT_DAYS[g[1]])
        width = UNIT_DAYS[g[1]]
        return day - timedelta(days=width // 2), day + timedelta(days=width - width // 2)
    if kind == "relday":
        offset = {"yesterday": -1, "last night": -1, "tomorrow": 1}.get(g[0], 0)
        day = ref + timedelta(days=offset)
        return day, day + timedelta(days=1)
    if kind == "weekday":
        target = WEEKDAYS[g[1]]
        delta = (ref.weekday() - target) % 7
        if g[0] in ("last", "this past"):
            day = ref - timedelta(days=delta or 7)
        elif g[0] == "next":
            day = ref + timedelta(days=((target - ref.weekday()) % 7) or 7)
        else:
            day = ref - timedelta(days=delta) if delta <= 3 else ref + timedelta(days=(target - ref.weekday()) % 7)
        return day, day + timedelta(days=1)
    if kind == "relunit":
        sign = {"last": -1, "past": -1, "this": 0, "next": 1}[g[0]]
        unit = g[1]
        if unit == "year":
            return date(ref.year + sign, 1, 1), date(ref.year + sign + 1, 1, 1)
        if unit == "month":
            month_index = ref.year * 12 + ref.month - 1 + sign
            return _month_range(month_index // 12, month_index % 12 + 1)
        monday = ref - timedelta(days=ref.weekday()) + timedelta(days=7 * sign)
        if unit == "weekend":
            return monday + timedelta(days=5), monday + timedelta(days=7)
        return monday, monday + timedelta(days=7)
    if kind in ("dmy", "mdy"):
        day_s, month_s, year_s = (g[0], g[1], g[2]) if kind == "dmy" else (g[1], g[0], g[2])
        try:
            day = date(int(year_s), MONTHS[month_s], int(day_s))
        except ValueError:
            return None
        return day, day + timedelta(days=1)
    if kind == "my":
        return _month_range(int(g[1]), MONTHS[g[0]])
    if kind == "year":
        return date(int(g[0]), 1, 1), date(int(g[0]) + 1, 1, 1)
    return None


class Taken:
    """Characters already claimed by a match: an overlap check costs the match's length, not the matches so far."""

    def __init__(self, length: int) -> None:
        self._used = bytearray(length)

    def free(self, start: int, end: int) -> bool:
        return self._used.find(1, start, end) == -1

    def claim(self, start: int, end: int) -> None:
        self._used[start:end] = b"\x01" * (end - start)


def extract_times(text: str, said_at: datetime | date | None) -> list[TimeRef]:
    """Every time expression in ``text``; relative ones need ``said_at`` and are skipped without it."""
    ref = said_at.date() if isinstance(said_at, datetime) else said_at
    found: list[TimeRef] = []
    text = head(text)
    taken = Taken(len(text))
    for kind, pattern in PATTERNS:
        for m in matches(pattern, text):
            if not taken.free(m.start(), m.end()):
                continue
            relative = kind in ("ago", "relday", "weekday", "relunit")
            if relative and ref is None:
                continue
            span = _resolve(kind, m, ref or date.min)
            if span is not None:
                taken.claim(m.start(), m.end())
                found.append(TimeRef(m.group(0), span[0], span[1]))
    return found
