"""Where a terraform step's code is: a directory of the workflow, or a git repository.

A ``{dir}`` source is a directory inside the job's copy of the workflow files; absolute paths
and ``../`` escapes are refused. A ``{git, ref, path}`` source is fetched with real ``git``
into a bare mirror kept per agent (so the second job on an agent only fetches what changed),
then the wanted commit is exported with ``git archive`` into the job's own directory: the job
never shares a working tree with another job, and the mirror is only touched under a lock.

Also here: whether the code declares its own state backend (then opsflow's is not used).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import StepConfigError

# Runs a program for the job (output streams into the job's log, cancel is honoured) and
# returns its exit code and stdout lines; raises only when the job is stopped.
Runner = Callable[[list[str], str], Awaitable[tuple[int, list[str]]]]

OVERRIDE_FILE = "_opsflow_backend_override.tf"
_LOCK_POLL = 0.2
_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")
_BACKEND_BLOCK = re.compile(r'^\s*(backend\s+"[^"]*"|cloud)\s*\{', re.MULTILINE)
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_LINE_COMMENT = re.compile(r"(#|//).*$", re.MULTILINE)


class SourceUnavailable(Exception):
    """git could not fetch the repository or export the commit (may be temporary: retryable)."""


@dataclass(frozen=True)
class GitSource:
    """A repository, the branch/tag/commit to use (None: the remote's HEAD), a subdirectory."""

    url: str
    ref: str | None
    path: str | None

    @property
    def shown_url(self) -> str:
        """The URL without any user:password part, for the log."""
        return _CREDENTIALS_IN_URL.sub("***@", self.url)


def parse_source(value: Any) -> tuple[str | None, GitSource | None]:
    """Read the ``source`` field: ``(dir, None)``, ``(None, git)`` or ``(None, None)`` if absent."""
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise StepConfigError("source", "must be {dir: PATH} or {git: URL, ref: REF, path: PATH}")
    fields: dict[str, str] = {}
    for key in ("dir", "git", "ref", "path"):
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, str) or not item.strip():
            raise StepConfigError(f"source.{key}", "must be a non-empty string")
        fields[key] = item.strip()
    unknown = sorted(set(value) - {"dir", "git", "ref", "path"})
    if unknown:
        raise StepConfigError(f"source.{unknown[0]}", "is not a source field (dir, git, ref, path)")
    if ("dir" in fields) == ("git" in fields):
        raise StepConfigError(
            "source", "give either {dir: PATH} or {git: URL, ref: REF, path: PATH}"
        )
    if "dir" in fields:
        return fields["dir"], None
    return None, GitSource(fields["git"], fields.get("ref"), fields.get("path"))


def inside(root: Path, relative: str, field: str, what: str = "the workflow's files") -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and escapes like ``../``."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise StepConfigError(field, f"{relative!r} must be a path relative to {what}")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise StepConfigError(field, f"{relative!r} points outside {what}")
    return resolved


def source_directory(workdir: Path, relative: str | None) -> Path:
    """The Terraform root module of a ``{dir}`` source (the workflow directory by default)."""
    root = workdir.resolve()
    if relative is None:
        return root
    directory = inside(root, relative, "source.dir")
    if not directory.is_dir():
        raise StepConfigError(
            "source.dir", f"{relative!r} is not a directory in the workflow's files"
        )
    return directory


def declares_backend(directory: Path) -> bool:
    """Whether the root module's own ``*.tf``/``*.tf.json`` files declare a backend or cloud
    block (comments ignored); our generated override file does not count."""
    for path in sorted(directory.iterdir()):
        if path.name == OVERRIDE_FILE or not path.is_file():
            continue
        if path.name.endswith(".tf"):
            text = path.read_text(encoding="utf-8", errors="replace")
            text = _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub("", text))
            if _BACKEND_BLOCK.search(text):
                return True
        elif path.name.endswith(".tf.json"):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue  # Terraform itself reports a broken file, with its location
            if _json_declares_backend(document):
                return True
    return False


def _json_declares_backend(document: Any) -> bool:
    blocks = document.get("terraform") if isinstance(document, dict) else None
    for block in blocks if isinstance(blocks, list) else [blocks]:
        if isinstance(block, dict) and ("backend" in block or "cloud" in block):
            return True
    return False


def write_backend_override(directory: Path) -> Path:
    """Point the root module at an HTTP backend; every setting comes from ``TF_HTTP_*``.

    Nothing but the backend type is written (no URL, no credentials): Terraform copies
    ``-backend-config`` values into ``.terraform`` and into saved plans, and a plan applied by a
    later job must use that job's credentials, not the expired ones of the job that planned.
    """
    override = directory / OVERRIDE_FILE
    override.write_text(
        "# Written by opsflow: state is kept by the opsflow server (TF_HTTP_* settings).\n"
        'terraform {\n  backend "http" {}\n}\n',
        encoding="utf-8",
    )
    return override


def default_git_cache() -> Path:
    """``$XDG_CACHE_HOME/opsflow/git`` (or ``~/.cache/opsflow/git``): one mirror per URL."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opsflow" / "git"


class GitCache:
    """Bare mirrors of repositories, one per URL, shared by the jobs of one agent machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[Path, asyncio.Lock] = {}

    def mirror_of(self, url: str) -> Path:
        """The mirror's directory: named by a hash, so any URL makes a safe file name."""
        return self.root / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")

    async def export(self, source: GitSource, dest: Path, run: Runner) -> tuple[Path, str]:
        """Fetch ``source`` and write its files at ``ref`` into ``dest``.

        Returns the Terraform root directory inside ``dest`` and the commit id used.
        """
        mirror = self.mirror_of(source.url)
        ref = source.ref or "HEAD"
        async with self._locked(mirror):
            if (mirror / "HEAD").exists():
                code, _ = await run(["git", "-C", str(mirror), "fetch", "--prune"], "git fetch")
                if code != 0:
                    raise SourceUnavailable(f"git fetch of {source.shown_url} failed (exit {code})")
            else:
                partial = mirror.with_suffix(".partial")
                shutil.rmtree(partial, ignore_errors=True)  # left by a clone that was stopped
                code, _ = await run(
                    ["git", "clone", "--mirror", "--", source.url, str(partial)], "git clone"
                )
                if code != 0:
                    raise SourceUnavailable(f"git clone of {source.shown_url} failed (exit {code})")
                partial.rename(mirror)
            code, lines = await run(
                ["git", "-C", str(mirror), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                "git rev-parse",
            )
            if code != 0 or not lines:
                raise StepConfigError(
                    "source.ref", f"{ref!r} is not a branch, tag or commit of {source.shown_url}"
                )
            commit = lines[0].strip()
            archive = dest.with_suffix(".tar")
            code, _ = await run(
                ["git", "-C", str(mirror), "archive", "--format=tar", "-o", str(archive), commit],
                "git archive",
            )
            if code != 0:
                raise SourceUnavailable(f"git archive of {commit} failed (exit {code})")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
        archive.unlink()
        root = dest.resolve()
        if source.path is None:
            return root, commit
        directory = inside(root, source.path, "source.path", "the repository")
        if not directory.is_dir():
            raise StepConfigError(
                "source.path", f"{source.path!r} is not a directory of the repository at {ref}"
            )
        return directory, commit

    @contextlib.asynccontextmanager
    async def _locked(self, mirror: Path) -> AsyncIterator[None]:
        """One job at a time per mirror: an asyncio lock inside this process, a file lock
        between processes (a local and a remote agent may share a machine)."""
        lock = self._locks.setdefault(mirror, asyncio.Lock())
        async with lock:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(mirror.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(_LOCK_POLL)  # another process fetches this mirror
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock
