"""How many SQL statements and transactions one step of a chain costs, so a regression shows.

A step's path is its end report, which also queues the next step's job and leases it to the
agent's waiting claim in the same commit, and (for a remote agent) its start. The counts are
printed (``pytest -s``) and held to a budget: a change that adds a round trip to every step
fails here, and one that removes some should lower the budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from opsflow.agent.protocol import ClaimRequest, JobRef, JobReport, LogLine
from opsflow.runtime.agent_service import AgentService
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import ExecutionStatus, JobStatus, LogStream
from opsflow.store import runs as runs_store
from opsflow.store.db import Database

STEPS = 6
CHAIN = "id: counted\nsteps:\n" + "\n".join(
    f"  - {{id: s{i}, type: script, shell: sh, run: 'true'"
    + (f", needs: [s{i - 1}]" if i else "")
    + "}"
    for i in range(STEPS)
)

# Per middle step of the chain (measured: see the printed counts); SQLite's count includes
# its explicit BEGIN IMMEDIATE statements, one per transaction. The agent's claim waits (it
# claims again as soon as it took a job) and the report's write leases the next job to it in
# the same transaction (`AgentService` enlists waiting claims, `AgentJobs.write_serving`): no
# claim transaction. A remote agent's step is then that write and its start. The agent names
# the job by id, token and epoch only; execution and step come from the server's row, which
# the start and the report need not read again when this process handed that very lease out
# (the start's and the end's compare-and-set on the lease token fence them). The server's own
# agent asks the claim to start the job (`ClaimRequest.start`): no start transaction. The
# report's reconcile reads the ended step, the step that needs it and their jobs in one
# statement (``jobs.steps_and_attempts``). The end report carries one log line: its seq is
# recorded by the end's own statement on PostgreSQL, by a second one on SQLite; the line
# itself goes in through the driver (``logs._bulk_insert``), not counted here. On PostgreSQL
# the reconcile's writes (2 step updates, the next job, engine log, events) are one statement
# (``store.writes``); SQLite sends them one by one.
STATEMENT_BUDGET = {
    ("remote", "sqlite"): 15,
    ("remote", "postgresql"): 8,
    ("local", "sqlite"): 13,
    ("local", "postgresql"): 7,
}
TRANSACTION_BUDGET = {"remote": 2, "local": 1}


class Tally:
    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.transactions = 0
        # Each statement that reads the steps table, with how many parameters it bound.
        self.step_reads: list[tuple[str, int]] = []

    def total(self) -> int:
        return sum(self.statements.values())


@contextmanager
def counting(db: Database) -> Iterator[Tally]:
    tally = Tally()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        verb = words[0].upper() if words else "?"
        table = next(
            (words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() in ("INTO", "FROM")),
            "",
        )
        if verb == "UPDATE" and len(words) > 1:
            table = words[1]
        tally.statements[f"{verb} {table}".strip()] += 1
        if verb == "SELECT" and "execution_steps" in statement:
            params = args[0] if args else ()
            tally.step_reads.append((statement, len(params or ())))

    def on_begin(conn: Any) -> None:
        tally.transactions += 1

    event.listen(db.engine, "before_cursor_execute", on_statement)
    event.listen(db.engine, "begin", on_begin)
    try:
        yield tally
    finally:
        event.remove(db.engine, "before_cursor_execute", on_statement)
        event.remove(db.engine, "begin", on_begin)


async def _chain_steps(database: Database, agent: str) -> tuple[str, list[Tally]]:
    """Run the chain through `AgentService` as an agent does (a claim waiting while its job
    runs); one tally per step, from its report to the next job in the agent's hands."""
    local = agent == "local"
    runtime = Runtime(database)
    service = AgentService(runtime.jobs, runtime.bus, lease_seconds=15.0, heartbeat_seconds=5.0)
    workflow = load_workflow(CHAIN)
    execution_id = runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )
    per_step: list[Tally] = []
    claim_ids = iter(f"claim-{i:04d}" for i in range(STEPS + 2))

    def request() -> ClaimRequest:
        return ClaimRequest(
            agent_id="counter",
            pools=["default"],
            limit=4,
            wait=10,
            start=local,
            claim_id=None if local else next(claim_ids),
        )

    (job,) = await service.claim(request())
    if not local:
        await service.start(job.ref)
    for i in range(STEPS):
        with counting(database) as tally:
            waiting = asyncio.create_task(service.claim(request())) if i < STEPS - 1 else None
            await asyncio.sleep(0)  # the claim waits (enlisted) before the report arrives
            await service.report(
                JobReport(
                    job=job.ref,
                    status=JobStatus.COMPLETED,
                    exit_code=0,
                    lines=[LogLine(1, time.time(), LogStream.STDOUT, "done")],
                )
            )
            if waiting is not None:
                (job,) = await asyncio.wait_for(waiting, 10)
                if local:
                    assert job.started
                else:
                    await service.start(job.ref)
        per_step.append(tally)
    return execution_id, per_step


@pytest.mark.parametrize("agent", ["remote", "local"])
def test_a_chain_step_costs_a_bounded_number_of_statements(database: Database, agent: str) -> None:
    execution_id, per_step = asyncio.run(_chain_steps(database, agent))
    with database.read() as session:
        assert runs_store.get_execution(session, execution_id).status == ExecutionStatus.COMPLETED

    middle = per_step[1:-1]  # the first and last steps also start or end the execution
    worst = max(middle, key=Tally.total)
    print(
        f"\n[{database.dialect}, {agent} agent] per chain step: {worst.total()} statements in "
        f"{worst.transactions} transactions: "
        + ", ".join(f"{name} x{n}" for name, n in sorted(worst.statements.items()))
    )
    assert worst.total() <= STATEMENT_BUDGET[agent, database.dialect], worst.statements
    assert worst.transactions <= TRANSACTION_BUDGET[agent]


def fanout(width: int) -> str:
    return f"id: wide-{width}\nsteps:\n" + "\n".join(
        f"  - {{id: p{i}, type: script, shell: sh, run: 'true'}}" for i in range(width)
    )


def _one_end_of_a_fanout(database: Database, width: int) -> Tally:
    """The statements of one job's end (neither the first nor the last) of a fan-out."""
    runtime = Runtime(database)
    workflow = load_workflow(fanout(width))
    runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )
    jobs = runtime.claim(agent_id="counter", pools=["default"], labels={}, limit=width)
    assert len(jobs) == width
    refs = []
    for job in jobs:
        assert job.lease_token is not None
        refs.append(JobRef(job_id=job.id, lease_token=job.lease_token, epoch=job.lease_epoch))
        runtime.start_job(refs[-1])
    for ref in refs[:3]:
        runtime.finish_job(JobReport(job=ref, status=JobStatus.COMPLETED, exit_code=0))
    with counting(database) as tally:
        runtime.finish_job(JobReport(job=refs[3], status=JobStatus.COMPLETED, exit_code=0))
    return tally


def test_a_job_end_reads_its_step_alone_however_wide_the_run(database: Database) -> None:
    narrow = _one_end_of_a_fanout(database, 8)
    wide = _one_end_of_a_fanout(database, 300)
    print(
        f"\n[{database.dialect}] one job's end of a fan-out of 8 / 300 steps: "
        f"{narrow.total()} / {wide.total()} statements: "
        + ", ".join(f"{name} x{n}" for name, n in sorted(wide.statements.items()))
    )
    assert wide.statements == narrow.statements
    # The reconcile reads the step by name (and the steps that need it: none here), not the
    # whole execution; the counts kept with the execution say whether it has finished.
    assert wide.step_reads, "the job's end read no step"
    for statement, bound in wide.step_reads:
        assert " IN " in statement.upper() and bound <= 3, statement
