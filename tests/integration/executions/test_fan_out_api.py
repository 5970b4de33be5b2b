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
    # Trial 2, L14: the reply shows the run after the skip, not the failed run before it.
    assert skipped.json()["status"] in ("running", "completed"), skipped.json()["status"]
    assert step_of(skipped.json(), "each")["items"][1]["status"] == "skipped"
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


# The new-user trial's run: 4 items, `retries: 1`, the last item fails every time.
LAST_FAILS = """
id: api-fan-last
steps:
  - id: each
    type: script
    shell: sh
    for_each: [a, b, c, d]
    retries: 1
    allow_skip: true
    env: {X: "{{ item }}"}
    run: test "$X" != d
"""


def _item_jobs(step: dict[str, Any], item: int) -> list[tuple[int, int]]:
    """Item ``item``'s jobs as (its own attempt, the step's attempt), in the detail's order."""
    return [(j["item_attempt"], j["attempt"]) for j in step["jobs"] if j["item"] == item]


def _messages(detail: dict[str, Any]) -> list[str]:
    return [e["message"] for e in detail["engine_log"]]


def test_an_items_attempts_are_counted_on_their_own(api: Api) -> None:
    api.publish(LAST_FAILS)
    detail = api.run("api-fan-last")
    assert detail["status"] == "failed"
    eid = detail["id"]
    step = step_of(detail, "each")
    assert step["error"].startswith(
        "1 of 4 items failed (item 3: attempt 2 failed: exit code 1)"
    ), step["error"]
    messages = _messages(detail)
    assert (
        "step each item 3 started (attempt 2 of 2): retrying after attempt 1 failed: exit code 1"
        in messages
    ), messages
    # The step's own numbers for item 3's jobs (4 and 5) reach no message.
    assert not [m for m in messages if "attempt 4" in m or "attempt 5" in m], messages
    assert _item_jobs(step, 3) == [(1, 4), (2, 5)]
    assert [_item_jobs(step, i) for i in (0, 1, 2)] == [[(1, 1)], [(1, 2)], [(1, 3)]]
    assert step["items"][3]["attempts"] == 2

    # A person retries item 3 (it fails twice more: seven jobs, as in the trial)...
    retried = api.client.post(f"/api/v1/executions/{eid}/steps/each/retry", json={"item": 3})
    assert retried.status_code == 200, retried.text
    again = api.wait(eid)
    assert again["status"] == "failed"
    step = step_of(again, "each")
    assert len(step["jobs"]) == 7
    assert _item_jobs(step, 3) == [(1, 4), (2, 5), (3, 6), (4, 7)]
    assert step["items"][3]["attempts"] == 4
    assert step["error"].startswith("1 of 4 items failed (item 3: attempt 4 failed: exit code 1)")
    assert (
        "step each item 3 started (attempt 4, 2 of 2 since a person's retry): "
        "retrying after attempt 3 failed: exit code 1"
    ) in _messages(again)


def test_a_skipped_item_is_counted_as_skipped_when_the_step_succeeds(api: Api) -> None:
    api.publish(LAST_FAILS.replace("api-fan-last", "api-fan-skip"))
    detail = api.run("api-fan-skip")
    assert detail["status"] == "failed"
    eid = detail["id"]
    # A person skips the failed item: the step succeeds, saying what happened to each item.
    skipped = api.client.post(f"/api/v1/executions/{eid}/steps/each/skip", json={"item": 3})
    assert skipped.status_code == 200, skipped.text
    done = api.wait(eid)
    assert done["status"] == "completed", _messages(done)[-5:]
    assert "step each succeeded: 3 of 4 items succeeded, 1 skipped" in _messages(done)
    assert not [m for m in _messages(done) if "all 4 items succeeded" in m]


def test_retrying_one_item_under_fail_fast_is_refused_while_another_failed(api: Api) -> None:
    # Trial 2, M3: matrix, max_parallel 1, fail_fast; item 2 fails, items 3-4 never start.
    api.publish(
        """
id: api-fan-ff
steps:
  - id: m
    type: script
    shell: sh
    matrix: {n: [0, 1, 2, 3, 4]}
    max_parallel: 1
    fail_fast: true
    env: {N: "{{ matrix.n }}"}
    run: test "$N" != 2
"""
    )
    detail = api.run("api-fan-ff")
    assert detail["status"] == "failed"
    eid = detail["id"]
    refused = api.client.post(f"/api/v1/executions/{eid}/steps/m/retry", json={"item": 4})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        "cannot retry item 4 of step 'm' alone: fail_fast: item 2 failed; "
        "retry item 2 or the step first"
    )
    # Refused before anything was written: the run is as it was.
    assert api.client.get(f"/api/v1/executions/{eid}").json()["status"] == "failed"


def test_logs_of_an_item_that_is_not_there_say_so(api: Api) -> None:
    # Trial 2, L7: an unknown item, or an item of a step without fan-out, gave an empty page.
    api.publish(FLAKY.replace("api-fan", "api-fan-logs"))
    eid = api.run("api-fan-logs")["id"]
    url = f"/api/v1/executions/{eid}/logs"
    past = api.client.get(url, params={"step": "each", "item": 99})
    assert past.status_code == 404, past.text
    assert past.json()["detail"] == "step 'each' has no item 99; its items are 0 to 2"
    plain = api.client.get(url, params={"step": "after", "item": 0})
    assert plain.status_code == 422, plain.text
    assert "step 'after' has no for_each or matrix" in plain.json()["detail"]
    nostep = api.client.get(url, params={"item": 0})
    assert nostep.status_code == 422, nostep.text
    assert "item needs step" in nostep.json()["detail"]
    unknown = api.client.get(url, params={"step": "nope", "item": 0})
    assert unknown.status_code == 404, unknown.text
    assert "has no step 'nope'" in unknown.json()["detail"]
    fine = api.client.get(url, params={"step": "each", "item": 2})
    assert fine.status_code == 200 and fine.json()["items"], fine.text


def test_skipping_a_cancelled_item_replies_with_the_run_after_the_skip(api: Api) -> None:
    # Trial 2, L14 (wf/fe5): item 1 is cancelled by a person, the step fails; skipping it
    # resumes the run, and the reply must say so (it said 'failed').
    api.publish(
        """
id: api-fan-skip
steps:
  - id: slow
    type: script
    shell: sh
    for_each: [1, 2]
    allow_skip: true
    env: {N: "{{ item }}"}
    run: test "$N" = 1 || sleep 30
  - {id: after, type: script, needs: [slow], run: "sleep 1"}
"""
    )
    eid = api.start("api-fan-skip")["id"]
    deadline = time.monotonic() + 20
    while step_of(api.detail(eid), "slow")["items"][1]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    one = api.client.post(f"/api/v1/executions/{eid}/steps/slow/cancel", json={"item": 1})
    assert one.status_code == 200, one.text
    assert api.wait(eid)["status"] == "failed"
    skipped = api.client.post(f"/api/v1/executions/{eid}/steps/slow/skip", json={"item": 1})
    assert skipped.status_code == 200, skipped.text
    body = skipped.json()
    assert body["status"] == "running", (body["status"], body["engine_log"][-4:])
    assert step_of(body, "slow")["status"] == "succeeded"
    assert api.wait(eid)["status"] == "completed"
