"""The retrieval ablation against the live server, on the tiny LoCoMo-format conversation."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import memcubed

from evals.ablation import CONFIGS, run_ablation
from evals.runner import ServiceTarget
from tests.evals.tiny import write_tiny_locomo


def test_every_configuration_runs_on_the_same_cube(live_server: Any, tmp_path: Path) -> None:
    with memcubed.Client(live_server.url, live_server.admin_key) as admin:
        key = admin.tenants.create(f"abl-{uuid.uuid4().hex[:8]}").api_key
    tallies = run_ablation(write_tiny_locomo(tmp_path), ServiceTarget(live_server.url, key), None,
                           tmp_path / "out", k=2)
    assert list(tallies) == [c.name for c in CONFIGS]
    for tally in tallies.values():
        # headline questions with resolvable evidence: q0 (cat 4), q1 (cat 2), q2 (cat 1), q4 (cat 3)
        assert sum(len(v) for v in tally.recalls.values()) == 4
        assert len(tally.latencies) == 4
    # "When did Bob start learning the violin?" → D2:1 is found by every configuration
    assert all(t.recalls[2] == [1.0] for t in tallies.values())
    saved = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert set(saved) == {c.name for c in CONFIGS}
    assert (tmp_path / "out" / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| dense (fast mode) |" in (tmp_path / "out" / "ablation.md").read_text()
