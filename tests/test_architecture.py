"""The floor plan of docs/architecture.md, enforced: import-linter's contracts (layers, independent subsystems,
clients that never import the server, no cycles), no lazy import standing in for a module-level one, and use-case
modules small enough to read."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE_LINES = 500
# Imported inside a function for a reason other than a cycle: heavy or optional at start-up.
DEFERRED_FOR_START_UP = {
    "app.cli": {"app.container", "app.main", "app.observability", "app.workers.worker"},
    "app.budget.cli": {"app.budget.train", "app.budget.policy"},
    "app.workers.worker": {"app.workers.runtime"},
}


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is a test dependency"
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 5 kept, 0 broken." in done.stdout, done.stdout


def test_no_lazy_import_of_our_own_modules_beyond_the_documented_ones() -> None:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "app").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.col_offset > 0 and (node.module or "").startswith("app"):
                found.setdefault(module, set()).add(str(node.module))
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                found.setdefault(module, set()).add("TYPE_CHECKING block")
    assert found == DEFERRED_FOR_START_UP


def test_no_use_case_module_over_the_limit() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for p in (ROOT / "app" / "services").rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > SERVICE_LINES} == {}
    assert len(sizes) >= 20  # the walk found the services
