"""What a KV cache is only valid for: one model's weights, dtype and tokenizer, and one token sequence."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Fingerprint:
    """A cache computed by one model is garbage in any other: every part here changes the keys and values."""

    model_id: str
    weights_sha256: str
    dtype: str
    tokenizer_sha256: str

    @property
    def key(self) -> str:
        """One 64-hex string for storage and comparison."""
        raw = f"{self.model_id}\x00{self.weights_sha256}\x00{self.dtype}\x00{self.tokenizer_sha256}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "key": self.key}


def token_hash(token_ids: Sequence[int]) -> str:
    """SHA-256 of the ids as little-endian int32, so the same text under another tokenizer never collides."""
    return hashlib.sha256(struct.pack(f"<{len(token_ids)}i", *token_ids)).hexdigest()


def pack_tokens(token_ids: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(token_ids)}i", *token_ids)


def unpack_tokens(raw: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(raw) // 4}i", raw)


def sha256_files(paths: Iterable[Path]) -> str:
    """Hash of the files' contents in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def cached_sha256(paths: Sequence[Path], cache_file: Path) -> str:
    """``sha256_files`` remembered by path, size and mtime: rehashing a multi-GB model each start is waste."""
    stamp = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    if cache_file.exists():
        try:
            saved = json.loads(cache_file.read_text())
            if saved.get("stamp") == stamp:
                return str(saved["sha256"])
        except (ValueError, KeyError):
            pass
    value = sha256_files(paths)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"stamp": stamp, "sha256": value}))
    return value
