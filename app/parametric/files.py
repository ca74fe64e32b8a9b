"""Adapter files, content-addressed under the data dir: the same bytes are stored once, and a file's name is
its SHA-256, so an archive or a restore can check what it carries."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class AdapterFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.safetensors"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def put(self, data: bytes, written: list[Path] | None = None) -> str:
        """Store ``data`` atomically and return its SHA-256; a file this call created is appended to
        ``written``, so a caller whose transaction then fails removes it (a file that was there is kept)."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
            if written is not None:
                written.append(target)
        return sha

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()
