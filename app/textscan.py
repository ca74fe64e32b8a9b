"""How much of one text the rule-based text processors read.

Entity, keyword, time and forget-request extraction, the fact patterns and admission's counts are linear in their
input (RE2 or patterns that cannot backtrack), but they walk tokens at Python speed. Reading at most SCAN_CHARS
(the default memory size limit; queries are shorter still) keeps each of them within tens of milliseconds
whatever a caller passes, so no text can stall the API or a worker.
"""

from __future__ import annotations

SCAN_CHARS = 32 * 1024
# Python's Unicode ``\s`` and ``\w`` (inside a class) for RE2 patterns: RE2's own are ASCII-only.
SPACE = r"[\t-\r\x{1c}-\x{1f}\x{85}\pZ]"
WORD_CHARS = r"\pL\pN_"


def head(text: str) -> str:
    """The part of ``text`` the processors look at."""
    return text[:SCAN_CHARS]
