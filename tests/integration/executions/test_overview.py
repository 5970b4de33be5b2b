"""What the web UI's lists and execution view read beside the basics: a workflow's last run,
success rate and trigger types; an execution's trigger record and step progress; each job's
action and agent."""

from __future__ import annotations

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import TEST_TIMEOUT, Api, step_of

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

FLAKY = """\
id: overview-flaky
description: Fails when asked to.
labels: {team: infra}
params:
  outcome: {type: string, default: pass}
triggers:
  - {type: webhook, key: overview-flaky}
  - {type: schedule, cron: "0 3 1 1 *"}
  - {type: schedule, cron: "0 4 1 1 *"}
steps:
  - id: check
    type: script
    shell: sh
    env: {OUTCOME: "{{ params.outcome }}"}
    run: 'test "$OUTCOME" = pass'
  - {id: report, type: script, run: 'echo done', needs: [check]}
"""

CALLS = """\
id: overview-calls
steps:
  - {id: call, type: http, url: "http://127.0.0.1:1/nothing-listens-here"}
"""


def listed(api: Api, workflow_id: str) -> dict[str, object]:
    response = api.client.get("/api/v1/workflows", params={"q": workflow_id})
    assert response.status_code == 200, response.text
    (row,) = [w for w in response.json()["items"] if w["id"] == workflow_id]
    found: dict[str, object] = row
    return found


def test_workflow_list_shows_last_run_success_rate_and_trigger_types(api: Api) -> None:
    api.publish(FLAKY)
    before = listed(api, "overview-flaky")
    assert before["last_run"] is None and before["success_rate"] is None
    assert before["ended_runs"] == 0
    assert before["trigger_types"] == ["manual", "webhook", "schedule"]
    assert before["labels"] == {"team": "infra"}
    assert before["description"] == "Fails when asked to."

    api.run("overview-flaky")
    failed = api.run("overview-flaky", params={"outcome": "fail"})
    assert failed["status"] == ExecutionStatus.FAILED
    api.wait(api.start("overview-flaky", test=True)["id"])  # a test run of the draft
    after = listed(api, "overview-flaky")
    assert after["success_rate"] == 0.5 and after["ended_runs"] == 2
    assert after["last_run"] == {
        "id": failed["id"],
        "status": "failed",
        "created_at": failed["created_at"],
        "started_at": failed["started_at"],
        "ended_at": failed["ended_at"],
    }, "the newest run that is not a test run of the draft"
    detail = api.client.get("/api/v1/workflows/overview-flaky").json()
    assert detail["last_run"] == after["last_run"] and detail["success_rate"] == 0.5
    by_label = api.client.get("/api/v1/workflows", params={"label": "team=infra"}).json()
    assert "overview-flaky" in [w["id"] for w in by_label["items"]]


def test_execution_says_who_started_it_and_how_far_it_came(api: Api) -> None:
    api.publish(FLAKY)
    done = api.run("overview-flaky", params={"outcome": "fail"})
    assert done["trigger"] == {"type": "manual", "name": None, "source": None, "actor": "admin"}
    assert done["trigger_data"] == {}
    assert done["progress"] == {
        "total": 2,
        "done": 2,
        "running": 0,
        "waiting": 0,
        "failed": 1,
        "skipped": 1,
        "cancelled": 0,
    }
    assert step_of(done, "report")["status"] == StepStatus.SKIPPED
    response = api.client.get("/api/v1/executions", params={"workflow": "overview-flaky"})
    row = next(e for e in response.json()["items"] if e["id"] == done["id"])
    assert row["progress"] == done["progress"] and row["trigger"] == done["trigger"]
    assert row["duration_ms"] == done["duration_ms"] is not None


def test_each_job_names_its_action_and_agent(api: Api) -> None:
    api.publish(FLAKY)
    api.publish(CALLS)
    ran = api.run("overview-flaky")
    (check,) = step_of(ran, "check")["jobs"]
    (report,) = step_of(ran, "report")["jobs"]
    assert (check["action"], report["action"]) == ("script.sh", "script.bash")
    assert check["agent_id"] and check["agent_id"] == report["agent_id"]
    called = api.run("overview-calls")
    (call,) = step_of(called, "call")["jobs"]
    assert call["action"] == "http.request" and call["status"] == JobStatus.FAILED
