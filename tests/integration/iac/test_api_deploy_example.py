"""The flagship example, ``examples/api-deploy``, as a user runs it: uploaded with ``opsflow
apply -f``, planned with a templated workspace, approved by a member of the platform team from
the CLI, applied from the saved plan into that workspace's state, health-checked and
announced; and the rejected path announced. Real server, local agent and Terraform on SQLite
and PostgreSQL; the health endpoint and the #deploys channel are a local stand-in
(``TF_VAR_endpoint`` points the example's output at it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, StandIn

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "api-deploy"


def _statuses(ex: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in ex["steps"]}


def _approver(server: Server) -> str:
    """A member of team platform (the gate's approvers); returns their API token."""
    made = server.api.post(
        "/users", json={"name": "pat", "role": "operator", "password": "pat-password"}
    )
    assert made.status_code == 201, made.text
    team = server.api.post("/teams", json={"name": "platform", "members": ["pat"]})
    assert team.status_code == 201, team.text
    login = server.api.post("/auth/login", json={"username": "pat", "password": "pat-password"})
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


def test_api_deploy_plans_approves_applies_checks_and_announces(
    start_server: Callable[[dict[str, str]], Server], stand_in: StandIn
) -> None:
    server = start_server(
        {
            "OPSFLOW_NOTIFY_DEPLOYS": f"json://127.0.0.1:{stand_in.url.rsplit(':', 1)[1]}/deploys",
            "TF_VAR_endpoint": stand_in.url,
        }
    )
    assert "api-deploy" in server.cli("apply", "-f", str(EXAMPLE))
    pat = _approver(server)

    eid = server.run("api-deploy", {"environment": "staging", "replicas": 3})
    ex = server.wait(eid, lambda e: e["status"] in ("paused", "failed", "completed"))
    assert ex["status"] == "paused", ex["engine_log"]
    gate = server.api.get(f"/executions/{eid}/approvals/approve").json()
    assert gate["message"] == ("staging: 2 to add, 0 to change, 0 to destroy. Apply this plan?")
    server.cli("approve", eid, "approve", "--note", "plan looks right", token=pat)

    ex = server.wait(eid, lambda e: e["status"] in ("completed", "failed", "error"))
    assert ex["status"] == "completed", ex["engine_log"]
    assert _statuses(ex) == {
        "plan": "succeeded",
        "approve": "approved",
        "apply": "succeeded",
        "health": "succeeded",
        "announce": "succeeded",
        "announce-rejection": "skipped",
        "roll-back": "skipped",
        "announce-failure": "skipped",
    }
    steps = {s["id"]: s for s in ex["steps"]}
    # The workspace template rendered to the run's environment: that is the state used.
    assert steps["plan"]["outputs"]["state_name"] == "api-deploy/infra/staging"
    assert steps["apply"]["outputs"]["state_name"] == "api-deploy/infra/staging"
    assert steps["apply"]["outputs"]["outputs"]["api_endpoint"] == stand_in.url
    assert "/healthz" in stand_in.gets
    # The channel also carries the approval request; the announcement is the step's message.
    [message] = [m for m in stand_in.posted("/deploys") if m["title"] == "API is live on staging"]
    assert message["message"].startswith("3 replicas answered the health check in ")

    state = server.api.get("/tfstate/api-deploy/infra/staging").json()
    resources = sorted(f"{r['type']}.{r['name']}" for r in state["resources"])
    assert resources == ["terraform_data.api", "terraform_data.dns"]
    history = server.cli("tfstate", "history", "api-deploy/infra/staging")
    assert f"execution {eid}, step apply" in history

    # The other way it may go: production, rejected, announced with the approver's note.
    eid = server.run("api-deploy", {"environment": "production"})
    ex = server.wait(eid, lambda e: e["status"] in ("paused", "failed", "completed"))
    assert ex["status"] == "paused", ex["engine_log"]
    plan = next(s for s in ex["steps"] if s["id"] == "plan")
    assert plan["outputs"]["state_name"] == "api-deploy/infra/production"
    server.cli("reject", eid, "approve", "--note", "not on a Friday", token=pat)
    ex = server.wait(eid, lambda e: e["status"] not in ("pending", "running", "paused"))
    assert ex["status"] == "completed", ex["engine_log"]
    assert _statuses(ex)["announce-rejection"] == "succeeded"
    assert _statuses(ex)["apply"] == "skipped"
    stopped = [m for m in stand_in.posted("/deploys") if "stopped" in m["title"]]
    assert [(m["title"], m["message"]) for m in stopped] == [
        ("API deploy to production stopped", "pat did not approve the plan: not on a Friday")
    ]
