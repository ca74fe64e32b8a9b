"""Files for cube export and import: stream them in chunks so a large cube never sits in memory."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

CHUNK_SIZE = 64 * 1024


class Readable(Protocol):
    """Anything with ``read(size)``: open files (binary or text), ``io.BytesIO``, ``sys.stdin.buffer``."""

    def read(self, size: int = -1, /) -> bytes | str: ...


class Writable(Protocol):
    """Anything with ``write(bytes)``: a file opened ``"wb"``, ``io.BytesIO``, a socket file."""

    def write(self, data: bytes, /) -> object: ...


UploadSource = str | os.PathLike[str] | Readable
ExportTarget = str | os.PathLike[str] | Writable


class Upload:
    """The body of an import: a path, or a binary (or text) file object read from its current position.

    ``size`` is known for paths and seekable files, so the request carries a ``Content-Length``.
    ``rewindable`` says whether the body can be sent again on a retry.
    """

    def __init__(self, source: UploadSource) -> None:
        self._path: str | None = None
        self._file: Any = None
        self._start = 0
        self._data: bytes | None = None
        self.size: int | None = None
        self.rewindable = False
        if isinstance(source, (str, os.PathLike)):
            self._path = os.fspath(source)
            self.size = os.path.getsize(self._path)
            self.rewindable = True
        elif isinstance(source, io.TextIOBase):
            # Text files: sizes are in characters, not bytes, so read and encode once.
            self._data = str(source.read()).encode("utf-8")
            self.size = len(self._data)
            self.rewindable = True
        elif hasattr(source, "read"):
            self._file = source
            seekable = getattr(source, "seekable", None)
            if callable(seekable) and seekable():
                self._start = self._file.tell()
                end = self._file.seek(0, os.SEEK_END)
                self._file.seek(self._start)
                self.size = end - self._start
                self.rewindable = True
        else:
            raise TypeError(f"expected a path or a file object, got {type(source).__name__}")

    def chunks(self) -> Iterator[bytes]:
        """The body from its start; a fresh call after a failed try starts over (when rewindable)."""
        if self._data is not None:
            yield self._data
            return
        if self._path is not None:
            with open(self._path, "rb") as fh:
                while chunk := fh.read(CHUNK_SIZE):
                    yield chunk
            return
        assert self._file is not None
        if self.rewindable:
            self._file.seek(self._start)
        while chunk := self._file.read(CHUNK_SIZE):
            yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk

    async def achunks(self) -> AsyncIterator[bytes]:
        """Async form of :meth:`chunks` for ``AsyncClient`` (local file reads are short and blocking)."""
        for chunk in self.chunks():
            yield chunk


@contextmanager
def open_sink(target: ExportTarget) -> Iterator[Writable]:
    """Where an export is written.

    For a path the data goes to a temporary file in the same directory, renamed over the target only
    when the export completed, so a failed export never leaves a truncated file that looks complete.
    A file object is written as is, from its current position.
    """
    if isinstance(target, (str, os.PathLike)):
        path = os.fspath(target)
        directory, name = os.path.split(os.path.abspath(path))
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    if isinstance(target, io.TextIOBase):
        raise TypeError("export writes bytes: open the file in binary mode ('wb')")
    if not hasattr(target, "write"):
        raise TypeError(f"expected a path or a binary file object, got {type(target).__name__}")
    yield target
