"""The server enforces a step's timeout itself when the agent running it is gone: a remote
agent frozen (SIGSTOP) mid-job cannot report the stop, so when its lease runs out the attempt
ends ``timeout`` with the server's reason ("timed out after 2s"), not "agent lost", and the
step is retried per its policy on another agent."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RunningServer, run_server, warm_launch

from .conftest import Agents, Api, server_env

LEASE = 4.0  # longer than the step's timeout: the timeout, not the lease, decides

FROZEN = """
id: frozen
steps:
  - id: work
    type: script
    shell: sh
    timeout: 2s
    retries: 1
    run: |
      echo "attempt $OPSFLOW_ATTEMPT started"
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then sleep 60; fi
      echo "attempt $OPSFLOW_ATTEMPT done"
"""


@pytest.fixture
def slow_lease_server(agent_db: str, tmp_path: Path) -> Iterator[RunningServer]:
    data = tmp_path / "server"
    data.mkdir()
    env = {**server_env(), "OPSFLOW_LEASE_SECONDS": str(LEASE)}
    with run_server(agent_db, data, "--no-local-agent", launch=warm_launch, env=env) as running:
        yield running


def test_a_frozen_agents_step_is_timed_out_by_the_server_and_retried_elsewhere(
    slow_lease_server: RunningServer, tmp_path: Path
) -> None:
    server = slow_lease_server
    api = Api(server.url, server.token)
    fleet = Agents(server, tmp_path / "agents")
    try:
        frozen = fleet.start("frozen", "--concurrency", "1")
        frozen_id = fleet.agent_id("frozen")
        api.publish("frozen", FROZEN)
        execution_id = api.run("frozen")
        api.wait_for(
            "the first agent runs attempt 1",
            lambda: "attempt 1 started" in api.log_texts(execution_id),
            timeout=60,
        )
        os.kill(frozen.pid, signal.SIGSTOP)  # no heartbeat, no report from now on
        fleet.start("spare", "--concurrency", "1")
        spare_id = fleet.agent_id("spare")
        api.wait_for(
            "the run completes on the spare agent",
            lambda: api.execution(execution_id)["status"] == "completed",
            timeout=60,
        )
        (step,) = api.execution(execution_id)["steps"]
        first, second = step["jobs"]
        assert first["agent_id"] == frozen_id and first["status"] == "timeout"
        assert first["error"] == "timed out after 2s"
        assert second["agent_id"] == spare_id and second["status"] == "completed"
        texts = api.log_texts(execution_id)
        assert "attempt 2 done" in texts and "attempt 1 done" not in texts
    finally:
        fleet.close()  # SIGCONT first: the thawed agent's stale report is refused
        api.client.close()
