"""A tiny synthetic conversation in LoCoMo's exact file format, built in the tests (never the real data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TURNS_S1 = [
    {"speaker": "Alice", "dia_id": "D1:1", "text": "I adopted a puppy named Rex last week."},
    {"speaker": "Bob", "dia_id": "D1:2", "text": "Congrats! What breed is Rex?"},
    {
        "speaker": "Alice",
        "dia_id": "D1:3",
        "text": "He is a golden retriever.",
        "img_url": ["https://example.invalid/rex.jpg"],
        "blip_caption": "a photo of a golden retriever puppy on grass",
        "query": "golden retriever puppy",
    },
]
TURNS_S2 = [
    {"speaker": "Bob", "dia_id": "D2:1", "text": "I started learning the violin in June."},
    {"speaker": "Alice", "dia_id": "D2:2", "text": "Violin is hard, good luck with the violin lessons!"},
    {"speaker": "Bob", "dia_id": "D2:3", "text": "Thanks, my teacher lives in Boston."},
]

QA: list[dict[str, Any]] = [
    {"question": "What is the name of Alice's puppy?", "answer": "Rex", "evidence": ["D1:1"], "category": 4},
    {
        "question": "When did Bob start learning the violin?",
        "answer": "June 2023",
        "evidence": ["D2:1"],
        "category": 2,
    },
    {
        "question": "Where does Bob's violin teacher live?",
        "answer": "Boston",
        "evidence": ["D2:1", "D2:3"],
        "category": 1,
    },
    {
        "question": "What breed is Bob's puppy?",
        "adversarial_answer": "golden retriever",
        "evidence": ["D1:3"],
        "category": 5,
    },
    # malformed but repairable: two ids in one string, zero padding
    {
        "question": "Which pets and music hobbies come up?",
        "answer": 2,
        "evidence": ["D1:1; D2:03"],
        "category": 3,
    },
    # unresolvable: no such turn, no id at all
    {"question": "What did Alice eat?", "answer": "pizza", "evidence": ["D9:9", "D"], "category": 4},
]


def tiny_locomo() -> list[dict[str, Any]]:
    """One sample, same keys and value shapes as locomo10.json."""
    return [
        {
            "sample_id": "conv-t1",
            "conversation": {
                "speaker_a": "Alice",
                "speaker_b": "Bob",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": TURNS_S1,
                "session_2_date_time": "10:00 am on 20 June, 2023",
                "session_2": TURNS_S2,
                "session_3_date_time": "9:00 am on 1 July, 2023",  # a date without a session, as upstream
            },
            "qa": QA,
            "observation": {},
            "session_summary": {},
            "event_summary": {},
        }
    ]


def write_tiny_locomo(directory: Path) -> Path:
    """Write the sample to ``directory/locomo_tiny.json``."""
    path = directory / "locomo_tiny.json"
    path.write_text(json.dumps(tiny_locomo()), encoding="utf-8")
    return path
