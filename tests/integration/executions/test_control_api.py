"""Approvals, retry and skip through the HTTP API, with permissions; and secrets never
reaching the live stream."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from .conftest import Api, step_of

GATE = """
id: api-gate
steps:
  - {id: build, type: script, shell: sh, run: 'echo "version=1.2.3" >> "$OPSFLOW_OUTPUT"'}
  - id: approve
    type: approval
    needs: [build]
    message: "Ship {{ nodes.build.output.version }}?"
    min_approvals: 2
  - {id: ship, type: script, needs: [approve], run: "true"}
"""


def _paused(api: Api, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        detail = api.detail(execution_id)
        if detail["status"] == "paused":
            return detail
        assert time.monotonic() < deadline, detail["status"]
        time.sleep(0.05)  # the status endpoint is what a client polls


def test_pending_approvals_context_and_two_answers(api: Api) -> None:
    api.publish(GATE)
    execution_id = api.start("api-gate")["id"]
    _paused(api, execution_id)
    pending = api.client.get("/api/v1/approvals", params={"status": "pending"}).json()
    mine = [a for a in pending["items"] if a["execution_id"] == execution_id]
    assert len(mine) == 1 and mine[0]["message"] == "Ship 1.2.3?" and mine[0]["can_respond"]
    context = api.client.get(f"/api/v1/executions/{execution_id}/approvals/approve").json()
    assert context["upstream"]["build"]["output"]["version"] == "1.2.3"
    assert context["requested_by"] == "admin"
    assert context["workflow_id"] == "api-gate"

    viewer = {"Authorization": f"Bearer {api.token_for('viewer')}"}
    refused = api.client.post(
        f"/api/v1/executions/{execution_id}/steps/approve/approve", headers=viewer, json={}
    )
    assert refused.status_code == 403
    assert "approvals:respond" in refused.json()["detail"]

    first = api.client.post(
        f"/api/v1/executions/{execution_id}/steps/approve/approve", json={"note": "lgtm"}
    )
    assert first.status_code == 200 and first.json()["decided"] is False
    assert first.json()["approval"]["workflow_id"] == "api-gate"
    said = [
        x["message"]
        for x in api.client.get(f"/api/v1/executions/{execution_id}").json()["engine_log"]
    ]
    assert any(m.endswith("approved via api; 1 more approval needed") for m in said), said
    again = api.client.post(f"/api/v1/executions/{execution_id}/steps/approve/approve", json={})
    assert again.status_code == 409 and "nobody counts twice" in again.json()["detail"]
    operator = {"Authorization": f"Bearer {api.token_for('operator')}"}
    second = api.client.post(
        f"/api/v1/executions/{execution_id}/steps/approve/approve", headers=operator, json={}
    )
    assert second.status_code == 200 and second.json()["decided"] is True
    detail = api.wait(execution_id)
    assert detail["status"] == "completed"
    out = step_of(detail, "approve")["outputs"]
    assert out["responded_by"] == "operator" and sorted(out["approvals"]) == ["admin", "operator"]


FLAKY = """
id: api-flaky
steps:
  - id: first
    type: script
    shell: sh
    env: {MARK: "%s"}
    allow_skip: true
    run: 'if [ -e "$MARK" ]; then echo fine; else touch "$MARK"; exit 1; fi'
  - {id: second, type: script, needs: [first], run: "true"}
"""


def test_retry_and_skip_through_the_api(api: Api, tmp_path: Path) -> None:
    api.publish(FLAKY % (tmp_path / "mark"))
    failed = api.run("api-flaky")
    assert failed["status"] == "failed"
    viewer = {"Authorization": f"Bearer {api.token_for('viewer')}"}
    url = f"/api/v1/executions/{failed['id']}/steps/first/retry"
    assert api.client.post(url, headers=viewer, json={}).status_code == 403
    retried = api.client.post(url, json={})
    assert retried.status_code == 200, retried.text
    detail = api.wait(failed["id"])
    assert detail["status"] == "completed"
    assert [j["status"] for j in step_of(detail, "first")["jobs"]] == ["failed", "completed"]
    # Skipping in a run that already completed is refused, with the reason.
    refused = api.client.post(f"/api/v1/executions/{failed['id']}/steps/second/skip")
    assert refused.status_code == 409 and "start a new run" in refused.json()["detail"]

    (tmp_path / "mark").unlink()
    again = api.run("api-flaky")
    skipped = api.client.post(f"/api/v1/executions/{again['id']}/steps/first/skip")
    assert skipped.status_code == 200, skipped.text
    assert api.wait(again["id"])["status"] == "completed"


SECRET = "Zq8-top-secret-value-42"


def test_a_secret_never_reaches_the_live_stream_logs_or_outputs(api: Api) -> None:
    put = api.client.put("/api/v1/secrets/STREAM_TOKEN", json={"value": SECRET})
    assert put.status_code in (200, 201), put.text
    api.publish(
        """
id: api-leaky
steps:
  - id: leak
    type: script
    shell: bash
    env: {T: "{{ secrets.STREAM_TOKEN }}"}
    run: |
      echo "token is $T"
      printf '%s' "$T" | base64
      echo "t=$T" >> "$OPSFLOW_OUTPUT"
"""
    )
    execution_id = api.start("api-leaky")["id"]
    events = api.events(execution_id)
    streamed = "".join(f"{e.kind}{e.data}" for e in events)
    detail = api.detail(execution_id)
    stored = repr(detail) + repr(api.logs(execution_id))
    download = api.client.get(f"/api/v1/executions/{execution_id}/logs/download").text
    encoded = base64.b64encode(SECRET.encode()).decode()
    for text in (streamed, stored, download):
        assert SECRET not in text and encoded not in text
    assert "token is ***" in download
    assert step_of(detail, "leak")["outputs"]["t"] == "***"


def test_retry_or_skip_of_a_step_the_workflow_lacks_is_not_found(api: Api, tmp_path: Path) -> None:
    api.publish(FLAKY % (tmp_path / "mark-unknown"))
    failed = api.run("api-flaky")
    assert failed["status"] == "failed"
    for action in ("retry", "skip"):
        response = api.client.post(f"/api/v1/executions/{failed['id']}/steps/nosuch/{action}")
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == (
            "unknown step 'nosuch'; this workflow's steps are: first, second"
        )
