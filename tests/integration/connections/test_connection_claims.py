"""A remote agent's claim over HTTP carries the step's connection, decrypted, with its
credentials in ``mask``; the stored job and the API's view of it name the connection only."""

from __future__ import annotations

import httpx

from tests.integration.agents.conftest import (  # noqa: F401  (fixtures used by name)
    Api,
    agent_db,
    agent_token,
    api,
    server,
)
from tests.servers import RunningServer

TOKEN = "remote-claim-token-value-77"

CALLS = """
id: calls
steps:
  - {id: ping, type: http, connection: remote-api, url: /health}
"""


def test_a_claim_over_http_delivers_the_connection(
    server: RunningServer,  # noqa: F811
    api: Api,  # noqa: F811
) -> None:
    values = {"base_url": "https://api.example/v2", "auth": "bearer", "token": TOKEN}
    put = api.client.put("/connections/remote-api", json={"type": "http", "values": values})
    assert put.status_code == 201, put.text
    api.publish("calls", CALLS)
    execution_id = api.run("calls")
    with httpx.Client(
        base_url=f"{server.url}/api/v1/agent",
        headers={"Authorization": f"Bearer {agent_token(server)}"},
        timeout=60,
    ) as agent:
        agent.post("/register", json={"agent_id": "remote-1", "concurrency": 1}).raise_for_status()
        res = agent.post("/claim", json={"agent_id": "remote-1", "limit": 1, "wait": 20})

    assert res.status_code == 200, res.text
    (job,) = res.json()["jobs"]
    assert job["execution_id"] == execution_id
    assert job["connection"] == {"name": "remote-api", "type": "http", "values": values}
    assert job["mask"] == [TOKEN]
    assert job["config"]["connection"] == "remote-api"
    detail = api.execution(execution_id)
    assert TOKEN not in repr(detail)
