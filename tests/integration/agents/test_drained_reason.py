"""A step whose every agent is draining says so: its pending reason names the drain, not a
pool nobody serves (a new user's trial: with pool eu drained it said ``no agent serves pool
eu``)."""

from __future__ import annotations

import time

from .conftest import LEASE, Agents, Api

ON_EU = """
id: on-eu
steps:
  - {id: any, type: script, shell: sh, run: "true", agent: {pool: eu}}
  - {id: gpu, type: script, shell: sh, run: "true", agent: {pool: eu, labels: {gpu: "1"}}}
"""


def _agents(api: Api) -> set[str]:
    return {a["id"] for a in api.client.get("/agents").json() if a["online"]}


def test_a_step_whose_every_agent_drains_says_they_are_draining(api: Api, agents: Agents) -> None:
    agents.start("gpu", "--pool", "eu", "--label", "gpu=1")
    agents.start("plain", "--pool", "eu")
    gpu, plain = agents.agent_id("gpu"), agents.agent_id("plain")
    api.wait_for("both agents are online", lambda: {gpu, plain} <= _agents(api), timeout=30)
    for agent_id in (gpu, plain):
        assert api.client.post(f"/agents/{agent_id}/drain").status_code == 200
    time.sleep(LEASE)  # a drain reaches an agent's claims within half a lease
    api.publish("on-eu", ON_EU)
    execution_id = api.run("on-eu")

    reasons = {s["id"]: s["pending_reason"] for s in api.execution(execution_id)["steps"]}
    assert reasons == {
        "any": "every agent of pool eu is draining (2)",
        "gpu": "every agent of pool eu with the labels gpu=1 is draining (1)",
    }, reasons

    assert api.client.post(f"/agents/{gpu}/undrain").status_code == 200
    api.wait_for(
        "the agent taking jobs again runs both steps",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=60,
    )
