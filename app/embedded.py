"""Run a real server in a background thread: for tests, ``--embedded`` evaluations and benchmarks."""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from app.config import Settings
from app.main import create_app


@dataclass(frozen=True)
class EmbeddedServer:
    url: str
    admin_key: str
    settings: Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(settings: Settings, port: int | None = None,
                    tracing: TracerProvider | None = None) -> Iterator[str]:
    """Start uvicorn on a free port, wait until it accepts requests, and stop it on exit. Spans go to
    ``tracing`` when given (tests read them from an in-memory exporter)."""
    port = port or free_port()
    config = uvicorn.Config(create_app(settings, tracing=tracing), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"memcubed-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("embedded memcubed server failed to start; see the log above")
        if time.monotonic() > deadline:
            raise TimeoutError("embedded memcubed server did not start within 120 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def embedded_server(data_dir: Path | None = None, **overrides: object) -> Iterator[EmbeddedServer]:
    """A throwaway memcubed: its own data dir (temporary unless given) and embedded Postgres."""
    with tempfile.TemporaryDirectory(prefix="memcubed-") as tmp:
        root = data_dir or Path(tmp)
        admin_key = str(overrides.pop("admin_key", None) or "mck_" + secrets.token_urlsafe(24))
        settings = Settings(data_dir=root, admin_key=admin_key, **overrides)  # type: ignore[arg-type]
        with serve_in_thread(settings) as url:
            yield EmbeddedServer(url=url, admin_key=admin_key, settings=settings)
