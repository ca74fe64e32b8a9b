"""The portable cube archive: one tar file, ``manifest.json`` first, then the files it lists with their SHA-256.

Writing streams: each file is spooled (memory, then disk past a few MB) while its hash is taken, then the tar is
produced chunk by chunk, so a large cube is never held whole in memory. Reading verifies everything (the tar
structure, the manifest, every listed file's presence and SHA-256, no unlisted member) before a caller writes
anything, so a corrupted, truncated or tampered archive is refused whole.

This module knows the container format only; what the files mean is ``app.services.lifecycle``'s business.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from app.errors import InvalidInput

FORMAT = "memcubed-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPOOL_BYTES = 8 * 1024 * 1024
CHUNK = 1024 * 1024
# Members are flat names or one folder deep (activations/<id>.safetensors); nothing that could escape a directory.
MEMBER_NAME = re.compile(r"^[a-z_]+(?:/[A-Za-z0-9_.-]+)?\.[a-z]+$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _Spooled:
    fh: IO[bytes]
    size: int
    sha256: str


@dataclass
class ArchiveWriter:
    """Collect the archive's files (each hashed as it is spooled), then ``stream`` the tar."""

    files: dict[str, _Spooled] = field(default_factory=dict)

    def add_lines(self, name: str, rows: Iterable[str]) -> int:
        """A JSON Lines file from already serialised rows; returns the row count."""
        count = 0

        def encoded() -> Iterator[bytes]:
            nonlocal count
            for row in rows:
                count += 1
                yield (row + "\n").encode()

        self.add_chunks(name, encoded())
        return count

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_chunks(name, [data])

    def add_chunks(self, name: str, chunks: Iterable[bytes]) -> None:
        if not MEMBER_NAME.match(name) or name == MANIFEST or name in self.files:
            raise ValueError(f"bad or repeated archive member name {name!r}")
        fh = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by stream()
        digest = hashlib.sha256()
        size = 0
        for chunk in chunks:
            fh.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        fh.seek(0)
        self.files[name] = _Spooled(fh, size, digest.hexdigest())

    def manifest(self, header: dict[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **header,
                "files": {name: f.sha256 for name, f in self.files.items()}}

    def stream(self, header: dict[str, Any]) -> Iterator[bytes]:
        """The tar, manifest first, written by hand (header block, data, padding) so that every member goes
        out in chunks of at most ``CHUNK`` bytes; closes the spooled files."""
        written = 0
        try:
            body = json.dumps(self.manifest(header), indent=1, sort_keys=True).encode()
            members: list[tuple[str, int, IO[bytes]]] = [(MANIFEST, len(body), io.BytesIO(body))]
            members += [(name, f.size, f.fh) for name, f in self.files.items()]
            for name, size, fh in members:
                head = _info(name, size).tobuf(tarfile.PAX_FORMAT)
                yield head
                while chunk := fh.read(CHUNK):
                    yield chunk
                pad = -size % tarfile.BLOCKSIZE
                yield b"\0" * pad
                written += len(head) + size + pad
            end = 2 * tarfile.BLOCKSIZE
            yield b"\0" * (end + -(written + end) % tarfile.RECORDSIZE)
        finally:
            for spooled in self.files.values():
                spooled.fh.close()

    def to_bytes(self, header: dict[str, Any]) -> bytes:
        return b"".join(self.stream(header))


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info


@dataclass(frozen=True)
class Archive:
    """A verified archive: its manifest and the content of every file it lists."""

    manifest: dict[str, Any]
    files: dict[str, bytes]

    def lines(self, name: str) -> list[bytes]:
        """The non-empty lines of a JSON Lines member (none when the archive has no such file)."""
        return [ln for ln in self.files.get(name, b"").splitlines() if ln.strip()]


def bad(message: str, **details: Any) -> InvalidInput:
    return InvalidInput(f"archive rejected: {message}", details)


def read_archive(data: bytes) -> Archive:
    """Parse and verify a whole archive; any defect is an ``InvalidInput`` and nothing has been written."""
    if not data:
        raise bad("the body is empty; send the tar that GET /v1/cubes/{cube_id}/archive produced")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isfile() or not (info.name == MANIFEST or MEMBER_NAME.match(info.name)):
                    raise bad(f"unexpected member {info.name!r}", member=info.name)
                if info.name in members:
                    raise bad(f"member {info.name!r} appears twice", member=info.name)
                fh = tar.extractfile(info)
                content = fh.read() if fh is not None else b""
                if len(content) != info.size:
                    raise bad(f"member {info.name!r} is truncated", member=info.name)
                members[info.name] = content
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise bad(f"not a readable tar ({exc})") from exc
    manifest = _manifest(members.pop(MANIFEST, None))
    listed: dict[str, Any] = manifest["files"]
    for name, want in listed.items():
        if name not in members:
            raise bad(f"{name!r} is listed in the manifest but missing", member=name)
        if sha256_hex(members[name]) != want:
            raise bad(f"{name!r} does not match its SHA-256 in the manifest (corrupted or altered)", member=name)
    extra = sorted(set(members) - set(listed))
    if extra:
        raise bad(f"{extra[0]!r} is not listed in the manifest", member=extra[0])
    return Archive(manifest, members)


def _manifest(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise bad(f"no {MANIFEST}")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise bad(f"{MANIFEST} is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise bad(f"{MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise bad(f"unsupported format_version {manifest.get('format_version')!r}; this server reads "
                  f"{FORMAT_VERSION}", format_version=manifest.get("format_version"))
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise bad(f"{MANIFEST} has no valid 'files' map")
    return manifest
