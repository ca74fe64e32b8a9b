"""Write-time enrichment without an LLM: time expressions, entities, keywords."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from app.graph.extract import entities, keywords
from app.graph.timeexpr import extract_times

SAID = datetime(2023, 5, 8, 13, 56)  # a Monday


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("I went there last Saturday", date(2023, 5, 6), date(2023, 5, 7)),
        ("we met two days ago", date(2023, 5, 6), date(2023, 5, 7)),
        ("yesterday was fun", date(2023, 5, 7), date(2023, 5, 8)),
        ("last week I painted", date(2023, 5, 1), date(2023, 5, 8)),
        ("next month we move", date(2023, 6, 1), date(2023, 7, 1)),
        ("On 7 May 2023 she ran", date(2023, 5, 7), date(2023, 5, 8)),
        ("on May 7, 2023 she ran", date(2023, 5, 7), date(2023, 5, 8)),
        ("back in May 2022", date(2022, 5, 1), date(2022, 6, 1)),
        ("I have lived here since 2019", date(2019, 1, 1), date(2020, 1, 1)),
        ("last weekend we hiked", date(2023, 5, 6), date(2023, 5, 8)),
        ("last year was hard", date(2022, 1, 1), date(2023, 1, 1)),
    ],
)
def test_time_expressions_resolve_against_the_moment_they_were_said(text: str, start: date, end: date) -> None:
    [ref] = extract_times(text, SAID)
    assert (ref.start, ref.end) == (start, end)


def test_relative_times_need_a_reference_and_absolute_ones_do_not() -> None:
    assert extract_times("last Saturday", None) == []
    [ref] = extract_times("on 7 May 2023", None)
    assert ref.as_json() == {"text": "7 May 2023", "start": "2023-05-07", "end": "2023-05-08"}


def test_text_without_times_has_none() -> None:
    assert extract_times("I like painting sunsets", SAID) == []


def test_entities_are_names_not_sentence_starts_days_or_greetings() -> None:
    text = "Melanie: Hey Caroline! Wow, That sounds great. On Saturday I took the kids to Yellowstone National Park."
    assert entities(text) == ["Melanie", "Caroline", "Yellowstone National Park"]


def test_entities_drop_possessives_and_deduplicate_case_insensitively() -> None:
    assert entities("Caroline's dog met CAROLINE and caroline") == ["Caroline"]


def test_keywords_are_stemmed_content_words_most_frequent_first() -> None:
    assert keywords("Painting, painted, paints: I love painting sunsets by the lake", limit=3) == [
        "paint", "sunset", "lake"]
