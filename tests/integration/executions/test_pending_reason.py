"""``steps[].pending_reason``: a step that no online agent can take, or that waits for its
needs, a person or a free slot, says so in the execution detail instead of hanging in silence.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import TEST_TIMEOUT, Api, step_of

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

REMOTE_POOLS = """\
id: remote-pools
steps:
  - {id: plan-us, type: script, shell: sh, run: "true", agent: {pool: us-east}}
  - {id: plan-eu, type: script, shell: sh, run: "true",
     agent: {pool: default, labels: {region: eu}}}
  - {id: local, type: script, shell: sh, run: "echo here"}
  - {id: verify, type: script, shell: sh, run: "true", needs: [plan-us, plan-eu.failed]}
"""

GATE = """\
id: gate-first
steps:
  - {id: ask, type: approval, approvers: [alice, "team:ops"]}
  - {id: after, type: script, shell: sh, run: "true", needs: [ask]}
"""


def _cancel(api: Api, execution_id: str) -> dict[str, Any]:
    response = api.client.post(f"/api/v1/executions/{execution_id}/cancel", json={})
    assert response.status_code == 200, response.text
    return api.wait(execution_id)


def test_a_step_no_agent_serves_says_which_pool_or_labels_are_missing(api: Api) -> None:
    api.publish(REMOTE_POOLS)
    started = api.start("remote-pools")
    # The start answers after the jobs are queued: the reasons are there at once.
    detail = api.detail(started["id"])
    us, eu = step_of(detail, "plan-us"), step_of(detail, "plan-eu")
    assert us["status"] == StepStatus.RUNNING
    assert [j["status"] for j in us["jobs"]] == [JobStatus.PENDING]
    assert us["pending_reason"] == "no agent serves pool us-east"
    assert eu["pending_reason"] == "no agent of pool default has the labels region=eu"
    assert step_of(detail, "verify")["pending_reason"] == "waiting for needs: plan-us, plan-eu"
    assert detail["status"] == ExecutionStatus.RUNNING

    # The local agent claims `local` on its own time: cancel (graceful) once it has run, or
    # the cancel would withdraw it while still queued.
    deadline = time.monotonic() + 30
    while step_of(api.detail(started["id"]), "local")["status"] != StepStatus.SUCCEEDED:
        assert time.monotonic() < deadline, "the local agent did not run `local`"
        time.sleep(0.05)
    ended = _cancel(api, started["id"])
    assert ended["status"] == ExecutionStatus.CANCELLED
    assert all(s["pending_reason"] is None for s in ended["steps"]), "an ended run waits"
    assert step_of(ended, "local")["status"] == StepStatus.SUCCEEDED


def test_an_open_approval_says_it_waits_for_its_approvers(api: Api) -> None:
    api.publish(GATE)
    started = api.start("gate-first")
    detail = api.detail(started["id"])
    assert step_of(detail, "ask")["status"] == StepStatus.WAITING
    assert step_of(detail, "ask")["pending_reason"] == "waiting for approval by alice, team:ops"
    assert step_of(detail, "after")["pending_reason"] == "waiting for needs: ask"
    _cancel(api, started["id"])


def test_a_running_or_finished_step_has_no_pending_reason(api: Api) -> None:
    api.publish(
        "id: plain-local\nsteps:\n  - {id: one, type: script, shell: sh, run: 'echo one'}\n"
    )
    detail = api.run("plain-local")
    assert detail["status"] == ExecutionStatus.COMPLETED
    assert step_of(detail, "one")["pending_reason"] is None


def test_pending_reason_is_in_the_typed_openapi_model_of_the_detail(api: Api) -> None:
    schema = api.client.get("/api/v1/openapi.json").json()
    step = schema["components"]["schemas"]["StepOut"]
    assert "pending_reason" in step["properties"]
    prop = step["properties"]["pending_reason"]
    assert {"type": "string"} in prop["anyOf"] and {"type": "null"} in prop["anyOf"]
    assert "no agent serves pool" in prop["description"]
