"""Real ``opsflow agent`` processes against a real server that runs no job itself."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.servers import RunningServer, clean_env, opsflow_executable

from .conftest import Agents, Api

PLACED = """
id: placed
steps:
  - {id: anywhere, type: script, shell: sh, run: "echo default-pool"}
  - {id: in-eu, type: script, shell: sh, run: "echo eu-pool", agent: {pool: eu}}
"""

SLOW = """
id: slow
steps:
  - {id: work, type: script, shell: sh, run: "echo started; sleep 4; echo done", retries: 2}
"""


def _attempts(api: Api, execution_id: str, step_id: str) -> list[dict[str, object]]:
    steps = {s["id"]: s for s in api.execution(execution_id)["steps"]}
    jobs: list[dict[str, object]] = steps[step_id]["jobs"]
    return jobs


def test_remote_agents_run_the_steps_of_their_own_pool(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    agents.start("plain")
    agents.start("eu", "--pool", "eu", "--label", "region=eu")
    plain, eu = agents.agent_id("plain"), agents.agent_id("eu")
    api.publish("placed", PLACED)
    execution_id = api.run("placed")
    api.wait_for(
        "the run completes",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    assert [j["agent_id"] for j in _attempts(api, execution_id, "anywhere")] == [plain]
    assert [j["agent_id"] for j in _attempts(api, execution_id, "in-eu")] == [eu]
    texts = api.log_texts(execution_id)
    assert "default-pool" in texts and "eu-pool" in texts


def test_a_killed_agents_job_is_retried_on_another_agent(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    """And ``run --follow`` says that the attempt failed, why, and that it is retried
    (new-user trial: after a ``kill -9`` of the agent it went silent until the retry's lines)."""
    first = agents.start("first")
    first_id = agents.agent_id("first")
    api.publish("slow", SLOW)
    env = {**clean_env(), "OPSFLOW_URL": server.url, "OPSFLOW_TOKEN": server.token}
    follow = subprocess.Popen(
        [opsflow_executable(), "run", "slow", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert follow.stdout is not None
        started = follow.stdout.readline()
        execution_id = started.split()[2]  # started execution <id> of slow
        api.wait_for(
            "the first agent runs the job",
            lambda: "started" in api.log_texts(execution_id),
            timeout=60,
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        agents.start("second")
        second_id = agents.agent_id("second")
        followed, _ = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, started + followed
    said = (
        "[work] attempt 1 failed: agent lost: its lease expired without a report; "
        "retrying (attempt 2)"
    )
    lines = [line.strip() for line in followed.splitlines()]
    assert said in lines, followed
    assert lines.index(said) < lines.index("[work attempt 2] started"), followed
    attempts = _attempts(api, execution_id, "work")
    assert [j["agent_id"] for j in attempts] == [first_id, second_id], (
        attempts,
        agents.log("first"),
    )
    assert attempts[0]["status"] == "failed" and "agent lost" in str(attempts[0]["error"])
    assert attempts[1]["status"] == "completed"
    # The server's own log says who came and what was lost, for operators.
    log = server.log.read_text()
    assert f"agent {first_id} registered: pool default, 4 slots" in log, log
    assert f"agent {second_id} registered: pool default" in log, log
    lost = f"job {attempts[0]['id']} of execution {execution_id}: agent lost"
    assert lost in log, log


def test_sigterm_drains_the_agent_and_it_exits_0(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    process = agents.start("draining")
    execution_id = api.run_until_started("slow", SLOW)
    process.terminate()
    assert process.wait(timeout=30) == 0, agents.log("draining")
    detail = api.execution(execution_id)
    assert detail["status"] == "completed", agents.log("draining")


DOOMED = """
id: doomed
steps:
  - {id: work, type: script, shell: sh, run: "echo started; sleep 30", retries: 5}
"""


def test_a_step_whose_agent_is_lost_three_times_in_a_row_fails(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    api.publish("doomed", DOOMED)
    execution_id = api.run("doomed")
    for number in (1, 2, 3):
        # The same work dir, so the same identity: its registration fails the attempt it held.
        agent = agents.start("victim")

        def attempt_started(n: int = number) -> bool:
            return api.log_texts(execution_id).count("started") == n

        api.wait_for(f"attempt {number} starts", attempt_started, timeout=60)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
    api.wait_for(
        "the step fails once its lease expires",
        lambda: api.execution(execution_id)["status"] == "failed",
        timeout=30,
    )
    attempts = _attempts(api, execution_id, "work")
    assert len(attempts) == 3, attempts
    assert all("agent lost" in str(a["error"]) for a in attempts), attempts
    engine_log = str(api.execution(execution_id)["engine_log"])
    assert "agent lost 3 times in a row" in engine_log, engine_log


JOB_ENV = """
id: job-env
steps:
  - {id: show, type: script, shell: sh, run: "env | grep '^OPSFLOW_' | sort"}
"""

# The job variables docs/concepts/agents.md and docs/steps/script.md list, and no other.
DOCUMENTED_JOB_VARIABLES = {
    "OPSFLOW_EXECUTION_ID",
    "OPSFLOW_STEP_ID",
    "OPSFLOW_JOB_ID",
    "OPSFLOW_ATTEMPT",
    "OPSFLOW_WORK_ROOT",
    "OPSFLOW_OUTPUT",
}


def test_a_job_sees_the_documented_opsflow_variables_and_none_of_the_agents_own(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    """New-user trial: a script saw ``OPSFLOW_WORK_ROOT``, which the agents page did not list
    among the job's variables; the agent's own settings (its token here) stay out."""
    agents.start("env")
    api.publish("job-env", JOB_ENV)
    execution_id = api.run("job-env")
    api.wait_for(
        "the run completes",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    seen = dict(
        text.split("=", 1) for text in api.log_texts(execution_id) if text.startswith("OPSFLOW_")
    )
    assert set(seen) == DOCUMENTED_JOB_VARIABLES, seen
    assert seen["OPSFLOW_WORK_ROOT"] == str((agents.root / "env" / "jobs").resolve())
    assert seen["OPSFLOW_ATTEMPT"] == "1"
    docs = Path(__file__).parents[3] / "docs"
    for page in ("concepts/agents.md", "steps/script.md"):
        text = (docs / page).read_text()
        assert all(f"`{name}`" in text for name in DOCUMENTED_JOB_VARIABLES), page
