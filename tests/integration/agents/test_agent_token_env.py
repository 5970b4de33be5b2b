"""The documented way to give ``opsflow agent`` its token: ``OPSFLOW_TOKEN``, which keeps the
secret out of the process list (``--token`` would put it in every user's ``ps``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.servers import clean_env, opsflow_executable

from .conftest import Agents, Api

HELLO = "id: env-token\nsteps:\n  - {id: hello, type: script, run: echo hello}\n"


def test_an_agent_given_its_token_in_opsflow_token_runs_jobs_and_keeps_it_out_of_ps(
    agents: Agents, api: Api
) -> None:
    process = agents.start("env-token")  # the fixture passes the token in OPSFLOW_TOKEN only
    api.publish("env-token", HELLO)

    execution_id = api.run("env-token")

    api.wait_for(
        "the agent runs the job",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
    assert process.poll() is None, agents.log("env-token")
    argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
    assert agents.token().encode() not in b" ".join(argv)
    assert b"--token" not in argv


def test_agent_help_names_opsflow_token_as_the_way_to_give_the_token() -> None:
    shown = subprocess.run(
        [opsflow_executable(), "agent", "--help"],
        env={**clean_env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "OPSFLOW_TOKEN" in shown
    assert "process list" in " ".join(shown.split())
