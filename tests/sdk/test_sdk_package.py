"""The SDK ships alone: its own pyproject, only httpx and pydantic as dependencies, typed."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import memcubed

PACKAGE = Path(memcubed.__file__).resolve().parent
PYPROJECT = Path(__file__).resolve().parents[2] / "clients" / "python" / "pyproject.toml"


def test_pyproject_declares_the_sdk_alone() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["name"] == "memcubed"
    assert project["requires-python"] == ">=3.11"
    assert project["dependencies"] == ["httpx>=0.27", "pydantic>=2.7"]


# Modules of the optional extras, and the top-level packages each may import besides the core's.
EXTRAS = {"mcp.py": {"mcp", "mcp_types"}, "langgraph.py": {"langgraph"}, "langchain.py": {"langchain_core"},
          "openai_agents.py": {"agents"}}


def imports_of(source: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    return imported


def test_the_package_imports_only_the_stdlib_httpx_and_pydantic() -> None:
    """The core imports nothing else; each extra's module only adds its own extra's packages."""
    allowed = set(sys.stdlib_module_names) | {"httpx", "pydantic", "memcubed"}
    core = set().union(*(imports_of(source) for source in PACKAGE.glob("*.py") if source.name not in EXTRAS))
    assert sorted(core - allowed) == []
    assert {"httpx", "pydantic"} <= core
    for name, own in EXTRAS.items():
        assert sorted(imports_of(PACKAGE / name) - allowed - own) == [], name


def test_extras_are_declared() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert sorted(extras) == ["langchain", "langgraph", "mcp", "openai-agents"]


def test_typed_and_exports_resolve() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert PYPROJECT.parent / "memcubed" == PACKAGE
    missing = [name for name in memcubed.__all__ if not hasattr(memcubed, name)]
    assert missing == []
