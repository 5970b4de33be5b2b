"""Fanned-out steps through the HTTP API: items in the execution detail, logs by item, and
people retrying, skipping and cancelling items."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .conftest import Api, step_of

FLAKY = """
id: api-fan
params:
  fixed: {type: boolean, default: false}
steps:
  - id: each
    type: script
    shell: sh
    for_each: [a, b, c]
    allow_skip: true
    env: {X: "{{ item }}", MARK: "{{ execution.id }}"}
    run: |
      echo "item $X"
      test "$X" != b || test -e "/tmp/opsflow-fan-$MARK"
      echo "out=$X" >> "$OPSFLOW_OUTPUT"
  - {id: after, type: script, needs: [each], run: "true"}
"""


def test_items_show_in_the_detail_and_a_failed_item_is_retried_by_the_api(api: Api) -> None:
    api.publish(FLAKY)
    detail = api.run("api-fan")
    assert detail["status"] == "failed"
    step = step_of(detail, "each")
    assert step["fan_out"]["total"] == 3 and step["fan_out"]["kind"] == "for_each"
    assert step["fan_out"]["counts"]["succeeded"] == 2
    assert step["fan_out"]["counts"]["failed"] == 1
    items = step["items"]
    assert [(i["index"], i["item"], i["status"]) for i in items] == [
        (0, "a", "succeeded"),
        (1, "b", "failed"),
        (2, "c", "succeeded"),
    ]
    assert items[0]["outputs"]["out"] == "a" and items[1]["attempts"] == 1
    assert {j["item"] for j in step["jobs"]} == {0, 1, 2}

    lines = api.logs(detail["id"], step="each", item=2)
    assert [line["text"] for line in lines if line["stream"] == "stdout"] == ["item c"]
    assert {line["item"] for line in lines} == {2}

    eid = detail["id"]
    refused = api.client.post(f"/api/v1/executions/{eid}/steps/each/retry", json={"item": 0})
    assert refused.status_code == 409, refused.text
    assert "it is succeeded" in refused.json()["detail"]
    missing = api.client.post(f"/api/v1/executions/{eid}/steps/each/retry", json={"item": 7})
    assert missing.status_code == 404, missing.text

    skipped = api.client.post(f"/api/v1/executions/{eid}/steps/each/skip", json={"item": 1})
    assert skipped.status_code == 200, skipped.text
    done = api.wait(eid)
    assert done["status"] == "completed", done["engine_log"][-5:]
    assert [i["status"] for i in step_of(done, "each")["items"]] == [
        "succeeded",
        "skipped",
        "succeeded",
    ]
    # Only the item's status changed: nothing ran again.
    assert len(step_of(done, "each")["jobs"]) == 3


def test_retrying_one_item_runs_it_alone_and_the_run_completes(api: Api) -> None:
    api.publish(FLAKY.replace("api-fan", "api-fan-retry"))
    detail = api.run("api-fan-retry")
    assert detail["status"] == "failed"
    eid = detail["id"]
    fixed = Path(f"/tmp/opsflow-fan-{eid}")
    fixed.touch()
    try:
        retried = api.client.post(f"/api/v1/executions/{eid}/steps/each/retry", json={"item": 1})
        assert retried.status_code == 200, retried.text
        done = api.wait(eid)
    finally:
        fixed.unlink()
    assert done["status"] == "completed", done["engine_log"][-5:]
    step = step_of(done, "each")
    assert [j["item"] for j in step["jobs"]] == [0, 1, 2, 1]
    assert step["outputs"]["succeeded"] == 3
    assert [i["outputs"]["out"] for i in step["outputs"]["items"]] == ["a", "b", "c"]


def _running(api: Api, eid: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        step = step_of(api.detail(eid), "slow")
        if step["fan_out"]["counts"]["running"] >= count and all(
            j["status"] == "running" for j in step["jobs"]
        ):
            return step
        assert time.monotonic() < deadline, step["fan_out"]
        time.sleep(0.05)  # the status endpoint is what a client polls


def test_a_person_cancels_one_item_then_the_rest(api: Api) -> None:
    api.publish(
        """
id: api-fan-cancel
steps:
  - id: slow
    type: script
    shell: sh
    for_each: [1, 2, 3]
    min_success: 0
    run: sleep 30
"""
    )
    eid = api.start("api-fan-cancel")["id"]
    _running(api, eid, 3)
    one = api.client.post(f"/api/v1/executions/{eid}/steps/slow/cancel", json={"item": 1})
    assert one.status_code == 200, one.text
    rest = api.client.post(f"/api/v1/executions/{eid}/steps/slow/cancel", json={})
    assert rest.status_code == 200, rest.text
    done = api.wait(eid)
    step = step_of(done, "slow")
    assert [i["status"] for i in step["items"]] == ["cancelled"] * 3
    assert step["status"] == "succeeded"  # min_success: 0
    assert done["status"] == "completed"
