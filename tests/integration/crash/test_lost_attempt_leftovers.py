"""What a lost attempt leaves behind once the server that ran it was killed with ``kill -9``.

A user who reads "attempt 1 failed: agent lost" and sees attempt 2 start expects attempt 1 to
be over: a deploy script must not keep running beside its own retry. The local agent starts
each job's process in its own session (so a timeout can kill the whole group), which also
means the job outlives a server killed with SIGKILL; and its fresh working directory, removed
when a job ends normally, stays in ``<data-dir>/work`` for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opsflow.status import ExecutionStatus, JobStatus

from .conftest import CrashServer

pytestmark = pytest.mark.slow

HELD = """
id: held
params: {marks: {type: string}}
steps:
  - id: work
    type: script
    shell: sh
    env: {MARKS: "{{ params.marks }}"}
    run: |
      echo $$ > "$MARKS/pid"
      while [ ! -e "$MARKS/release" ]; do sleep 0.1; done
"""


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. A zombie does not: it has ended, only
    its exit status waits for a parent (``killpg(pgid, 0)`` would still find it), as the
    product's own leftover scan, which reads the environment a zombie no longer has, agrees."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_lost_attempt_leaves_no_running_process_or_work_dir(
    crash_server: Callable[..., CrashServer], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    server = crash_server(lease=2.0, heartbeat=0.5)
    api = server.start()
    try:
        api.publish("held", HELD)
        run = api.run("held", {"marks": str(marks)})
        api.wait_for(
            "the job running with its pid written",
            lambda: (
                (marks / "pid").exists()
                and api.execution(run)["steps"][0]["jobs"][0]["status"] == JobStatus.RUNNING
            ),
            timeout=20,
        )
        [job] = api.execution(run)["steps"][0]["jobs"]
        pgid = int((marks / "pid").read_text())
        server.kill()
        api = server.start()
        api.wait_for(
            "the run failed by the lost attempt",
            lambda: api.execution(run)["status"] == ExecutionStatus.FAILED,
            timeout=30,
        )
        assert "agent lost" in api.execution(run)["steps"][0]["jobs"][0]["error"]
        # The attempt is declared over; give its process a moment to be reaped, no more.
        deadline = time.monotonic() + 3.0
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        problems = []
        if group_alive(pgid):
            problems.append(
                f"attempt 1 was declared 'agent lost', yet its process group {pgid} is still "
                "running: it outlived the killed server and nothing stopped it after restart"
            )
        workdir = server.data_dir / "work" / job["id"]
        if workdir.exists():
            problems.append(f"the lost attempt's working directory {workdir} was never removed")
        assert not problems, "\n".join(problems)
    finally:
        (marks / "release").touch()  # lets the orphaned script end
