"""A step queued behind a busy remote agent says so: its pending reason names the free-slot
wait, counted from the ``--concurrency`` the agent registered with and its jobs in flight."""

from __future__ import annotations

from .conftest import Agents, Api

LONG = """
id: long
steps:
  - id: loop
    type: script
    shell: sh
    run: "sleep 30"
"""


def test_a_step_queued_behind_a_busy_remote_agent_waits_for_a_free_slot(
    api: Api, agents: Agents
) -> None:
    api.publish("long", LONG)
    agents.start("a", "--concurrency", "1")
    first = api.run("long")
    api.wait_for(
        "the agent runs the first step",
        lambda: any(j["status"] == "running" for j in api.execution(first)["steps"][0]["jobs"]),
        timeout=30,
    )
    second = api.run("long")
    reason = "waiting for a free slot on pool default (1/1 busy)"
    api.wait_for(
        "the queued step says why it waits",
        lambda: api.execution(second)["steps"][0]["pending_reason"] == reason,
        timeout=10,
    )
    (step,) = api.execution(second)["steps"]
    assert [j["status"] for j in step["jobs"]] == ["pending"], step
