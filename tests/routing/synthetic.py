"""A small routing log with a known best tier per kind of question (never LoCoMo data).

"when" questions are found only by high retrieval; "what" questions by every tier; the context tier never
changes recall@10. Costs grow with the tiers, so the λ-optimal choice is known exactly:
"what" → retrieval low, "when" → retrieval high, context always low.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.budget.features import featurize

MS = {"low": 2.0, "mid": 20.0, "high": 40.0}
TOKENS = {"low": 300, "mid": 900, "high": 1800}
WHEN = "When did {name} move to {city}?"
WHAT = "What is the name of {name}'s dog?"
NAMES = ("Ann", "Ben", "Cleo", "Dan", "Eve", "Finn")
CITIES = ("Paris", "Oslo", "Rome", "Lima", "Kyiv", "Bern")


def rows(conversations: int = 5, per_kind: int = 6) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in range(conversations):
        for i in range(per_kind * 2):
            kind = "when" if i % 2 else "what"
            template = WHEN if kind == "when" else WHAT
            query = template.format(name=NAMES[i % len(NAMES)], city=CITIES[(i + c) % len(CITIES)])
            features = featurize(query, 400 + 100 * c, 10 + c, False).as_json()
            for retrieval in ("low", "mid", "high"):
                for context in ("low", "mid", "high"):
                    found = kind == "what" or retrieval == "high"
                    out.append({
                        "question_id": f"c{c}-q{i}", "conversation_id": f"c{c}", "category": 2,
                        "features": features, "tiers": {"retrieval": retrieval, "context": context},
                        "recall": 1.0 if found else 0.0, "context_recall": 1.0 if found else 0.0, "judge": None,
                        "ms": MS[retrieval] + MS[context] / 4, "tokens": TOKENS[context], "llm_calls": 0,
                    })
    return out


def write_log(path: Path, **kwargs: int) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(**kwargs)), encoding="utf-8")
    return path
