"""Compiling a workflow into the engine's graph."""

from __future__ import annotations

from opsflow.engine.model import Edge
from opsflow.spec.graph import to_graph
from opsflow.status import Join, Outcome, StepType
from tests.unit.spec.support import load


def test_needs_become_edges_and_durations_become_seconds() -> None:
    graph = to_graph(
        load(
            """
            id: g
            timeout: 2h
            steps:
              - {id: plan, type: terraform, action: plan}
              - {id: ok, type: approval, needs: [plan], timeout: 0}
              - {id: apply, type: terraform, action: apply, needs: [ok], plan_from: plan,
                 retries: 2, retry_delay: 1m, timeout: 30m}
              - {id: sorry, type: notify, channel: ops, message: "no", needs: [ok.rejected]}
              - {id: undo, type: script, run: "true", needs: [apply.failed, sorry], join: any,
                 allow_skip: true}
              - {id: wait, type: approval, needs: [undo.always], timeout: 1h}
            """
        )
    )
    assert graph.timeout == 7200.0
    apply, undo, wait = graph.step("apply"), graph.step("undo"), graph.step("wait")
    assert graph.step("ok").timeout is None  # 0 means wait forever
    assert graph.step("ok").type == StepType.APPROVAL
    assert apply.needs == (Edge("ok", Outcome.SUCCESS),)
    assert (apply.retries, apply.retry_delay, apply.timeout) == (2, 60.0, 1800.0)
    assert graph.step("sorry").needs == (Edge("ok", Outcome.REJECTED),)
    assert undo.needs == (Edge("apply", Outcome.FAILED), Edge("sorry", Outcome.SUCCESS))
    assert (undo.join, undo.allow_skip, undo.timeout) == (Join.ANY, True, None)
    assert wait.needs == (Edge("undo", Outcome.ALWAYS),) and wait.timeout == 3600.0
    assert [s.id for s in graph.steps] == ["plan", "ok", "apply", "sorry", "undo", "wait"]
