"""Rule-based extraction at write (the mid tier): first-person statements become facts about the speaker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.schemas.memories import MemoryIn
from app.services.routing.extraction import fact_memory, rule_facts


@pytest.mark.parametrize(("content", "facts"), [
    ("  I moved to Boston in 2020.", ["Caroline moved to Boston in 2020"]),
    ("We live in a small flat near the river.", ["Caroline live in a small flat near the river"]),
    ("My favourite color is blue!", ["Caroline's favourite color is blue"]),
    ("Alice lives in Rome.", ["Alice lives in Rome"]),  # about someone else: kept as said
    ("I am so happy today", []),  # "I am ..." is how chat starts, not a lasting attribute
    ("Nice weather", []),
])
def test_rule_facts(content: str, facts: list[str]) -> None:
    assert rule_facts(MemoryIn(content=content, metadata={"speaker": "Caroline"})) == facts


def test_a_fact_is_a_semantic_memory_with_its_turns_session_and_time() -> None:
    turn = MemoryIn(content="I moved to Boston in 2020.", session_id="s1", user_id="u",
                    occurred_at=datetime(2023, 5, 8, 13, tzinfo=UTC), metadata={"speaker": "Caroline"})
    fact = fact_memory(turn, "Caroline moved to Boston in 2020", "mid")
    assert (fact.memory_type, fact.session_id, fact.user_id, fact.occurred_at) == (
        "semantic", "s1", "u", turn.occurred_at)
    assert (fact.metadata, fact.source, fact.tags) == ({"said_by": "Caroline"}, {"type": "extraction", "tier": "mid"},
                                                       ["extracted"])
    assert rule_facts(MemoryIn(content="I moved to Boston.")) == []  # no speaker: no subject to name
