"""An agent's identity that outlives its process, kept in a file.

Leases name the agent that holds them. With a fresh name per process, a restarted agent could
not tell its predecessor's attempts from anyone else's and they would wait out their leases; with
one shared name (``local``), several servers on one database would take each other's attempts
for their own. So each agent keeps its name in a file of its own directory (the server's local
agent: ``<data_dir>/agent-id``) and, once restarted, declares what is still leased to that name
lost at once.

That directory is one agent's alone: a second process with the same id would take the first's
running attempts for its own predecessor's, and its start-up sweep (`opsflow.agent.leftovers`)
would kill the first's jobs. So an agent holds an exclusive lock on ``<directory>/agent.lock``
(`lock_agent_dir`) for its whole life, taken before it reads its id or sweeps anything. The
kernel drops the lock when the process dies, however it dies: a restart after ``kill -9`` takes
it and cleans up after the dead one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import uuid
from pathlib import Path

from opsflow.errors import Conflict

ID_FILE = "agent-id"
LOCK_FILE = "agent.lock"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def persistent_agent_id(directory: Path, *, prefix: str = "local") -> str:
    """The id kept in ``directory/agent-id``, created (``<prefix>-<12 hex digits>``) on first use.

    Raises ``ValueError`` naming the file when it holds something that is not an agent id.
    """
    path = directory / ID_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    if text:
        if not _VALID.match(text):
            raise ValueError(
                f"{path} does not hold an agent id ({text[:40]!r}); remove it to get a new one"
            )
        return text
    directory.mkdir(parents=True, exist_ok=True)
    new = f"{prefix}-{uuid.uuid4().hex[:12]}"
    partial = directory / f".{ID_FILE}.{os.getpid()}"
    partial.write_text(new + "\n", encoding="utf-8")
    try:
        os.link(partial, path)  # first writer wins, even if two processes start at once
    except FileExistsError:
        return persistent_agent_id(directory, prefix=prefix)
    finally:
        partial.unlink(missing_ok=True)
    return new


class AgentDirInUse(Conflict):
    """The directory is in use by another agent."""

    def __init__(self, directory: Path, holder: int | None) -> None:
        self.directory = directory
        self.holder = holder  # the holding process's pid, when its lock file names it
        super().__init__(f"{directory} is in use by another agent ({self.holder_text})")

    @property
    def holder_text(self) -> str:
        """``pid 1234``, or ``pid unknown`` when the holder has not written it yet."""
        return f"pid {self.holder}" if self.holder is not None else "pid unknown"


class AgentDirLock:
    """An agent's exclusive hold on its directory, until `release` or the process's end."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another agent take the directory (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def lock_agent_dir(directory: Path) -> AgentDirLock:
    """Take ``directory`` (created if missing) for this process: an exclusive ``flock`` on
    ``directory/agent.lock``, which then holds this process's pid for whoever is refused.

    Raises `AgentDirInUse` at once, touching nothing else, when another process holds it.
    The descriptor is not inherited by job processes (``O_CLOEXEC``): a job left running
    by a killed agent must not keep its directory locked.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise AgentDirInUse(directory, _holder(path)) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return AgentDirLock(directory, fd)


def _holder(path: Path) -> int | None:
    """The pid a lock file names; None while its holder has not written it yet."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
