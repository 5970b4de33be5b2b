"""Cancelling a run: graceful lets in-flight jobs finish and starts nothing new; force stops
them at once; repeating a cancel is harmless while it is under way and refused after the end."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import TEST_TIMEOUT, Api, Event, sse_events, step_of

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)


def workflow(workflow_id: str, seconds: float) -> str:
    return f"""\
id: {workflow_id}
steps:
  - id: work
    type: script
    shell: sh
    run: |
      echo "working"
      sleep {seconds}
      echo "finished the work"
  - id: downstream
    type: script
    shell: sh
    needs: [work]
    run: echo "downstream ran"
"""


def start_and_wait_running(api: Api, workflow_id: str) -> tuple[str, list[Event]]:
    """Start a run and return once its ``work`` job prints (so the process is surely up)."""
    execution_id = api.start(workflow_id)["id"]
    seen: list[Event] = []
    with api.client.stream("GET", f"/api/v1/executions/{execution_id}/events") as response:
        for event in sse_events(response):
            seen.append(event)
            if event.kind == "log" and event.data["text"] == "working":
                return execution_id, seen
    raise AssertionError(f"the run ended before its job printed: {seen}")


def cancel(api: Api, execution_id: str, **body: Any) -> Any:
    return api.client.post(f"/api/v1/executions/{execution_id}/cancel", json=body)


def test_graceful_cancel_lets_the_running_job_finish_and_starts_nothing_new(api: Api) -> None:
    api.publish(workflow("graceful", 1))
    execution_id, _ = start_and_wait_running(api, "graceful")

    response = cancel(api, execution_id, mode="graceful", reason="change freeze")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == ExecutionStatus.RUNNING, "the job is still working"
    assert body["cancel"]["mode"] == "graceful"
    assert body["cancel"]["reason"] == "change freeze"
    assert body["cancel"]["by"] == "admin"

    detail = api.wait(execution_id)
    assert detail["status"] == ExecutionStatus.CANCELLED
    (job,) = step_of(detail, "work")["jobs"]
    assert (job["status"], job["exit_code"]) == (JobStatus.COMPLETED, 0)
    assert step_of(detail, "work")["status"] == StepStatus.SUCCEEDED
    downstream = step_of(detail, "downstream")
    assert downstream["jobs"] == [] and downstream["started_at"] is None
    assert downstream["status"] in (StepStatus.CANCELLED, StepStatus.SKIPPED)
    texts = [line["text"] for line in api.logs(execution_id, stream="stdout")]
    assert texts == ["working", "finished the work"]
    assert detail["ended_at"] >= job["ended_at"]


def test_force_cancel_stops_a_long_job_within_seconds(api: Api) -> None:
    api.publish(workflow("forced", 30))
    execution_id, _ = start_and_wait_running(api, "forced")

    began = time.monotonic()
    response = cancel(api, execution_id, mode="force")
    assert response.status_code == 200, response.text
    detail = api.wait(execution_id)
    assert time.monotonic() - began < 5
    assert detail["status"] == ExecutionStatus.CANCELLED
    (job,) = step_of(detail, "work")["jobs"]
    assert job["status"] == JobStatus.CANCELLED
    assert step_of(detail, "work")["status"] == StepStatus.CANCELLED
    assert step_of(detail, "downstream")["jobs"] == []
    assert "finished the work" not in [line["text"] for line in api.logs(execution_id)]


def test_repeating_a_cancel_is_harmless_until_the_run_ends_then_a_conflict(api: Api) -> None:
    api.publish(workflow("cancel-twice", 30))
    execution_id, _ = start_and_wait_running(api, "cancel-twice")

    first = cancel(api, execution_id, mode="graceful").json()["cancel"]
    again = cancel(api, execution_id, mode="graceful")
    assert again.status_code == 200, again.text
    assert again.json()["cancel"] == first, "a repeated request changes nothing"

    forced = cancel(api, execution_id, mode="force")
    assert forced.status_code == 200, forced.text
    assert forced.json()["cancel"]["mode"] == "force", "graceful can be escalated to force"

    detail = api.wait(execution_id)
    assert detail["status"] == ExecutionStatus.CANCELLED
    late = cancel(api, execution_id)
    assert late.status_code == 409, late.text
    assert "already ended as cancelled" in late.json()["detail"]


def test_cancel_of_a_finished_run_is_a_conflict(api: Api) -> None:
    api.publish(workflow("done-already", 0))
    detail = api.run("done-already")
    assert detail["status"] == ExecutionStatus.COMPLETED
    response = cancel(api, detail["id"], mode="force")
    assert response.status_code == 409, response.text
    assert "completed" in response.json()["detail"]
    assert "--cleanup" not in response.json()["detail"], "it applied nothing to undo"
    assert api.detail(detail["id"])["status"] == ExecutionStatus.COMPLETED


def test_cancel_without_a_body_is_graceful(api: Api) -> None:
    api.publish(workflow("no-body", 30))
    execution_id, _ = start_and_wait_running(api, "no-body")
    response = api.client.post(f"/api/v1/executions/{execution_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["cancel"]["mode"] == "graceful"
    assert cancel(api, execution_id, mode="force").status_code == 200  # don't wait 30 s
    assert api.wait(execution_id)["status"] == ExecutionStatus.CANCELLED


def test_cancel_of_an_unknown_execution_is_not_found(api: Api) -> None:
    response = cancel(api, "no-such-execution", mode="force")
    assert response.status_code == 404, response.text


def test_an_unknown_cancel_mode_is_refused_naming_mode(api: Api) -> None:
    response = cancel(api, "no-such-execution", mode="gentle")
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == ["body.mode"]


def test_cleanup_of_an_ended_run_with_nothing_to_undo_says_so(api: Api) -> None:
    api.publish(workflow("nothing-to-undo", 0))
    detail = api.run("nothing-to-undo")
    assert detail["status"] == ExecutionStatus.COMPLETED
    response = cancel(api, detail["id"], mode="cleanup")
    assert response.status_code == 409, response.text
    assert "nothing to clean up" in response.json()["detail"]
    after = api.detail(detail["id"])
    assert after["status"] == ExecutionStatus.COMPLETED and after["cancel"] is None
