"""A restarted server does not make its own lost attempts wait for their leases.

After ``kill -9`` the new process knows its predecessor is dead (it has just killed the
leftovers), so the local agent's in-flight attempts fail as "agent lost" at start-up and their
retries start within 2 s, although the leases here last 30 s. Each server's local agent has an
identity of its own, kept in its data dir: with several servers on one PostgreSQL, a restart
fails only the restarted server's attempts, never another server's running job.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsflow.status import JobStatus

from .conftest import Api, CrashServer, epoch

pytestmark = pytest.mark.slow

LEASE = 30.0  # far longer than the test allows: a retry after the lease would fail it
WITHIN = 2.0

HELD = """
id: held
params: {marks: {type: string}, detached: {type: string, default: "0.1"}}
steps:
  - id: work
    type: script
    shell: sh
    retries: 1
    env: {MARKS: "{{ params.marks }}", DETACHED: "{{ params.detached }}"}
    run: |
      echo $$ > "$MARKS/pid-$OPSFLOW_ATTEMPT"
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then env -i setsid sleep "$DETACHED" & fi
      while [ ! -e "$MARKS/release" ]; do sleep 0.1; done
"""


def running_sleeps(argument: str) -> list[int]:
    """Live (not zombie) processes whose command line has ``argument``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if argument.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def jobs(api: Api, run: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.execution(run)["steps"][0]["jobs"]
    return found


def running(api: Api, run: str, attempt: int) -> bool:
    return any(j["attempt"] == attempt and j["status"] == JobStatus.RUNNING for j in jobs(api, run))


def restart_and_time_the_retry(server: CrashServer, run: str) -> tuple[Api, float]:
    """``kill -9`` the server, start it again; seconds from healthy to attempt 2 running."""
    server.kill()
    api = server.start()
    healthy = time.time()
    api.wait_for(
        "attempt 2 running after the restart",
        lambda: running(api, run, 2),
        timeout=WITHIN + 3,
        explain=lambda: f"{jobs(api, run)}\n{server.log_tail()}",
    )
    second = next(j for j in jobs(api, run) if j["attempt"] == 2)
    started = epoch(second["started_at"])
    assert started is not None
    return api, started - healthy


def test_restart_fails_its_own_attempt_at_once_and_the_retry_starts_within_2s(
    crash_server: Callable[..., CrashServer], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    server = crash_server(lease=LEASE, heartbeat=0.5)
    api = server.start()
    try:
        api.publish("held", HELD)
        # A process that left the session and cleared its environment: only the step's
        # cgroup still holds it, and the restart must stop it with the rest.
        detached = f"300.{random.randint(10_000, 99_999)}"
        run = api.run("held", {"marks": str(marks), "detached": detached})
        api.wait_for("attempt 1 running", lambda: running(api, run, 1), timeout=20)
        api.wait_for(
            "the detached process running", lambda: bool(running_sleeps(detached)), timeout=10
        )
        before = jobs(api, run)[0]["agent_id"]
        api, delay = restart_and_time_the_retry(server, run)
        assert delay <= WITHIN, f"the retry started {delay:.2f}s after the restart"
        first, second = jobs(api, run)
        assert first["status"] == JobStatus.FAILED
        assert "agent lost" in first["error"]
        assert first["agent_id"] == second["agent_id"] == before, "the server's id changed"
        assert before.startswith("local-")
        assert (server.data_dir / "agent-id").read_text().strip() == before
        assert not running_sleeps(detached), "the lost attempt's detached process runs on"
    finally:
        (marks / "release").touch()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_restarting_one_server_leaves_another_servers_running_job_untouched(
    crash_server: Callable[..., CrashServer], tmp_path: Path
) -> None:
    marks_a, marks_b = tmp_path / "marks-a", tmp_path / "marks-b"
    marks_a.mkdir()
    marks_b.mkdir()
    # One slot each: A takes the first run; with A full, B takes the second.
    server_a = crash_server(lease=LEASE, heartbeat=0.5, concurrency=1)
    server_b = crash_server(lease=LEASE, heartbeat=0.5, concurrency=1)
    api_a = server_a.start()
    try:
        api_a.publish("held", HELD)
        run_a = api_a.run("held", {"marks": str(marks_a)})
        api_a.wait_for("A's job running", lambda: running(api_a, run_a, 1), timeout=20)
        api_b = server_b.start()
        run_b = api_b.run("held", {"marks": str(marks_b)})
        api_b.wait_for("B's job running", lambda: running(api_b, run_b, 1), timeout=20)
        [job_a] = jobs(api_a, run_a)
        [job_b] = jobs(api_b, run_b)
        assert job_a["agent_id"] != job_b["agent_id"], "two servers share one agent id"

        api_b, delay = restart_and_time_the_retry(server_b, run_b)
        assert delay <= WITHIN, f"B's retry started {delay:.2f}s after its restart"
        assert "agent lost" in jobs(api_b, run_b)[0]["error"]

        # A's job is exactly as it was: the same single attempt, still running, its process
        # alive, and still A's.
        [now_a] = jobs(api_a, run_a)
        assert (now_a["id"], now_a["status"], now_a["agent_id"], now_a["error"]) == (
            job_a["id"],
            JobStatus.RUNNING,
            job_a["agent_id"],
            None,
        )
        pid_a = int((marks_a / "pid-1").read_text())
        assert Path(f"/proc/{pid_a}").exists(), "B's restart stopped A's job process"
    finally:
        (marks_a / "release").touch()
        (marks_b / "release").touch()
