"""Nothing a script step started outlives the step, not even processes that left its process
group: ``setsid sleep 300 &`` and a daemon that forks twice, after a normal exit, a timeout and
a cancel, with each means of tracking this machine offers (a cgroup v2, a child subreaper)."""

from __future__ import annotations

import asyncio
import ctypes
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsflow.status import JobStatus, StepType
from opsflow.steps import scope as scope_module
from opsflow.steps.base import CancelSignal, StepResult
from opsflow.steps.process import run_process
from opsflow.steps.scope import (
    CGROUP_PREFIX,
    CgroupScope,
    Tracking,
    available,
    open_scope,
    own_cgroup_dir,
    reap_stale_cgroups,
)
from opsflow.steps.script import ScriptExecutor

from .support import RecordingSink, job

pytestmark = pytest.mark.anyio

DAEMON = """import os, sys
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
os.execvp("sleep", ["sleep", sys.argv[1]])
"""


def processes_running(argument: str) -> list[int]:
    """Live processes (not zombies) whose command line has ``argument``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argument.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def body(loose: list[str], then: str) -> str:
    """A bash script that starts a setsid child and a double-forked daemon, then ``then``."""
    setsid, daemon = loose[0], loose[1]
    return f'setsid sleep {setsid} &\npython3 "$DAEMON_PY" {daemon}\necho ready\n{then}\n'


PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37  # <linux/prctl.h>


def stop_being_a_subreaper() -> None:
    """Undo what ``available(Tracking.SUBREAPER)`` did to this (pytest's) process.

    The flag outlives the test: orphans of every later test's processes (the step processes of
    a crash test's killed server) would come back to pytest, which never waits for them, and
    stay zombies for the rest of the session, still found by ``kill(pid, 0)``."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) == 0, ctypes.get_errno()
    flag = ctypes.c_int(-1)
    assert libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0
    assert flag.value == 0, "pytest is still a child subreaper"
    scope_module._subreaper = None  # the next ``available`` sets it again, when asked


@pytest.fixture(params=[Tracking.CGROUP, Tracking.SUBREAPER], ids=["cgroup", "subreaper"])
def tracking(request: pytest.FixtureRequest) -> Iterator[Tracking]:
    kind: Tracking = request.param
    assert available(kind), f"this machine should offer {kind.value} tracking"
    try:
        yield kind
    finally:
        if kind is Tracking.SUBREAPER:
            stop_being_a_subreaper()


@pytest.fixture
def loose() -> list[str]:
    """Unique sleep durations, so the test finds exactly its own processes."""
    base = random.randint(10_000, 99_999)
    return [f"300.{base}1", f"300.{base}2", f"300.{base}3"]


async def run_script(
    workdir: Path,
    tracking: Tracking,
    script: str,
    *,
    timeout: float | None = None,
    cancel: CancelSignal | None = None,
    sink: RecordingSink,
) -> StepResult:
    (workdir / "daemon.py").write_text(DAEMON)
    spec = job(
        workdir,
        StepType.SCRIPT,
        {"run": script, "env": {"DAEMON_PY": str(workdir / "daemon.py")}},
        timeout=timeout,
    )
    executor = ScriptExecutor(grace=0.5, tracking=tracking)
    return await executor.run(spec, sink, cancel or CancelSignal())


def assert_none_left(loose: list[str]) -> None:
    left = {arg: processes_running(arg) for arg in loose if processes_running(arg)}
    assert not left, f"processes outlived the step: {left}"


async def test_detached_processes_end_with_a_step_that_exits(
    workdir: Path, sink: RecordingSink, tracking: Tracking, loose: list[str]
) -> None:
    # The setsid child holds the step's stdout open: the step still ends at once.
    result = await run_script(workdir, tracking, body(loose, "exit 0"), sink=sink)
    assert result.status is JobStatus.COMPLETED, sink.lines
    assert_none_left(loose)


async def test_detached_processes_end_with_a_step_that_times_out(
    workdir: Path, sink: RecordingSink, tracking: Tracking, loose: list[str]
) -> None:
    script = body(loose, "sleep 60")
    result = await run_script(workdir, tracking, script, timeout=1.5, sink=sink)
    assert result.status is JobStatus.TIMEOUT, sink.lines
    assert_none_left(loose)


async def test_detached_processes_end_with_a_cancelled_step(
    workdir: Path, sink: RecordingSink, tracking: Tracking, loose: list[str]
) -> None:
    cancel = CancelSignal()
    task = asyncio.create_task(
        run_script(workdir, tracking, body(loose, "sleep 60"), cancel=cancel, sink=sink)
    )
    await sink.wait_for("ready")
    assert all(processes_running(arg) for arg in loose[:2]), "the test's processes never ran"
    cancel.request(force=False)
    result = await task
    assert result.status is JobStatus.CANCELLED
    assert_none_left(loose)


async def test_a_process_that_clears_its_environment_cannot_leave_the_cgroup(
    workdir: Path, sink: RecordingSink, loose: list[str]
) -> None:
    script = f"env -i setsid sleep {loose[2]} &\necho ready\n"
    result = await run_script(workdir, Tracking.CGROUP, script, sink=sink)
    assert result.status is JobStatus.COMPLETED
    assert_none_left(loose)


async def test_the_step_cgroup_is_removed_afterwards(
    workdir: Path, sink: RecordingSink, loose: list[str]
) -> None:
    script = 'echo "cgroup=$(grep ^0:: /proc/self/cgroup)"\n' + body(loose, "exit 0")
    result = await run_script(workdir, Tracking.CGROUP, script, sink=sink)
    assert result.status is JobStatus.COMPLETED
    [line] = [text for _, text in sink.lines if text.startswith("cgroup=")]
    name = line.rsplit("/", 1)[1]
    assert name.startswith(CGROUP_PREFIX), line
    parent = own_cgroup_dir()
    assert parent is not None
    assert not (parent / name).exists(), "the step's cgroup was left behind"


def test_a_restart_reaps_only_the_cgroups_of_its_own_work_root(
    tmp_path: Path, loose: list[str]
) -> None:
    """What a killed agent's step cgroups still hold is stopped by the next agent on the same
    work root, never by another server's agent on this machine."""
    mine, theirs = tmp_path / "mine" / "work", tmp_path / "theirs" / "work"
    scope = open_scope(Tracking.CGROUP, str(mine))
    assert isinstance(scope, CgroupScope)
    argv = ["sh", "-c", f"echo ready; exec env -i sleep {loose[0]}"]
    child = subprocess.Popen(
        scope.command(argv, {"PATH": "/usr/bin:/bin"}), stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert reap_stale_cgroups(theirs) == 0
        assert processes_running(loose[0]), "another work root's restart killed our process"
        assert reap_stale_cgroups(mine) == 1
        child.wait(timeout=10)
        assert_none_left(loose)
        assert not scope.path.exists()
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


async def test_a_program_that_cannot_start_is_refused_as_before(
    workdir: Path, sink: RecordingSink, tracking: Tracking
) -> None:
    """Entering the scope first must not turn "cannot start" into an exit code."""
    not_executable = workdir / "tool"
    not_executable.write_text("#!/bin/sh\n")
    for argv, error in (
        (["opsflow-no-such-program"], FileNotFoundError),
        ([str(workdir / "missing")], FileNotFoundError),
        ([str(not_executable)], PermissionError),
    ):
        with pytest.raises(error):
            await run_process(
                argv,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin"},
                log=sink,
                cancel=CancelSignal(),
                timeout=5,
                tracking=tracking,
            )


async def test_exits_are_seen_without_a_thread_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio's default watcher on Python 3.11 starts a thread per child to wait for it; here
    exits come from pidfds on the loop: no thread is started for them, and each exit status
    still arrives (on a kernel with ``pidfd_open``; elsewhere the default stays)."""
    import os
    import sys
    import threading

    started: list[str] = []
    original = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    codes = []
    for code in (0, 3, 0, 7):
        outcome = await run_process(
            ["sh", "-c", f"exit {code}"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            log=RecordingSink(),
            cancel=CancelSignal(),
            timeout=10,
        )
        codes.append(outcome.returncode)
    assert codes == [0, 3, 0, 7]
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return  # no pidfds here: asyncio's default watcher (its threads) stays
    if sys.version_info < (3, 12):  # 3.12's default watcher uses pidfds too
        assert [name for name in started if "waitpid" in name] == []
