"""Conversations for the routing tests: a written one with known facts, grown with generated small talk to a
size where a token budget matters, and the real LoCoMo turns (``None`` when the shared data set is missing: a
test then skips with the reason, never runs on the written one under LoCoMo's name)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import TenantCtx, wait_enriched

Json = dict[str, Any]
LOCOMO = Path(__file__).resolve().parents[3] / "shared" / "data" / "locomo" / "locomo10.json"

FACTS = [  # (session, speaker, text)
    ("s1", "Caroline", "I went to the LGBTQ support group yesterday and it was so powerful."),
    ("s1", "Melanie", "That's great! I painted a sunrise over the lake last year."),
    ("s1", "Caroline", "I want to study counseling and work in mental health."),
    ("s2", "Melanie", "We took the kids camping at the beach last weekend."),
    ("s2", "Caroline", "My adoption application for a child was accepted!"),
    ("s2", "Melanie", "I signed up for a pottery class on Tuesdays."),
]
TOPICS = ["the weather", "a new recipe", "the traffic", "a podcast", "the garden", "a board game", "the gym",
          "a concert", "the library", "a road trip", "the neighbours", "a movie"]
FEELINGS = ["was fun", "took ages", "felt relaxing", "was a bit boring", "made my day"]
PLACES = ["at the park", "with my cousin", "after work", "on the train", "at breakfast", "in the evening",
          "with friends"]


def conversation(filler: int = 80) -> list[tuple[str, str, str, str]]:
    """(session, speaker, text, timestamp): the facts spread over sessions s1..s3 with generated turns."""
    start = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
    turns: list[tuple[str, str, str]] = []
    facts = iter(FACTS)
    for i in range(filler):
        session = f"s{1 + i * 3 // filler}"
        if i % 15 == 3:
            fact = next(facts, None)
            if fact is not None:
                turns.append(fact)
        speaker = ("Caroline", "Melanie")[i % 2]
        turns.append((session, speaker, f"Talking about {TOPICS[i % len(TOPICS)]} {PLACES[i % len(PLACES)]}, "
                                        f"it {FEELINGS[i % len(FEELINGS)]}."))
    day = {"s1": 0, "s2": 14, "s3": 30}
    return [(sess, sp, text, (start + timedelta(days=day[sess], minutes=n)).isoformat())
            for n, (sess, sp, text) in enumerate(turns)]


def locomo_turns(limit: int) -> list[tuple[str, str, str, str]] | None:
    """The first ``limit`` turns of LoCoMo conversation 0, when the shared data set is here."""
    if not LOCOMO.exists():
        return None
    conv = json.loads(LOCOMO.read_text())[0]["conversation"]
    out: list[tuple[str, str, str, str]] = []
    n = 1
    while f"session_{n}" in conv and len(out) < limit:
        when = datetime.strptime(conv[f"session_{n}_date_time"], "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
        for i, turn in enumerate(conv[f"session_{n}"]):
            out.append((f"session_{n}", turn["speaker"], turn["text"], (when + timedelta(minutes=i)).isoformat()))
        n += 1
    return out[:limit]


def ingest(t: TenantCtx, cube: str, turns: list[tuple[str, str, str, str]]) -> list[Json]:
    """Post the turns as messages, one request per session, and wait until the fine indexes have them."""
    stored: list[Json] = []
    sessions = list(dict.fromkeys(s for s, *_ in turns))
    for session in sessions:
        msgs = [{"role": "user", "speaker": sp, "content": text, "timestamp": ts}
                for s, sp, text, ts in turns if s == session]
        r = t.http.post(f"/v1/cubes/{cube}/messages", json={"session_id": session, "messages": msgs})
        assert r.status_code == 201, r.text
        stored.extend(r.json()["memories"])
    wait_enriched(t, cube)
    return stored

