"""The cgroup migration warmer against the real kernel: it writes this process's pid to its own
cgroup's ``cgroup.procs`` while a step's cgroup is open and for its linger after, then waits
without CPU; a write the kernel refuses turns it off without failing anything; it never keeps
the process alive nor writes once the agent stopped.

How much faster a step's move into its cgroup gets is a figure, not a test (the kernel's
rcu_sync state is shared by every process on the machine, so another one migrating makes the
"cold" case warm): see benchmarks/README.md, "What bounds a step now"."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsflow.steps.migration_warmer import MigrationWarmer
from opsflow.steps.scope import (
    CgroupScope,
    Tracking,
    available,
    migration_warmer,
    open_scope,
    own_cgroup_dir,
)

pytestmark = pytest.mark.skipif(
    not available(Tracking.CGROUP), reason="cgroup v2 tracking is not available here"
)

WAIT = 10.0  # seconds anything below may take on a loaded machine


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Poll ``check`` until true; returns the monotonic time it was first seen true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.002)
    return time.monotonic()


def thread_cpu_ticks(thread: threading.Thread) -> tuple[str, int]:
    """The thread's state letter and utime + stime (clock ticks), from /proc."""
    stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


@pytest.fixture
def own_procs() -> Path:
    parent = own_cgroup_dir()
    assert parent is not None
    return parent / "cgroup.procs"


@pytest.fixture
def warmer(own_procs: Path) -> Iterator[MigrationWarmer]:
    made = MigrationWarmer(own_procs, period=0.005, linger=0.4)
    try:
        yield made
    finally:
        made.stop()


def test_it_writes_while_a_scope_is_held_then_idles_without_cpu_after_the_linger(
    warmer: MigrationWarmer,
) -> None:
    assert warmer.thread is None, "no thread before the first scope"
    warmer.hold()
    thread = warmer.thread
    assert thread is not None and thread.daemon
    eventually(lambda: warmer.writes >= 5, "writing while held")
    assert not warmer.idle
    released = time.monotonic()
    at_release = warmer.writes
    warmer.release()
    went_idle = eventually(lambda: warmer.idle, "idle after the linger")
    assert went_idle - released >= warmer.linger, "it stopped before the linger ended"
    assert warmer.writes > at_release, "it wrote during the linger"
    assert not warmer.disabled

    writes = warmer.writes
    before = thread_cpu_ticks(thread)
    time.sleep(0.3)
    after = thread_cpu_ticks(thread)
    assert warmer.writes == writes, "it wrote while idle"
    assert after == before and after[0] == "S", "the idle thread used CPU"
    assert thread.is_alive()

    warmer.hold()  # the next step: the same thread writes again
    eventually(lambda: warmer.writes > writes, "writing again")
    assert warmer.thread is thread
    warmer.release()


def test_it_keeps_writing_while_any_scope_is_held(warmer: MigrationWarmer) -> None:
    warmer.hold()
    warmer.hold()
    warmer.release()
    warmer.rest()  # ends only the linger: one scope is still open
    writes = warmer.writes
    eventually(lambda: warmer.writes >= writes + 5, "writing for the scope still held")
    warmer.release()


def test_rest_stops_the_writes_at_once(warmer: MigrationWarmer) -> None:
    warmer.linger = 60.0
    warmer.hold()
    eventually(lambda: warmer.writes >= 3, "writing while held")
    warmer.release()
    warmer.rest()
    writes = warmer.writes
    assert warmer.idle or eventually(lambda: warmer.idle, "idle after rest")
    time.sleep(0.2)
    assert warmer.writes == writes, "a write started after rest returned"


def test_stop_ends_the_thread_and_later_holds_start_nothing(warmer: MigrationWarmer) -> None:
    warmer.hold()
    eventually(lambda: warmer.writes >= 1, "writing while held")
    thread = warmer.thread
    assert thread is not None
    warmer.stop()
    writes = warmer.writes
    thread.join(WAIT)
    assert not thread.is_alive()
    warmer.hold()
    time.sleep(0.1)
    assert warmer.writes == writes and warmer.thread is thread


@pytest.mark.parametrize("target", ["cgroup.events", "missing/cgroup.procs"])
def test_a_refused_write_turns_it_off_and_the_step_still_runs(
    own_procs: Path, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``cgroup.events`` is read-only in the kernel (refused even to root); a missing file is
    what a cgroup removed under us looks like."""
    refused = MigrationWarmer(own_procs.parent / target, period=0.005)
    caplog.set_level(logging.WARNING, logger="opsflow.steps.migration_warmer")
    parent = own_procs.parent
    scope = CgroupScope.create(parent, "warmer-test", refused)
    try:
        thread = refused.thread
        assert thread is not None
        thread.join(WAIT)
        assert not thread.is_alive() and refused.disabled and refused.idle
        assert refused.writes == 0
        refused.hold()  # a later scope does not start it again
        refused.release()
        assert refused.thread is thread
        done = subprocess.run(
            scope.command(["sh", "-c", "grep ^0:: /proc/self/cgroup"], {"PATH": "/usr/bin:/bin"}),
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(scope.path.name), "the program left its cgroup"
    finally:
        scope.close()
    warnings = [r for r in caplog.records if "cannot keep cgroup migrations fast" in r.message]
    assert len(warnings) == 1, caplog.records


def test_a_cgroup_scope_holds_the_process_warmer_until_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = migration_warmer()
    assert shared is not None
    monkeypatch.setattr(shared, "linger", 0.2)
    scope = open_scope(Tracking.CGROUP, "warmer-test")
    try:
        writes = shared.writes
        eventually(lambda: shared.writes >= writes + 2, "the process warmer writing")
    finally:
        scope.close()
        scope.close()  # a second close releases nothing twice
    eventually(lambda: shared.idle, "idle after its linger")


def test_a_process_exits_at_once_with_the_warmer_writing(tmp_path: Path) -> None:
    """The thread is a daemon and the interpreter stops it at exit: a process whose scope is
    still open (a crash path) exits on its own."""
    program = textwrap.dedent(
        """
        import sys, time
        from opsflow.steps.scope import Tracking, migration_warmer, open_scope
        scope = open_scope(Tracking.CGROUP, sys.argv[1])
        warmer = migration_warmer()
        while warmer.writes < 3:
            time.sleep(0.005)
        print(scope.path, flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", program, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        path = Path(child.stdout.readline().strip())
        assert path.name, "the child never printed its scope"
        assert child.wait(timeout=WAIT) == 0
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    path.rmdir()  # the child did not close its scope: the empty cgroup is ours to remove


def test_a_scope_dropped_unclosed_releases_its_hold(warmer: MigrationWarmer) -> None:
    """A scope lost on some error path (its cgroup left to the next start's reaping) must not
    keep the warmer writing for the rest of the process's life."""
    parent = own_cgroup_dir()
    assert parent is not None
    scope = CgroupScope.create(parent, "warmer-test", warmer)
    path = scope.path
    eventually(lambda: warmer.writes >= 1, "writing while held")
    del scope
    try:
        eventually(lambda: warmer.idle, "idle after the dropped scope's linger")
    finally:
        path.rmdir()
