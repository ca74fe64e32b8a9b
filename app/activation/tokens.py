"""Token counts with the local answer model's tokenizer (SmolLM2 by default), loaded alone and lazily.

Budgets are promised in the answer model's tokens, so counting with anything else (words, tiktoken) could
overrun them. Only the tokenizer is loaded (``load_tokenizer``), never the weights.
"""

from __future__ import annotations

import threading
from typing import Any

from app.activation.model import ModelSpec, load_tokenizer


class TokenCounter:
    """Counts and cuts text in the answer model's tokens."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = load_tokenizer(self.spec)
        return self._tokenizer

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def count(self, text: str) -> int:
        return len(self.ids(text))

    def truncate(self, text: str, limit: int) -> str:
        """The longest token prefix of ``text`` that re-encodes to at most ``limit`` tokens (decoding and
        re-encoding need not round-trip, so the cut is checked, and shortened until it holds)."""
        ids = self.ids(text)
        if len(ids) <= limit:
            return text
        n = limit
        while n > 0:
            cut = str(self.tokenizer.decode(ids[:n], skip_special_tokens=True))
            if self.count(cut) <= limit:
                return cut
            n -= 1
        return ""
