"""Check that the files a workflow names exist in its directory.

Only possible when the definition is read from a directory (``opsflow validate``, ``opsflow
apply -f DIR``, an uploaded bundle); a definition sent alone is checked when its files arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from opsflow.spec.findings import Finding, Loc
from opsflow.status import StepType


def named_files(data: dict[str, Any]) -> Iterator[tuple[Loc, str, bool]]:
    """(loc, relative path, is a directory) for every workflow file the steps name."""
    steps = data.get("steps")
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict):
            continue
        loc: Loc = ("steps", i)
        kind = step.get("type")
        if kind == StepType.SCRIPT and isinstance(step.get("file"), str):
            yield (*loc, "file"), step["file"], False
        if kind == StepType.TERRAFORM:
            source = step.get("source")
            if isinstance(source, dict) and isinstance(source.get("dir"), str):
                yield (*loc, "source", "dir"), source["dir"], True
            files = step.get("var_files")
            for k, name in enumerate(files if isinstance(files, list) else []):
                if isinstance(name, str):
                    yield (*loc, "var_files", k), name, False
        if kind == StepType.SSH:
            if isinstance(step.get("script"), str):
                yield (*loc, "script"), step["script"], False
            hosts = step.get("hosts")
            if isinstance(hosts, dict):
                for key in ("file", "script"):
                    if isinstance(hosts.get(key), str) and "{{" not in hosts[key]:
                        yield (*loc, "hosts", key), hosts[key], False
        if kind == StepType.ANSIBLE:
            if isinstance(step.get("playbook"), str):
                yield (*loc, "playbook"), step["playbook"], False
            inventory = step.get("inventory")
            if isinstance(inventory, str):
                yield (*loc, "inventory"), inventory, False
            elif isinstance(inventory, dict):
                for key in ("file", "script"):
                    if isinstance(inventory.get(key), str):
                        yield (*loc, "inventory", key), inventory[key], False


def check_files(data: Any, base_dir: Path) -> list[Finding]:
    """Findings for named files missing from ``base_dir`` (absolute paths are the agent's)."""
    if not isinstance(data, dict):
        return []
    out: list[Finding] = []
    for loc, name, is_dir in named_files(data):
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not name.strip():
            continue  # refused by the models, or a path on the agent
        target = base_dir / name
        ok = target.is_dir() if is_dir else target.is_file()
        if not ok:
            what = "directory" if is_dir else "file"
            out.append(Finding(loc, f"there is no {what} '{name}' in the workflow directory"))
    return out
