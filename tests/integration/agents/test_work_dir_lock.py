"""One work dir, one agent: a second agent (or server) on it is refused at once and touches
nothing; a restart after ``kill -9`` takes the dir over and cleans up after the dead one."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.servers import RunningServer, clean_env, free_port, opsflow_executable, run_server

from .conftest import Agents, Api, server_env

SLOW = """
id: slow
steps:
  - {id: work, type: script, shell: sh, run: "echo started; sleep 4; echo done", retries: 2}
"""


def _attempts(api: Api, execution_id: str) -> list[dict[str, object]]:
    (step,) = api.execution(execution_id)["steps"]
    jobs: list[dict[str, object]] = step["jobs"]
    return jobs


def test_a_second_agent_on_a_busy_work_dir_is_refused_and_kills_nothing(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    first = agents.start("a")
    first_id = agents.agent_id("a")
    execution_id = api.run_until_started("slow", SLOW)
    work = (agents.root / "a").resolve()
    # The second agent's own log is agents/b/agent.log; its --work-dir is the first's.
    second = agents.start("b", "--work-dir", str(work))
    assert second.wait(timeout=30) != 0
    said = agents.log("b")
    assert (
        f"work dir {work} is in use by another agent (pid {first.pid}); "
        "give each agent its own --work-dir"
    ) in said, said
    assert "cleaned up" not in said and "serving" not in said, said
    api.wait_for(
        "the run completes on the first agent",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    attempts = _attempts(api, execution_id)
    assert [(j["agent_id"], j["status"]) for j in attempts] == [(first_id, "completed")], (
        attempts,
        agents.log("a"),
    )
    assert first.poll() is None, agents.log("a")


def test_an_agent_restarted_after_kill_9_takes_its_work_dir_and_cleans_up(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    first = agents.start("a")
    agent_id = agents.agent_id("a")
    execution_id = api.run_until_started("slow", SLOW)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    # Its job's shell lives on (its own process group); the restart kills it and retries.
    agents.start("a")
    api.wait_for(
        "the run completes on the restarted agent",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    attempts = _attempts(api, execution_id)
    assert [j["agent_id"] for j in attempts] == [agent_id, agent_id], attempts
    assert "agent lost" in str(attempts[0]["error"]), attempts
    said = agents.log("a")
    assert "cleaned up after a previous agent: killed" in said, said
    assert "is in use by another agent" not in said, said


def test_a_second_server_on_a_data_dir_whose_local_agent_runs_is_refused(
    agent_db: str, tmp_path: Path
) -> None:
    data = (tmp_path / "shared").resolve()
    data.mkdir()
    with run_server(agent_db, data, env=server_env()) as first:
        argv = [opsflow_executable(), "server", "--port", str(free_port())]
        argv += ["--data-dir", str(data), "--db", agent_db]
        second = subprocess.run(
            argv,
            env={**clean_env(), "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests"},
            cwd=data,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = second.stdout + second.stderr
        # One `error:` line before anything starts (exit 1), not a lifespan's traceback.
        assert second.returncode == 1, said
        assert said.startswith(
            f"error: data dir {data} is in use by another opsflow server (pid {first.pid})"
        ), said
        assert "Traceback" not in said, said
        # The first one goes on serving.
        assert httpx.get(f"{first.url}/healthz", timeout=30).status_code == 200
