"""``memcubed-eval locomo --embedded``: the console script starts ``memcubed serve`` as a child process (embedded
Postgres in its data dir), evaluates through the SDK, and stops it; a server that cannot start is a clear error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.evals.tiny import write_tiny_locomo

ALL = ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2", "D2:3"]
EVAL = str(Path(sys.executable).parent / "memcubed-eval")


def run_eval(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script with no MEMCUBED_* settings of the caller (no database URL, no LLM)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMCUBED_")}
    return subprocess.run([EVAL, *args], capture_output=True, text=True, timeout=600,
                          env=clean | {"COLUMNS": "200"} | env)


def test_embedded_run_starts_evaluates_and_stops_the_server(tmp_path: Path) -> None:
    server_dir = tmp_path / "srv"
    out = tmp_path / "out"
    done = run_eval(["locomo", "--dataset", str(write_tiny_locomo(tmp_path)), "--embedded", "--data-dir",
                     str(server_dir), "--baselines", "bm25", "--top-k", "2", "--out", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads((out / "results.json").read_text())
    assert results["systems"] == ["memcubed", "bm25"]
    assert results["header"]["settings"]["service"] == "embedded (throwaway, --embedded)"
    (conv,) = results["conversations"]
    assert (conv["ingest"]["memcubed"]["memories"], conv["ingest"]["memcubed"]["batches"]) == (6, 1)
    assert len(results["questions"]) == 6
    for q in results["questions"]:
        assert sorted(q["systems"]["memcubed"]["ranked"]) == ALL  # every turn found, mapped back to its dia_id
    when = next(q for q in results["questions"] if q["question_id"] == "conv-t1/q1")
    assert when["systems"]["memcubed"]["ranks"] == {"D2:1": 1}

    log = (server_dir / "memcubed-serve.log").read_text()
    # the embedded Postgres of the data dir, not a configured one
    assert f"embedded Postgres running in {server_dir / 'pg'}" in log
    assert len(re.findall(r'"POST /v1/search HTTP/1.1" 200', log)) == 7  # one warm-up + six questions
    assert len(re.findall(r'"DELETE /v1/cubes/[0-9a-f-]+ HTTP/1.1" 204', log)) == 1  # the eval cube removed
    url = re.search(r"memcubed listening on (http://127\.0\.0\.1:\d+)", log)
    assert url is not None
    with pytest.raises(httpx.ConnectError):  # the API is gone ...
        httpx.get(f"{url.group(1)}/healthz", timeout=5)
    assert not (server_dir / "pg" / "postmaster.pid").exists()  # ... and so is its embedded Postgres


def test_a_server_that_cannot_start_is_an_error_with_its_log(tmp_path: Path) -> None:
    """The caller's MEMCUBED_DATABASE_URL reaches the server; here it points nowhere."""
    done = run_eval(["locomo", "--dataset", str(write_tiny_locomo(tmp_path)), "--embedded", "--baselines", "bm25",
                     "--out", str(tmp_path / "out")], MEMCUBED_DATABASE_URL="postgresql://nobody@127.0.0.1:1/x")
    assert done.returncode == 1
    assert "server error: memcubed serve exited with status 1 before it answered; last lines of" in done.stderr
    assert "Connection refused" in done.stderr  # the server's own words, from its log
    assert not (tmp_path / "out" / "results.json").exists()
