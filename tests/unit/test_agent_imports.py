"""``agent/`` is the job loop of the local agent and of ``opsflow agent`` alike: it speaks the
protocol only, and never reaches the server's database or runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import opsflow.agent

AGENT_DIR = Path(opsflow.agent.__file__).parent
FORBIDDEN = ("opsflow.store", "opsflow.runtime", "opsflow.api", "sqlalchemy")


def test_no_agent_module_imports_the_store_the_runtime_or_sqlalchemy() -> None:
    found: list[str] = []
    for path in sorted(AGENT_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert found == []


def test_loading_the_agent_loads_neither_the_store_nor_the_runtime() -> None:
    """Nor anything they import on the way: checked in a fresh interpreter."""
    code = (
        "import sys, opsflow.agent.loop, opsflow.agent.http_client, opsflow.agent.identity\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
