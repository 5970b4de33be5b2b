"""Workflow steps and workflow triggers under ``kill -9`` of the server at random moments.

A parent's ``workflow`` step starts its child in the transaction that starts the step, and the
child's end answers the step in the transaction that ends the child; a workflow trigger fires
in the transaction that ends the run it follows. So whatever line the server dies at, once it
is started again every parent completes with its child's outputs, each parent step has
exactly one child, and each parent run has exactly one follower.

The random schedule is seeded; the seed is printed, and ``OPSFLOW_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from .conftest import CrashServer
from .test_kill_restart import explain, step_of, unfinished

pytestmark = pytest.mark.slow

CHILD = """
id: crash-child
params: {n: {type: integer}}
outputs: {doubled: "{{ nodes.double.output.value }}"}
steps:
  - id: double
    type: script
    shell: sh
    retries: 5
    env: {N: "{{ params.n }}"}
    run: sleep 0.2; echo "value=$((N * 2))" >> "$OPSFLOW_OUTPUT"
"""
PARENT = """
id: crash-parent
params: {n: {type: integer}}
steps:
  - id: call
    type: workflow
    workflow: crash-child
    params: {n: "{{ params.n }}"}
  - id: use
    type: script
    shell: sh
    needs: [call]
    retries: 5
    env: {GOT: "{{ nodes.call.output.outputs.doubled }}"}
    run: sleep 0.1; echo "got=$GOT" >> "$OPSFLOW_OUTPUT"
"""
FOLLOWER = """
id: crash-follower
triggers:
  - {type: workflow, workflow: crash-parent}
steps:
  - {id: one, type: script, shell: sh, retries: 5, run: sleep 0.1}
"""
KILLS = 4


def test_kill_9_never_loses_or_doubles_a_child_or_a_follower(
    crash_server: Callable[..., CrashServer],
) -> None:
    seed = int(os.environ.get("OPSFLOW_CRASH_SEED") or time.time_ns() % 2**32)
    print(f"\ncrash schedule seed: {seed} (replay with OPSFLOW_CRASH_SEED={seed})")
    rng = random.Random(seed)
    server = crash_server(lease=2.0, heartbeat=0.3)
    # Four kills may lose one step's attempts three times in a row, which fails it whatever
    # retries are left (the agent-lost limit, tested on its own): this test is about chains,
    # so every step here lives on its retries alone.
    server.env["OPSFLOW_AGENT_LOST_LIMIT"] = str(KILLS + 1)
    api = server.start()
    for workflow_id, text in (
        ("crash-child", CHILD),
        ("crash-parent", PARENT),
        ("crash-follower", FOLLOWER),
    ):
        api.publish(workflow_id, text)
    parents = [api.run("crash-parent", {"n": n}) for n in range(2)]
    for _ in range(KILLS):
        parents.append(api.run("crash-parent", {"n": len(parents)}))
        time.sleep(rng.uniform(0.05, 0.9))  # the random moment of the kill
        server.kill()
        api = server.start()
    ended: set[str] = set()
    api.wait_for(
        "every parent ends",
        lambda: not unfinished(api, parents, ended),
        timeout=90,
        explain=explain(api, parents),
    )
    children = [
        e["id"]
        for e in api.client.get(
            "/executions", params={"workflow": "crash-child", "limit": 500}
        ).json()["items"]
    ]
    followers = [
        e["id"]
        for e in api.client.get(
            "/executions", params={"workflow": "crash-follower", "limit": 500}
        ).json()["items"]
    ]
    api.wait_for(
        "every child and follower ends",
        lambda: not unfinished(api, children + followers, ended),
        timeout=60,
        explain=explain(api, children + followers),
    )
    problems: list[str] = []
    for n, parent_id in enumerate(parents):
        parent = api.execution(parent_id)
        call = step_of(parent, "call")
        if parent["status"] != "completed":
            problems.append(
                f"parent {parent_id} ended {parent['status']}: {parent['status_reason']}"
            )
        elif call["outputs"].get("outputs") != {"doubled": str(2 * n)}:
            problems.append(f"parent {parent_id} step call has outputs {call['outputs']}")
    parent_of = Counter(api.execution(c)["parent"]["execution_id"] for c in children)
    problems += [f"parent {p} has {k} children" for p, k in parent_of.items() if k != 1]
    problems += [f"parent {p} has no child" for p in parents if p not in parent_of]
    source_of = Counter(api.execution(f)["trigger"]["source"] for f in followers)
    problems += [f"parent {p} has {source_of[p]} followers" for p in parents if source_of[p] != 1]
    assert not problems, "\n".join(problems) + "\n" + explain(api, parents)()
