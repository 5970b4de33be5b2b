"""A placement timeout: a step whose job no online agent can take waits pending, saying why,
then fails with that reason once its ``agent.placement_timeout`` is over (a busy agent's
too: then the reason is the wait for a free slot, not a missing agent). The due time is a
timer row in the database, so a server killed meanwhile and started again still fails the
step on time (PostgreSQL only: two server starts)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.servers import run_server, warm_launch

from .conftest import Agents, Api, server_env

PLACEMENT = 4.0

UNPLACEABLE = f"""
id: unplaceable
steps:
  - id: dump
    type: script
    shell: sh
    run: "echo never"
    agent: {{pool: eu, labels: {{region: eu}}, placement_timeout: {PLACEMENT:g}s}}
"""

# The step's pending reason when its placement time was up follows the timeout's.
REASON = "no agent took the job within 4s (placement timeout): no agent serves pool eu"


def _step(api: Api, execution_id: str) -> dict[str, object]:
    (step,) = api.execution(execution_id)["steps"]
    return dict(step)


@pytest.mark.parametrize("agent_db", [b for b in BACKENDS if b == "postgresql"], indirect=True)
def test_an_unplaced_step_fails_with_its_reason_after_its_placement_timeout_across_a_restart(
    agent_db: str, tmp_path: Path
) -> None:
    data = tmp_path / "server"
    data.mkdir()
    with run_server(
        agent_db, data, "--no-local-agent", launch=warm_launch, env=server_env()
    ) as first:
        api = Api(first.url, first.token)
        api.publish("unplaceable", UNPLACEABLE)
        # Before the run is asked for: its due time is set while the request is answered.
        started = time.monotonic()
        killed_run = api.run("unplaceable")
        assert _step(api, killed_run)["pending_reason"] == "no agent serves pool eu"
        os.kill(first.pid, signal.SIGKILL)  # the due time lives on in the database only
        api.client.close()

    with run_server(
        agent_db, data, "--no-local-agent", launch=warm_launch, env=server_env()
    ) as second:
        api = Api(second.url, second.token)
        api.wait_for(
            "the step fails once its placement timeout is over",
            lambda: api.execution(killed_run)["status"] == "failed",
            timeout=60,
        )
        assert time.monotonic() - started >= PLACEMENT
        step = _step(api, killed_run)
        assert step["status"] == "failed" and REASON in str(step["error"]), step

        # On a running server the timer alone wakes the run: nothing else happens meanwhile.
        waited_run = api.run("unplaceable")
        began = time.monotonic()
        api.wait_for(
            "the step fails once its placement timeout is over",
            lambda: api.execution(waited_run)["status"] == "failed",
            timeout=PLACEMENT + 30,
        )
        assert time.monotonic() - began >= PLACEMENT - 0.5
        jobs = api.execution(waited_run)["steps"][0]["jobs"]
        assert len(jobs) == 1 and jobs[0]["status"] == "failed", jobs
        assert REASON in jobs[0]["error"], jobs
        api.client.close()


BUSY = """
id: busy-gpu
steps:
  - id: hold
    type: script
    shell: sh
    run: "sleep 30"
    agent: {pool: eu, labels: {gpu: "1"}, placement_timeout: 6s}
"""


def test_a_step_queued_behind_a_busy_agent_fails_its_placement_timeout_saying_so(
    api: Api, agents: Agents
) -> None:
    """New-user trial: the only matching agent (--concurrency 1) was online and busy the
    whole time, yet the step failed with "no online agent in pool eu with labels gpu=1 took
    the job within 6s"."""
    api.publish("busy-gpu", BUSY)
    agents.start("gpu", "--pool", "eu", "--label", "gpu=1", "--concurrency", "1")
    first = api.run("busy-gpu")
    api.wait_for(
        "the agent runs the first step",
        lambda: any(j["status"] == "running" for j in api.execution(first)["steps"][0]["jobs"]),
        timeout=30,
    )
    second = api.run("busy-gpu")
    busy = "waiting for a free slot on pool eu (1/1 busy)"
    assert _step(api, second)["pending_reason"] == busy
    api.wait_for(
        "the step fails once its placement timeout is over",
        lambda: api.execution(second)["status"] == "failed",
        timeout=6 + 30,
    )
    reason = f"no agent took the job within 6s (placement timeout): {busy}"
    step = _step(api, second)
    assert step["status"] == "failed" and reason in str(step["error"]), step
    jobs = step["jobs"]
    assert isinstance(jobs, list) and [j["error"] for j in jobs] == [reason], jobs
    assert _step(api, first)["status"] == "running"  # the busy agent's own step runs on
    res = api.client.post(f"/executions/{first}/cancel", json={"mode": "force"})
    assert res.status_code == 200, res.text
