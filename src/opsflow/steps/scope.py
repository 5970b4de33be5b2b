"""Every process a step started, tracked by a means the processes cannot leave.

A process group is not enough: ``setsid sleep 300 &`` or a daemon that forks twice leaves the
step's group and session, and would outlive the step. Two means hold on:

* **cgroup v2** (where the unified hierarchy is mounted and this process may create cgroups
  under its own): the step's program enters a fresh cgroup before it runs, and every process it
  starts is born there; no process can move itself out without rights over other cgroups. The
  end of the step kills the cgroup (``cgroup.kill``) and removes it.
* **child subreaper** (``prctl(PR_SET_CHILD_SUBREAPER)``) elsewhere: orphans of the step are
  re-parented to this process instead of init, so they stay its descendants; each step's
  processes carry a marker in their environment, and the end of the step kills every
  descendant with the marker (and reaps those re-parented here). A process that both leaves
  the session and clears its environment escapes this fallback; the cgroup does not let it.

Both run their blocking work in worker threads, never on the event loop. ``Tracking.AUTO``
picks the cgroup when this machine allows it, else the subreaper, else the process group only.
While a step's cgroup is open, `migration_warmer.MigrationWarmer` keeps the kernel's cgroup
migrations warm, so entering the cgroup does not wait for an RCU grace period.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path

from .migration_warmer import MigrationWarmer

log = logging.getLogger(__name__)

SCOPE_MARK = "OPSFLOW_PROCESS_SCOPE"
# Every job's environment carries its agent's work root; it names whose a step cgroup is, so an
# agent restarted on the same data dir finds its predecessor's cgroups, and only those.
OWNER_ENV = "OPSFLOW_WORK_ROOT"
CGROUP_PREFIX = "opsflow-"
_PR_SET_CHILD_SUBREAPER = 36
_EMPTY_WITHIN = 5.0  # how long a killed scope may take to be empty


class Tracking(Enum):
    """How a step's processes are tracked (see the module docstring)."""

    AUTO = "auto"
    CGROUP = "cgroup"
    SUBREAPER = "subreaper"
    GROUP = "group"  # the process group only: what a machine without either offers


class ScopeUnavailable(RuntimeError):
    """The tracking asked for is not available on this machine (says why)."""


class Scope:
    """The processes of one program run; ``command`` / ``environment`` start it inside."""

    kind = Tracking.GROUP

    def command(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        return list(argv)

    def started(self, pid: int) -> None:
        """The program runs as ``pid``; its exit is collected by whoever started it."""

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        return dict(env)

    def signal_all(self, sig: signal.Signals) -> int:
        """Send ``sig`` to every process of the scope (blocking); returns how many."""
        return 0

    def kill_all(self) -> int:
        """SIGKILL every process of the scope and wait until none is left (blocking);
        returns how many were killed."""
        return 0

    def close(self) -> None:
        """Release what the scope holds (blocking)."""


# -- cgroup v2 -----------------------------------------------------------------------------


def own_cgroup_dir() -> Path | None:
    """This process's own cgroup directory in the unified (v2) hierarchy, if mounted."""
    try:
        own = next(
            line[3:].strip()
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except (OSError, StopIteration):
        return None
    for line in mounts:
        fields = line.split()
        if " - cgroup2 " in line and len(fields) > 4:
            root, mount = fields[3], fields[4]
            if own.startswith(root):
                return Path(mount) / own[len(root) :].lstrip("/")
    return None


class CgroupScope(Scope):
    """A fresh cgroup under this process's own one; the program enters it before it runs.

    A scope opened by `open_scope` holds the process's `MigrationWarmer` until it is closed,
    so the program's move into the cgroup does not wait for an RCU grace period."""

    kind = Tracking.CGROUP

    def __init__(self, path: Path, warmer: MigrationWarmer | None = None) -> None:
        self.path = path
        # Released by `close`, or when the scope is dropped unclosed (its cgroup is then left
        # to the next agent start's reaping, but the warmer must not write on for it).
        self._release = weakref.finalize(self, warmer.release) if warmer is not None else None

    @classmethod
    def create(cls, parent: Path, owner: str, warmer: MigrationWarmer | None = None) -> CgroupScope:
        """A new, empty cgroup under ``parent``, named after its ``owner`` (the agent's work
        root), holding ``warmer`` (if any) until closed; ``OSError`` if the kernel refuses."""
        path = parent / f"{_owner_prefix(owner)}{uuid.uuid4().hex[:12]}"
        if warmer is not None:
            warmer.hold()  # first: its first write (a grace period) overlaps the rest
        try:
            path.mkdir()
        except BaseException:
            if warmer is not None:
                warmer.release()
            raise
        return cls(path, warmer)

    def command(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        program = argv[0]
        if os.sep not in program:
            found = shutil.which(program, path=env.get("PATH", os.defpath))
            if found is None:  # the same error as starting it directly would give
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
            program = found
        elif not os.path.isfile(program):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        elif not os.access(program, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        # The shell moves itself into the cgroup, then becomes the program (same pid), so
        # every process the program starts is born inside.
        enter = 'echo $$ > "$1" || exit 125; shift; exec "$@"'
        return [_sh(), "-c", enter, "sh", str(self.path / "cgroup.procs"), program, *argv[1:]]

    def _pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(p) for p in text.split()]

    def signal_all(self, sig: signal.Signals) -> int:
        sent = 0
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                sent += 1
        return sent

    def kill_all(self) -> int:
        killed = len(self._pids())
        if not killed:
            return 0
        kill_file = self.path / "cgroup.kill"
        deadline = time.monotonic() + _EMPTY_WITHIN
        while self._populated():
            if kill_file.exists():
                kill_file.write_text("1")  # kills every process, also those forking right now
            else:  # kernels before 5.14: kill what is there until nothing is left
                self.signal_all(signal.SIGKILL)
            if time.monotonic() > deadline:
                log.warning("processes of cgroup %s did not end after SIGKILL", self.path)
                break
            time.sleep(0.005)
        return killed

    def _populated(self) -> bool:
        try:
            events = (self.path / "cgroup.events").read_text()
        except FileNotFoundError:
            return False
        return "populated 1" in events

    def close(self) -> None:
        try:
            if self._populated():
                self.kill_all()
            try:
                self.path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:  # still busy: the next start of an agent removes it
                log.warning("could not remove cgroup %s: %s", self.path, exc.strerror or exc)
        finally:
            if self._release is not None:
                self._release()  # once: a second close releases nothing


_wrapper_sh: str | None = None


def _sh() -> str:
    """The ``sh`` that enters a step's cgroup: this process's own PATH's, found once (a
    search per step cost a stat per PATH entry)."""
    global _wrapper_sh
    if _wrapper_sh is None or not os.access(_wrapper_sh, os.X_OK):
        _wrapper_sh = shutil.which("sh") or "/bin/sh"
    return _wrapper_sh


def _owner_prefix(owner: str) -> str:
    return f"{CGROUP_PREFIX}{hashlib.sha256(owner.encode()).hexdigest()[:12]}-"


def reap_stale_cgroups(work_root: Path) -> int:
    """Kill and remove the step cgroups a previous agent on ``work_root`` left (a ``kill -9``):
    what is left in them would otherwise run on, even a process that cleared its environment.
    Only that agent's: another server's jobs on this machine are not touched. Call it before
    this agent starts any job. Returns how many processes were killed (blocking)."""
    parent = own_cgroup_dir()
    if parent is None or not parent.is_dir():
        return 0
    prefix = _owner_prefix(str(work_root))
    killed = 0
    for entry in parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        stale = CgroupScope(entry)
        killed += stale.kill_all()
        stale.close()
    return killed


# -- child subreaper -----------------------------------------------------------------------


def _set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _marked(mark: bytes) -> list[int]:
    """Live processes (not zombies) whose environment carries ``mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class SubreaperScope(Scope):
    """Processes marked in their environment; orphans come back to this (subreaper) process."""

    kind = Tracking.SUBREAPER

    def __init__(self) -> None:
        self.mark = f"{SCOPE_MARK}={uuid.uuid4().hex}"
        self._seen: set[int] = set()
        self._leader: int | None = None

    def started(self, pid: int) -> None:
        self._leader = pid  # asyncio reaps it; we must not take its exit status

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        name, value = self.mark.split("=", 1)
        return {**env, name: value}

    def signal_all(self, sig: signal.Signals) -> int:
        sent = 0
        for pid in _marked(self.mark.encode()):
            self._seen.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                sent += 1
        return sent

    def kill_all(self) -> int:
        killed: set[int] = set()
        deadline = time.monotonic() + _EMPTY_WITHIN
        while True:  # a process may fork while we kill: repeat until a scan finds nobody
            found = _marked(self.mark.encode())
            if not found or time.monotonic() > deadline:
                break
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(found)
            self._seen.update(found)
            time.sleep(0.005)
        self._reap()
        return len(killed)

    def _reap(self) -> None:
        """Collect the exit of marked processes that were re-parented to us (orphans)."""
        me = os.getpid()
        deadline = time.monotonic() + _EMPTY_WITHIN
        waiting = {pid for pid in self._seen - {self._leader} if _parent(pid) == me}
        while waiting and time.monotonic() < deadline:
            for pid in list(waiting):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not (or no longer) ours to reap
                    waiting.discard(pid)
                    continue
                if done:
                    waiting.discard(pid)
            if waiting:
                time.sleep(0.005)


# -- choosing ------------------------------------------------------------------------------

_lock = threading.Lock()
_cgroup_parent: Path | bool | None = False  # False: not probed yet
_subreaper: bool | None = None
_warned = False
_warmer: MigrationWarmer | None = None


def _probe_cgroup() -> Path | None:
    """This process's cgroup, if a child cgroup can be made there and a process moved in."""
    base = own_cgroup_dir()
    if base is None:
        return None
    probe = base / f"{CGROUP_PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return None
    try:
        done = subprocess.run(
            ["sh", "-c", 'echo $$ > "$1"', "sh", str(probe / "cgroup.procs")],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return base if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def available(kind: Tracking) -> bool:
    """Whether ``kind`` works on this machine, for this process (probed once; blocking)."""
    global _cgroup_parent, _subreaper
    with _lock:
        if kind is Tracking.CGROUP:
            if _cgroup_parent is False:
                _cgroup_parent = _probe_cgroup()
            return isinstance(_cgroup_parent, Path)
        if kind is Tracking.SUBREAPER:
            if _subreaper is None:
                _subreaper = _set_subreaper()
            return _subreaper
    return kind is Tracking.GROUP


def open_scope(kind: Tracking = Tracking.AUTO, owner: str = "") -> Scope:
    """A new scope of ``kind`` for a job of the agent whose work root is ``owner`` (blocking:
    call it from a worker thread).

    Raises ``ScopeUnavailable`` when a kind other than AUTO is asked for and not available.
    """
    if kind is Tracking.AUTO:
        for choice in (Tracking.CGROUP, Tracking.SUBREAPER):
            if available(choice):
                return open_scope(choice, owner)
        global _warned
        if not _warned:
            _warned = True
            log.warning(
                "neither a cgroup nor a child subreaper is available: a step's processes "
                "that leave its process group may outlive it"
            )
        return Scope()
    if not available(kind):
        raise ScopeUnavailable(f"process tracking by {kind.value} is not available here")
    if kind is Tracking.CGROUP:
        assert isinstance(_cgroup_parent, Path)
        try:
            return CgroupScope.create(_cgroup_parent, owner, migration_warmer())
        except OSError as exc:
            raise ScopeUnavailable(f"cannot create a cgroup: {exc.strerror or exc}") from exc
    if kind is Tracking.SUBREAPER:
        return SubreaperScope()
    return Scope()


# -- the migration warmer ------------------------------------------------------------------


def migration_warmer() -> MigrationWarmer | None:
    """This process's `MigrationWarmer` for its own cgroup (made on first use), or None where
    cgroup tracking is not available (blocking: probes like `available`)."""
    global _warmer
    if not available(Tracking.CGROUP):
        return None
    with _lock:
        if _warmer is None:
            assert isinstance(_cgroup_parent, Path)
            _warmer = MigrationWarmer(_cgroup_parent / "cgroup.procs")
        return _warmer


def rest_migration_warmer() -> None:
    """The agent stopped: end the warmer's linger, so it writes no more once no scope is open
    (blocking, at most one write's time). Does nothing if no warmer was made."""
    with _lock:
        warmer = _warmer
    if warmer is not None:
        warmer.rest()


def _stop_migration_warmer() -> None:
    with _lock:
        warmer = _warmer
    if warmer is not None:
        warmer.stop()


def _forget_migration_warmer() -> None:
    """In a forked child: the warmer's thread did not come along; a scope opened there makes
    the child its own."""
    global _warmer
    _warmer = None


atexit.register(_stop_migration_warmer)  # before daemon threads are frozen: no write at exit
os.register_at_fork(after_in_child=_forget_migration_warmer)
