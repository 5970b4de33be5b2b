"""What a killed agent left behind: job processes still running, and their work dirs.

Job processes run in their own process groups (so a cancel can stop a whole tree), which
also means a SIGKILL of the agent does not reach them. Their attempts end as "agent lost"
(once the restarted agent says so, or the lease expires) and a retry may start, so the old
processes must not go on: when an agent starts, it kills every process that carries its work
root in its environment (each job's processes inherit ``OPSFLOW_WORK_ROOT``) and everything in
the step cgroups made for this work root (which also holds what left the session and cleared
its environment), and removes the old jobs' directories.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path

from opsflow.steps.scope import OWNER_ENV, reap_stale_cgroups
from opsflow.words import counted

log = logging.getLogger(__name__)

MARK = OWNER_ENV
KEEP = frozenset({"bundles"})


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def leftover_processes(work_root: Path) -> list[int]:
    """Pids of live processes started for jobs under ``work_root`` (not this process)."""
    wanted = f"{MARK}={work_root}".encode()
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        if wanted in _environ(int(entry.name)).split(b"\0"):
            found.append(int(entry.name))
    return found


def reap(work_root: Path) -> tuple[int, int]:
    """Kill leftover job processes and remove old job dirs; returns (processes, dirs)."""
    killed = 0
    for pid in leftover_processes(work_root):
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            continue
        except PermissionError:
            log.warning("cannot kill leftover job process %s", pid)
            continue
        killed += 1
    killed += reap_stale_cgroups(work_root)
    removed = 0
    if work_root.is_dir():
        for entry in work_root.iterdir():
            if entry.name in KEEP:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    if killed or removed:
        log.warning(
            "cleaned up after a previous agent: killed %s, removed %s",
            counted(killed, "job process", "job processes"),
            counted(removed, "work dir"),
        )
    return killed, removed
