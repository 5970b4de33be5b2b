"""Workflow directories on disk: finding the workflows a path names, and packing a bundle.

A workflow lives in a directory, its ``workflow.yaml`` beside the scripts, Terraform code and
playbooks it uses (ARCHITECTURE.md §2). ``opsflow apply`` uploads that directory as a gzipped
tarball. The tarball is byte-for-byte reproducible (sorted entries, zeroed times and owners), so
applying an unchanged directory twice sends the same bytes and the server can answer
"unchanged" instead of creating a new version.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsflow.cli.output import UsageError

if TYPE_CHECKING:
    import pathspec

WORKFLOW_FILE = "workflow.yaml"
IGNORE_FILES = (".gitignore", ".opsflowignore")
# Never part of a bundle, whatever the ignore files say: VCS metadata and bytecode caches.
ALWAYS_EXCLUDED = frozenset({".git", "__pycache__"})


@dataclass(frozen=True)
class WorkflowSource:
    """One workflow named on the command line: its YAML file and the directory shipped with it.

    ``file`` keeps the spelling the user typed, so messages point at paths they recognise.
    """

    file: Path
    directory: Path


def find_workflows(target: Path) -> list[WorkflowSource]:
    """The workflows ``target`` names: a YAML file, a workflow directory, or a directory of them.

    A YAML file's bundle is the directory that holds it. A directory with a ``workflow.yaml`` is
    one workflow; otherwise each immediate subdirectory with a ``workflow.yaml`` is one.
    """
    if target.is_file():
        return [WorkflowSource(file=target, directory=target.parent)]
    if not target.exists():
        raise UsageError(f"{target}: no such file or directory")
    if not target.is_dir():
        raise UsageError(f"{target}: not a file or directory")
    own = target / WORKFLOW_FILE
    if own.is_file():
        return [WorkflowSource(file=own, directory=target)]
    found = [
        WorkflowSource(file=child / WORKFLOW_FILE, directory=child)
        for child in sorted(target.iterdir())
        if child.is_dir() and (child / WORKFLOW_FILE).is_file()
    ]
    if not found:
        raise UsageError(
            f"{target}: no {WORKFLOW_FILE} in this directory or in its subdirectories",
            hint=f"name the YAML file itself, or put the definition in {target / WORKFLOW_FILE}",
        )
    return found


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec:
    """The patterns of the bundle's own ``.gitignore`` and ``.opsflowignore`` (gitignore rules)."""
    import pathspec  # only `apply` packs bundles; every other command starts without it

    lines: list[str] = []
    for name in IGNORE_FILES:
        path = directory / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def bundle_files(directory: Path) -> list[str]:
    """The POSIX paths, relative to ``directory`` and sorted, that a bundle of it contains."""
    spec = _ignore_spec(directory)
    chosen: list[str] = []
    for root, dirnames, filenames in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        # prune in place so os.walk never descends into excluded or ignored directories
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name not in ALWAYS_EXCLUDED
            and not spec.match_file((rel_root / name).as_posix() + "/")
        )
        for name in filenames:
            rel = (rel_root / name).as_posix()
            if spec.match_file(rel) or not (Path(root) / name).is_file():
                continue
            chosen.append(rel)
    return sorted(chosen)


def pack_bundle(directory: Path) -> bytes:
    """A reproducible ``.tar.gz`` of ``directory``: same files and contents, same bytes.

    Only regular files are stored (a symlink is stored as the file it points to), with the
    executable bit kept so scripts stay runnable and every other attribute zeroed.
    """
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in bundle_files(directory):
            path = directory / rel
            data = path.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
