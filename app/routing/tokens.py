"""Token counts with the local answer model's tokenizer (SmolLM2 by default), loaded alone and lazily.

Budgets are promised in the answer model's tokens, so counting with anything else (words, tiktoken) could
overrun them. Only the tokenizer is loaded: from the converted model directory when the activation model
was already converted, else straight from the GGUF file (about 4 s once, no conversion, no weights).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from app.activation.model import BUILTIN, ModelSpec, builtin_gguf
from app.errors import ConfigurationError


def _load(spec: ModelSpec) -> Any:
    from transformers import AutoTokenizer

    if spec.name in BUILTIN:
        converted = spec.models_dir / spec.name
        if (converted / "tokenizer.json").exists():
            return AutoTokenizer.from_pretrained(str(converted))
        gguf = builtin_gguf(spec.name)
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    path = Path(spec.name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        converted = spec.models_dir / path.stem
        if (converted / "tokenizer.json").exists():
            return AutoTokenizer.from_pretrained(str(converted))
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path))
    raise ConfigurationError(f"no tokenizer for activation model {spec.name!r}")


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
                    self._tokenizer = _load(self.spec)
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
