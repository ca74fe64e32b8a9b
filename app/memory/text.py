"""The text of a memory as the indexes see it: the indexed text (speaker included), its hash, content words."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from app.textscan import head

STOP = frozenset("""
a an the and or but if so to of in on at for with from by about
as is are was were be been being am i you he she it we they me him
her us them my your his its our their this that these those what which who whom do
does did have has had will would can could should just really very too also not no yes
oh ok okay well like get got go going know think yeah thanks thank much lot there here
then than when how why all any some more most
""".split())  # noqa: SIM905
TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+(?:[.,:/]\d+)*")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def indexed_text(content: str, metadata: dict[str, Any] | None) -> str:
    """The text that is embedded and indexed: a turn's speaker belongs to what it says ("Caroline: I went
    to the support group"), since questions name people."""
    speaker = (metadata or {}).get("speaker")
    if isinstance(speaker, str) and speaker and not content.startswith(f"{speaker}:"):
        return f"{speaker}: {content}"
    return content


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def content_words(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(head(text)) if t.lower() not in STOP]
