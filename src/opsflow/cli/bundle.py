"""Workflow directories on disk: finding the workflows a path names, and packing a bundle.

A workflow lives in a directory, its ``workflow.yaml`` beside the scripts, Terraform code and
playbooks it uses (ARCHITECTURE.md §2). ``opsflow apply`` uploads that directory as a gzipped
tarball. A YAML file of another name is not taken to own its directory (it may sit in a home
directory or beside a database): only the files its steps name are sent with it. Either way
a bundle over ``WARN_BYTES`` is announced and one over ``LIMIT_BYTES`` refused before anything
is read or sent. The tarball is byte-for-byte reproducible (sorted entries, zeroed times and
owners), so applying an unchanged directory twice sends the same bytes and the server can
answer "unchanged" instead of creating a new version.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from opsflow.cli.output import UsageError

if TYPE_CHECKING:
    import pathspec

WORKFLOW_FILE = "workflow.yaml"
WORKFLOW_FILES = ("workflow.yaml", "workflow.yml")
WARN_BYTES = 5 * 1024 * 1024
LIMIT_BYTES = 50 * 1024 * 1024
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
    only: tuple[str, ...] | None = None
    """The paths (files or directories, relative to ``directory``) to send; None: all of it."""


def find_workflows(target: Path) -> list[WorkflowSource]:
    """The workflows ``target`` names: a YAML file, a workflow directory, or a directory of them.

    A ``workflow.yaml`` file's bundle is the directory that holds it; any other YAML file's is
    only the files its steps name. A directory with a ``workflow.yaml`` is one workflow;
    otherwise each immediate subdirectory with a ``workflow.yaml`` is one.
    """
    if target.is_file():
        if target.name in WORKFLOW_FILES:
            return [WorkflowSource(file=target, directory=target.parent)]
        return [WorkflowSource(target, target.parent, only=referenced_paths(target))]
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


def referenced_paths(file: Path) -> tuple[str, ...]:
    """The workflow files (scripts, Terraform dirs, playbooks) the definition in ``file`` names;
    none when it cannot be read (validation says why)."""
    from opsflow.spec.files import named_files
    from opsflow.spec.yaml_source import read_yaml

    try:
        data = read_yaml(file.read_text(encoding="utf-8")).data
    except (OSError, UnicodeDecodeError):
        return ()
    if not isinstance(data, dict):
        return ()
    paths = {str(PurePosixPath(name)) for _, name, _ in named_files(data)}
    return tuple(sorted(p for p in paths if not PurePosixPath(p).is_absolute()))


@dataclass(frozen=True)
class BundlePlan:
    """What a bundle will hold: its files (sorted POSIX paths) and their total size in bytes."""

    files: list[str]
    total_bytes: int


def plan_bundle(source: WorkflowSource, *, limit: int = LIMIT_BYTES) -> BundlePlan:
    """The files to send for ``source``; raises UsageError as soon as they pass ``limit``
    bytes, naming the directory and how to leave files out."""
    files = bundle_files(source.directory, source.only, limit=limit)
    total = sum((source.directory / rel).stat().st_size for rel in files)
    return BundlePlan(files, total)


def human_size(n: int) -> str:
    """``512 bytes``, ``2.1 KiB``, ``50.0 MiB``."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def _too_big(directory: Path, limit: int) -> UsageError:
    return UsageError(
        f"{directory}: the files to upload pass {human_size(limit)}",
        hint=f"leave files out with {IGNORE_FILES[1]} (gitignore rules), or apply a workflow "
        f"directory that holds only the workflow's files",
    )


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec:
    """The patterns of the bundle's own ``.gitignore`` and ``.opsflowignore`` (gitignore rules)."""
    import pathspec  # only `apply` packs bundles; every other command starts without it

    lines: list[str] = []
    for name in IGNORE_FILES:
        path = directory / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def bundle_files(
    directory: Path, only: tuple[str, ...] | None = None, *, limit: int | None = None
) -> list[str]:
    """The POSIX paths, relative to ``directory`` and sorted, that a bundle of it contains:
    every file, or those under ``only``. Raises UsageError once they pass ``limit`` bytes."""
    spec = _ignore_spec(directory)
    chosen: list[str] = []
    total = 0

    def take(rel: str, path: Path) -> None:
        nonlocal total
        if spec.match_file(rel) or not path.is_file():
            return
        chosen.append(rel)
        total += path.stat().st_size
        if limit is not None and total > limit:
            raise _too_big(directory, limit)

    tops = [directory] if only is None else [directory / rel for rel in only]
    for top in tops:
        if top.is_file():
            take(top.relative_to(directory).as_posix(), top)
            continue
        for root, dirnames, filenames in os.walk(top):
            rel_root = Path(root).relative_to(directory)
            # prune in place so os.walk never descends into excluded or ignored directories
            dirnames[:] = sorted(
                name
                for name in dirnames
                if name not in ALWAYS_EXCLUDED
                and not spec.match_file((rel_root / name).as_posix() + "/")
            )
            for name in filenames:
                take((rel_root / name).as_posix(), Path(root) / name)
    return sorted(set(chosen))


def pack_bundle(directory: Path, files: list[str] | None = None) -> bytes:
    """A reproducible ``.tar.gz`` of ``directory`` (or of ``files`` in it): same files and
    contents, same bytes.

    Only regular files are stored (a symlink is stored as the file it points to), with the
    executable bit kept so scripts stay runnable and every other attribute zeroed.
    """
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in bundle_files(directory) if files is None else files:
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
