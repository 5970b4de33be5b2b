"""An agent busy with a long job claims nothing, so its heartbeats keep its stored presence
fresh: ``agents.last_seen`` follows them, written at most every half lease (a statement
count shows the heartbeats in between write nothing to ``agents``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from opsflow.agent.protocol import JobRef
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.store import agents as agents_store
from opsflow.store.db import Database

LEASE = 4.0
LONG = "id: long\nsteps:\n  - {id: work, type: script, shell: sh, run: 'sleep 600'}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_heartbeats_renew_the_agents_presence_at_most_every_half_lease(
    database: Database,
) -> None:
    clock = Clock()
    runtime = Runtime(database, lease_seconds=LEASE, clock=clock)
    workflow = load_workflow(LONG)
    runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )
    runtime.jobs.register(agent_id="busy", pools=["default"], labels={}, version="1", hostname="h")
    (job,) = runtime.claim(agent_id="busy", pools=["default"], labels={}, limit=1)
    assert job.lease_token is not None
    ref = JobRef(job_id=job.id, lease_token=job.lease_token, epoch=job.lease_epoch)
    runtime.start_job(ref)

    writes: list[str] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE AGENTS"):
            writes.append(statement)

    def last_seen() -> float:
        with database.read() as session:
            return agents_store.get_agent(session, "busy").last_seen

    first = last_seen()
    event.listen(database.engine, "before_cursor_execute", on_statement)
    try:
        # 40 heartbeats 0.25 s apart (10 s, 2.5 leases): no claim meanwhile.
        for _ in range(40):
            clock.now += 0.25
            runtime.heartbeat(ref)
    finally:
        event.remove(database.engine, "before_cursor_execute", on_statement)
    assert clock.now - first == 10.0
    assert last_seen() >= clock.now - LEASE / 2  # fresh: never older than half a lease
    assert 4 <= len(writes) <= 10.0 / (LEASE / 2) + 1  # one write per half lease, not 40
