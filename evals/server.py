"""The memcubed an ``--embedded`` run talks to: ``memcubed serve`` as a child process, driven over HTTP.

The evaluation is a client of the service, never a part of it: it starts the server's own CLI (the
``memcubed-server`` distribution) on a free port with a data dir and an admin key it generated, waits for
``/healthz``, and stops it (SIGTERM, then SIGKILL) when the run ends. Without ``MEMCUBED_DATABASE_URL`` in
the caller's environment the server starts its embedded Postgres inside the data dir.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import memcubed

START_TIMEOUT_S = 600.0  # a first start creates the Postgres cluster and loads the models
STOP_TIMEOUT_S = 60.0
LOG_NAME = "memcubed-serve.log"
LOG_TAIL_LINES = 40


class ServerCommandError(RuntimeError):
    """The server could not be found, did not start, or died while starting."""


@dataclass(frozen=True)
class Server:
    url: str
    admin_key: str
    data_dir: Path


def memcubed_command() -> list[str]:
    """The server's CLI: ``memcubed`` beside this interpreter (a venv that is not on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "memcubed"
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("memcubed")
    if found is None:
        raise ServerCommandError("the memcubed server CLI (`memcubed`) is not installed here: install "
                                 "memcubed-server (pip install -e . in the repository) or evaluate a running "
                                 "server with --url")
    return [found]


def run_memcubed(args: list[str], timeout_s: float = 3600.0) -> subprocess.CompletedProcess[str]:
    """``memcubed ARGS`` to completion; a failure raises with its output."""
    done = subprocess.run([*memcubed_command(), *args], capture_output=True, text=True, timeout=timeout_s,
                          env=os.environ | {"COLUMNS": "200"})
    if done.returncode != 0:
        raise ServerCommandError(f"`memcubed {' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Poll ``/healthz`` until it answers 200; a dead process or the deadline raises with the log's tail."""
    deadline = time.monotonic() + timeout_s
    with memcubed.Client(url, timeout=5.0, max_retries=0) as probe:
        while True:
            if proc.poll() is not None:
                raise ServerCommandError(f"memcubed serve exited with status {proc.returncode} before it answered; "
                                         f"last lines of {log}:\n{log_tail(log)}")
            try:
                probe.health()
                return
            except memcubed.MemcubedError:
                pass
            if time.monotonic() > deadline:
                raise ServerCommandError(f"memcubed serve did not answer {url}/healthz within {timeout_s:.0f} s; "
                                         f"last lines of {log}:\n{log_tail(log)}")
            time.sleep(0.25)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (the server closes its database and embedded Postgres), SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# The evaluation's own throwaway server measures retrieval, not admission control: no rate limit.
SERVER_ENV = {"MEMCUBED_RATE_LIMIT_ENABLED": "false"}


@contextmanager
def embedded(data_dir: Path | None = None, admin_key: str | None = None,
             timeout_s: float = START_TIMEOUT_S) -> Iterator[Server]:
    """``memcubed serve`` on a free port over ``data_dir`` (temporary when None) with ``admin_key``
    (generated when None), without rate limits; its output goes to ``{data_dir}/memcubed-serve.log``."""
    key = admin_key or "mck_" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="memcubed-eval-") as tmp:
        root = data_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = root / LOG_NAME
        command = [*memcubed_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(root)]
        with log.open("ab") as out:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=os.environ | SERVER_ENV | {"MEMCUBED_ADMIN_KEY": key},
                                    start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, log, timeout_s)
            yield Server(url, key, root)
        finally:
            stop(proc)
