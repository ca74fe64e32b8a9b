"""Every figure block in README.md and docs/*.md is exactly what ``python benchmarks/render.py`` makes of the
results files under ``benchmarks/results/``, and every results file a block reads says how it was made. So a
number in a table cannot drift from the file the command wrote, and no table lacks its command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.render import BLOCK, REQUIRED, RESULTS, docs, load, render_block, render_text, table_markdown, used

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", docs(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_doc_equals_its_render(path: Path) -> None:
    text = path.read_text()
    assert render_text(text) == text, f"{path.relative_to(ROOT)} differs: run python benchmarks/render.py"


def test_every_results_file_a_doc_reads_says_how_it_was_made() -> None:
    names = {name for path in docs(ROOT) for name in used(path.read_text())}
    assert {"locomo-fine", "budgets", "hygiene", "mcp_bench"} <= names  # the blocks are really there
    for name in sorted(names):
        data = load(name)
        for field in REQUIRED:
            assert data[field] not in (None, "", []), f"{name}.json: {field}"
        raw = json.loads((RESULTS / f"{name}.json").read_text())
        assert "command" in raw and "commit" in raw and "date" in raw and ("load" in raw or "loadavg" in raw)


def test_every_table_of_the_benchmarks_page_is_rendered() -> None:
    """A table pasted by hand into docs/benchmarks.md would be a figure no results file backs."""
    outside = BLOCK.sub("", (ROOT / "docs" / "benchmarks.md").read_text())
    pasted = [line for line in outside.splitlines() if line.startswith("|")]
    assert pasted == [], "tables outside render blocks (make them results files): " + "; ".join(pasted[:3])


def test_the_readme_says_the_render_command() -> None:
    assert "python benchmarks/render.py" in (ROOT / "README.md").read_text()


def test_a_block_is_replaced_and_the_prose_around_it_kept(tmp_path: Path) -> None:
    (tmp_path / "demo.json").write_text(json.dumps({
        "command": "python benchmarks/demo.py", "commit": "a" * 40 + "-dirty", "date": "2026-12-02 19:00 UTC",
        "load": [1.5, 2.0, 2.25], "tables": {"t": {"columns": ["what", "ms", "n"], "formats": [None, "{:.1f}", "{:,}"],
                                                    "rows": [["x", 1.25, 1234], ["", None, "-"]]}}}))
    doc = "Prose 1.\n<!-- render:demo -->\nstale 9.9\n<!-- /render -->\nProse 2.\n"
    assert render_text(doc, tmp_path) == (
        "Prose 1.\n<!-- render:demo -->\n"
        "*`python benchmarks/demo.py` · commit `aaaaaaaaaa-dirty` · 2026-12-02 19:00 UTC · load average 1.50 / 2.00 / "
        "2.25 (1 / 5 / 15 min) · `benchmarks/results/demo.json`*\n\n"
        "| what | ms | n |\n|---|---|---|\n| x | 1.2 | 1,234 |\n| | - | - |\n<!-- /render -->\nProse 2.\n")
    assert render_text(render_text(doc, tmp_path), tmp_path) == render_text(doc, tmp_path)
    assert BLOCK.search(doc) is not None


def test_a_results_file_without_its_provenance_or_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bare.json").write_text(json.dumps({"command": "x", "commit": "", "date": "d", "load": 1,
                                                    "tables": {}}))
    with pytest.raises(ValueError, match="missing commit"):
        render_block("bare", None, tmp_path)
    (tmp_path / "ok.json").write_text(json.dumps({"command": "x", "commit": "c", "date": "d", "load": 1,
                                                  "tables": {"t": {"columns": ["a"], "rows": [[1]]}}}))
    with pytest.raises(ValueError, match="tables are t"):
        render_block("ok", "nope", tmp_path)
    with pytest.raises(ValueError, match="no results file"):
        render_block("absent", None, tmp_path)
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        table_markdown({"columns": ["a"], "rows": [[1, 2]]})
