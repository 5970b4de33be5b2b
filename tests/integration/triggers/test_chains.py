"""Workflow chaining and the ``workflow`` step, against a real ``opsflow server`` process.

One server per backend (its depth limit lowered to 3 so a loop stops quickly); the tests keep
apart by their own workflow ids. Every wait follows an execution's server-sent events until
they say ``end``; a chain is walked through the engine-log line its upstream run writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.integration.executions.conftest import sse_events
from tests.servers import clean_env, fresh_database, run_server

pytestmark = pytest.mark.timeout(60)
YAML = {"Content-Type": "application/yaml"}
DEPTH = 3


@pytest.fixture(scope="module", params=BACKENDS)
def http(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The admin's client of a real server on each backend."""
    databases = fresh_database(request, tmp_path_factory, "chain")
    db_url = next(databases)
    data_dir = tmp_path_factory.mktemp("chain-data")
    env = {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_CHAIN_DEPTH": str(DEPTH),
    }
    try:
        with (
            run_server(db_url, data_dir, env=env) as server,
            httpx.Client(
                base_url=f"{server.url}/api/v1",
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=30,
            ) as client,
        ):
            yield client
    finally:
        databases.close()


def publish(http: httpx.Client, text: str) -> None:
    workflow_id = text.split("id:", 1)[1].split("\n", 1)[0].strip()
    response = http.put(f"/workflows/{workflow_id}?publish=true", content=text, headers=YAML)
    assert response.status_code in (200, 201), response.text


def start(http: httpx.Client, workflow_id: str, **params: Any) -> str:
    response = http.post(f"/workflows/{workflow_id}/runs", json={"params": params})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait(http: httpx.Client, execution_id: str) -> dict[str, Any]:
    """Follow the run's events until it ends; its detail."""
    with http.stream("GET", f"/executions/{execution_id}/events") as response:
        assert response.status_code == 200
        kinds = [e.kind for e in sse_events(response)]
    assert kinds[-1] == "end", kinds[-3:]
    return detail(http, execution_id)


def detail(http: httpx.Client, execution_id: str) -> dict[str, Any]:
    response = http.get(f"/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def followers(body: dict[str, Any]) -> list[str]:
    """The executions an ended run's workflow triggers started (from its engine log)."""
    found = []
    for line in body["engine_log"]:
        match = re.search(r"workflow trigger .* started execution ([0-9a-f]+)", line["message"])
        if match:
            found.append(match.group(1))
    return found


def runs_of(http: httpx.Client, workflow_id: str) -> list[dict[str, Any]]:
    response = http.get("/executions", params={"workflow": workflow_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def step(body: dict[str, Any], step_id: str) -> dict[str, Any]:
    (found,) = [s for s in body["steps"] if s["id"] == step_id]
    result: dict[str, Any] = found
    return result


BUILD = """id: build
params:
  tag: {type: string, default: dev}
outputs:
  image: "registry/app:{{ nodes.make.output.version }}"
  tag: "{{ params.tag }}"
steps:
  - id: make
    type: script
    run: echo "version=1.2.3" >> "$OPSFLOW_OUTPUT"
"""

DEPLOY = """id: deploy
params:
  image: {type: string}
triggers:
  - type: workflow
    workflow: build
    params: {image: "{{ trigger.upstream.outputs.image }}"}
steps:
  - id: roll
    type: script
    env: {FROM: "{{ trigger.upstream.execution_id }}"}
    run: echo "from=$FROM" >> "$OPSFLOW_OUTPUT"
"""


def test_a_completed_run_starts_its_follower_once_with_its_outputs(http: httpx.Client) -> None:
    publish(http, BUILD)
    publish(http, DEPLOY)
    upstream = wait(http, start(http, "build", tag="v7"))
    assert upstream["status"] == "completed"
    assert upstream["outputs"] == {"image": "registry/app:1.2.3", "tag": "v7"}
    (follower_id,) = followers(upstream)
    follower = wait(http, follower_id)
    assert follower["status"] == "completed"
    assert follower["params"] == {"image": "registry/app:1.2.3"}
    assert follower["trigger"] == {
        "type": "workflow",
        "name": "workflow-1",
        "source": upstream["id"],
        "actor": "admin",  # the follower acts for whoever started the upstream run
    }
    assert follower["trigger_data"]["upstream"] == {
        "execution_id": upstream["id"],
        "workflow": "build",
        "status": "completed",
        "params": {"tag": "v7"},
        "outputs": {"image": "registry/app:1.2.3", "tag": "v7"},
    }
    assert follower["chain"] == ["build"]
    assert step(follower, "roll")["outputs"]["from"] == upstream["id"]
    assert [r["id"] for r in runs_of(http, "deploy")] == [follower_id]


def test_a_failed_run_starts_the_followers_of_failed_runs_only(http: httpx.Client) -> None:
    publish(
        http,
        "id: fragile\nsteps:\n  - {id: boom, type: script, run: exit 3}\n",
    )
    publish(
        http,
        """id: page-someone
triggers:
  - {type: workflow, workflow: fragile, statuses: [failed]}
steps:
  - {id: page, type: script, run: "true"}
""",
    )
    publish(
        http,
        """id: after-fragile
triggers:
  - {type: workflow, workflow: fragile}
steps:
  - {id: next, type: script, run: "true"}
""",
    )
    upstream = wait(http, start(http, "fragile"))
    assert upstream["status"] == "failed"
    (follower_id,) = followers(upstream)
    follower = wait(http, follower_id)
    assert follower["workflow_id"] == "page-someone"
    assert follower["trigger_data"]["upstream"]["status"] == "failed"
    assert runs_of(http, "after-fragile") == []
    # Retried by hand, the upstream run fails once more: its follower does not run twice.
    retried = http.post(f"/executions/{upstream['id']}/steps/boom/retry", json={})
    assert retried.status_code == 200, retried.text
    assert wait(http, upstream["id"])["status"] == "failed"
    assert [r["id"] for r in runs_of(http, "page-someone")] == [follower_id]


def test_a_paused_follower_does_not_start_and_the_upstream_says_why(http: httpx.Client) -> None:
    publish(http, "id: lead\nsteps:\n  - {id: one, type: script, run: 'true'}\n")
    publish(
        http,
        "id: paused-follower\ntriggers:\n  - {type: workflow, workflow: lead}\n"
        "steps:\n  - {id: one, type: script, run: 'true'}\n",
    )
    assert http.post("/workflows/paused-follower/pause").status_code == 200
    upstream = wait(http, start(http, "lead"))
    assert upstream["status"] == "completed"
    assert runs_of(http, "paused-follower") == []
    assert any(
        "did not start a run" in line["message"] and "paused" in line["message"]
        for line in upstream["engine_log"]
    ), upstream["engine_log"]


def test_a_follower_whose_params_do_not_fit_names_the_param_in_the_upstream_log(
    http: httpx.Client,
) -> None:
    publish(http, "id: tagger\nsteps:\n  - {id: one, type: script, run: 'true'}\n")
    # The upstream's workflow id renders to a string; the follower wants an integer there.
    publish(
        http,
        "id: strict-follower\nparams:\n  count: {type: integer, required: true}\n"
        "triggers:\n  - {type: workflow, workflow: tagger,"
        " params: {count: '{{ trigger.upstream.workflow }}'}}\n"
        "steps:\n  - {id: one, type: script, run: 'true'}\n",
    )
    upstream = wait(http, start(http, "tagger"))
    assert runs_of(http, "strict-follower") == []
    (line,) = [ln for ln in upstream["engine_log"] if "did not start a run" in ln["message"]]
    assert "params.count: 'tagger' is not an integer" in line["message"], line


def test_a_chain_loop_stops_at_the_depth_limit_naming_the_loop(http: httpx.Client) -> None:
    for me, other in (("ping", "pong"), ("pong", "ping")):
        publish(
            http,
            f"id: {me}\ntriggers:\n  - {{type: workflow, workflow: {other}}}\n"
            "steps:\n  - {id: one, type: script, run: 'true'}\n",
        )
    current = wait(http, start(http, "ping"))
    seen = [current["workflow_id"]]
    while followers(current):
        (next_id,) = followers(current)
        current = wait(http, next_id)
        seen.append(current["workflow_id"])
    assert seen == ["ping", "pong", "ping", "pong"]  # depth 0..3
    assert current["chain"] == ["ping", "pong", "ping"]
    (stopped,) = [e["message"] for e in current["engine_log"] if "did not start" in e["message"]]
    assert f"stop at depth {DEPTH}" in stopped
    assert "ping -> pong -> ping -> pong -> ping" in stopped
    assert "the loop ping -> pong -> ping would never end" in stopped


CHILD = """id: child
params:
  n: {type: integer}
outputs:
  doubled: "{{ nodes.double.output.value }}"
steps:
  - id: double
    type: script
    env: {N: "{{ params.n }}"}
    run: echo "value=$((N * 2))" >> "$OPSFLOW_OUTPUT"
"""

PARENT = """id: parent
params:
  n: {type: integer, default: 21}
steps:
  - id: call
    type: workflow
    workflow: child
    params: {n: "{{ params.n }}"}
  - id: use
    type: script
    needs: [call]
    env: {GOT: "{{ nodes.call.output.outputs.doubled }}"}
    run: echo "got=$GOT" >> "$OPSFLOW_OUTPUT"
"""


def test_a_parent_waits_for_its_child_and_reads_its_outputs(http: httpx.Client) -> None:
    publish(http, CHILD)
    publish(http, PARENT)
    parent = wait(http, start(http, "parent"))
    assert parent["status"] == "completed", parent
    call = step(parent, "call")
    assert call["status"] == "succeeded"
    child_id = call["outputs"]["execution_id"]
    assert call["outputs"] == {
        "execution_id": child_id,
        "status": "completed",
        "outputs": {"doubled": "42"},
    }
    assert step(parent, "use")["outputs"]["got"] == "42"
    child = detail(http, child_id)
    assert child["params"] == {"n": 21}
    assert child["parent"] == {"execution_id": parent["id"], "step": "call"}
    assert child["trigger"]["actor"] == "admin"
    assert child["trigger"]["source"] == parent["id"]
    assert child["chain"] == ["parent"]


def test_a_failed_child_fails_its_step_and_wait_false_does_not_wait(http: httpx.Client) -> None:
    publish(
        http,
        "id: bad-child\nsteps:\n  - {id: boom, type: script, run: 'exit 4'}\n",
    )
    publish(
        http,
        """id: bad-parent
steps:
  - {id: call, type: workflow, workflow: bad-child}
  - {id: handled, type: script, needs: [call.failed], run: "true"}
  - {id: fire-and-forget, type: workflow, workflow: bad-child, wait: false}
""",
    )
    parent = wait(http, start(http, "bad-parent"))
    call = step(parent, "call")
    assert call["status"] == "failed"
    assert call["outputs"]["status"] == "failed"
    assert "bad-child failed" in call["error"]
    assert step(parent, "handled")["status"] == "succeeded"
    forgotten = step(parent, "fire-and-forget")
    assert forgotten["status"] == "succeeded"
    assert wait(http, forgotten["outputs"]["execution_id"])["status"] == "failed"


def test_a_child_that_cannot_start_leaves_a_true_engine_log(http: httpx.Client) -> None:
    publish(http, "id: orphan-parent\nsteps:\n  - {id: call, type: workflow, workflow: ghost}\n")
    parent = wait(http, start(http, "orphan-parent"))
    assert parent["status"] == "failed"
    call = step(parent, "call")
    assert call["status"] == "failed" and call["outputs"].get("execution_id") is None
    lines = [e["message"] for e in parent["engine_log"] if e["message"].startswith("step call")]
    # What happened, in order: the step asked for its child, which could not start, so the
    # step failed. No line claims a child run exists.
    assert lines[0] == "step call is starting its child workflow", lines
    assert lines[1].startswith(
        "step call failed: could not start workflow ghost: workflow 'ghost' not found"
    ), lines
    assert len(lines) == 2, lines


def test_cancelling_the_parent_cancels_the_child(http: httpx.Client) -> None:
    publish(
        http,
        "id: slow-child\nsteps:\n  - {id: gate, type: approval, approvers: [admin]}\n",
    )
    publish(
        http,
        "id: slow-parent\nsteps:\n  - {id: call, type: workflow, workflow: slow-child}\n",
    )
    parent_id = start(http, "slow-parent")
    # The child is created in the transaction that starts the step.
    child_id = step(detail(http, parent_id), "call")["outputs"]["execution_id"]
    assert detail(http, child_id)["status"] == "paused"
    response = http.post(f"/executions/{parent_id}/cancel", json={"reason": "not today"})
    assert response.status_code == 200, response.text
    assert wait(http, parent_id)["status"] == "cancelled"
    child = wait(http, child_id)
    assert child["status"] == "cancelled"
    assert f"parent execution {parent_id} was cancelled" in child["status_reason"]


def test_nesting_stops_at_the_depth_limit_naming_the_loop(http: httpx.Client) -> None:
    for me, other in (("nest-a", "nest-b"), ("nest-b", "nest-a")):
        publish(
            http,
            f"id: {me}\nsteps:\n  - {{id: call, type: workflow, workflow: {other}}}\n",
        )
    top = wait(http, start(http, "nest-a"))
    assert top["status"] == "failed"
    current = top
    while step(current, "call")["outputs"].get("execution_id"):
        current = detail(http, step(current, "call")["outputs"]["execution_id"])
    assert current["chain"] == ["nest-a", "nest-b", "nest-a"]
    error = step(current, "call")["error"]
    assert "nest-a -> nest-b -> nest-a -> nest-b -> nest-a" in error
    assert "the loop nest-a -> nest-b -> nest-a would never end" in error


def test_outputs_name_only_what_exists(http: httpx.Client) -> None:
    text = (
        "id: typo\noutputs: {x: '{{ nodes.mak.output.v }}'}\n"
        "steps:\n  - {id: make, type: script, run: 'true'}\n"
    )
    response = http.put("/workflows/typo?publish=true", content=text, headers=YAML)
    assert response.status_code == 422, response.text
    assert "unknown step 'mak'" in response.text
    assert "outputs" in response.text


def test_a_parent_that_times_out_stops_its_child(http: httpx.Client) -> None:
    publish(
        http,
        "id: gated-child\nsteps:\n  - {id: gate, type: approval, approvers: [admin]}\n",
    )
    publish(
        http,
        "id: hasty-parent\ntimeout: 1s\n"
        "steps:\n  - {id: call, type: workflow, workflow: gated-child}\n",
    )
    parent_id = start(http, "hasty-parent")
    child_id = step(detail(http, parent_id), "call")["outputs"]["execution_id"]
    parent = wait(http, parent_id)
    assert parent["status"] == "failed"
    assert "timed out" in parent["status_reason"]
    child = wait(http, child_id)
    assert child["status"] == "cancelled"
    assert f"parent execution {parent_id} timed out" in child["status_reason"]
