"""A definition that places steps in a pool no agent can serve is saved with a warning at that
pool's line (a typo there leaves every run's step pending), in validate, save and publish."""

from __future__ import annotations

from fastapi.testclient import TestClient

YAML = {"Content-Type": "application/yaml"}

PLACED = """\
id: placed
agent: {pool: default}
steps:
  - id: build
    type: script
    run: "true"
    agent: {pool: ue}
  - id: ship
    type: script
    run: "true"
    agent: {pool: eu}
"""


def test_a_pool_no_agent_token_is_bound_to_is_warned_of_with_the_close_one(
    client: TestClient,
) -> None:
    created = client.post("/api/v1/agents/tokens", json={"pool": "eu", "name": "eu-agents"})
    assert created.status_code == 201, created.text

    checked = client.post("/api/v1/workflows/validate", content=PLACED, headers=YAML)
    assert checked.status_code == 200, checked.text
    warnings = [(w["loc"], w["msg"], w["line"]) for w in checked.json()["warnings"]]
    assert warnings == [
        (
            "steps[0].agent.pool",
            "no agent token is bound to pool ue and no agent has served it (did you mean eu?): "
            "its steps wait until an agent of pool ue is online (opsflow agents tokens create "
            "--pool ue)",
            7,
        )
    ]
    saved = client.put("/api/v1/workflows/placed?publish=true", content=PLACED, headers=YAML)
    assert saved.status_code == 201, saved.text
    assert saved.json()["warnings"] == checked.json()["warnings"]

    # the default pool (the local agent's) and a bound pool are known: no warning
    fixed = PLACED.replace("pool: ue", "pool: eu")
    again = client.post("/api/v1/workflows/validate", content=fixed, headers=YAML)
    assert again.json()["warnings"] == []
