"""A seeded run history for analytics: executions with their steps, jobs on several agents and
approval gates, written straight into a migrated database in bulk (Core inserts, thousands of
rows per statement), reproducible from a seed.

Used by the analytics tests (which compare the API with their own SQL and Python over the
same rows), the e2e analytics page test and ``benchmarks/analytics_bench.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert

from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.store.approvals import ApprovalRow
from opsflow.store.db import Database
from opsflow.store.jobs import JOBS
from opsflow.store.runs import EX, ST

AP = cast(Table, ApprovalRow.__table__)
AGENTS = ("local", "edge-1", "edge-2", "gpu-1")
# Status weights: mostly completed, some failed, a few of everything else. Only ended runs:
# a server started on the history reconciles every active run at start-up.
_STATUSES = [
    (ExecutionStatus.COMPLETED, 72),
    (ExecutionStatus.FAILED, 15),
    (ExecutionStatus.ERROR, 2),
    (ExecutionStatus.CANCELLED, 7),
    (ExecutionStatus.REJECTED, 4),
]


def _definition(workflow_id: str, gated: bool) -> dict[str, Any]:
    """The definition the seeded runs pin: build, (approve,) deploy."""
    steps: list[dict[str, Any]] = [{"id": "build", "type": "script", "run": "true"}]
    if gated:
        steps.append({"id": "approve", "type": "approval", "needs": ["build"]})
    deploy_needs = ["approve"] if gated else ["build"]
    steps.append({"id": "deploy", "type": "script", "needs": deploy_needs, "run": "true"})
    return {"id": workflow_id, "name": workflow_id, "steps": steps}


@dataclass(frozen=True)
class Seeded:
    executions: int
    since: float
    until: float
    workflows: list[str]


def seed_history(
    db: Database,
    *,
    executions: int,
    until: float,
    days: float,
    workflows: int = 12,
    seed: int = 7,
    test_runs: int = 0,
    batch: int = 5000,
) -> Seeded:
    """Write ``executions`` runs created uniformly over ``days`` days before ``until`` (epoch
    seconds), over ``workflows`` workflows (``wf-00`` runs most, by a Zipf-like weight), plus
    ``test_runs`` draft test runs analytics must leave out. Each run has a ``build`` and a
    ``deploy`` script step with one job each (a failed run's deploy failed), and every third
    run an approval gate between them."""
    rng = random.Random(seed)
    names = [f"wf-{i:02d}" for i in range(workflows)]
    weights = [1.0 / (i + 1) for i in range(workflows)]
    statuses = [s for s, _ in _STATUSES]
    status_weights = [w for _, w in _STATUSES]
    since = until - days * 86400.0
    definitions = {(w, g): _definition(w, g) for w in names for g in (False, True)}
    rows: dict[str, list[dict[str, Any]]] = {"ex": [], "st": [], "jobs": [], "ap": []}

    def flush() -> None:
        with db.session() as session:
            conn = session.connection()
            for table, key in ((EX, "ex"), (ST, "st"), (JOBS, "jobs"), (AP, "ap")):
                if rows[key]:
                    conn.execute(insert(table), rows[key])
                    rows[key].clear()

    for n in range(executions + test_runs):
        test_run = n >= executions
        eid = f"ex{seed:02d}{n:08d}"
        wf = rng.choices(names, weights)[0]
        status = rng.choices(statuses, status_weights)[0]
        created = rng.uniform(since, until - 1.0)
        started = created + rng.uniform(0.05, 2.0)
        gate = n % 3 == 0
        build = rng.uniform(1.0, 30.0) * (1 + names.index(wf) % 3)
        deploy = rng.uniform(0.5, 90.0)
        wait = rng.uniform(10.0, 3600.0) if gate else 0.0
        ended = started + build + wait + deploy if status.terminal else None
        rows["ex"].append(
            {
                "id": eid,
                "workflow_id": wf,
                "version": None if test_run else 1,
                "test_run": test_run,
                "definition": definitions[(wf, gate)],
                "status": status.value,
                "status_reason": "",
                "trigger_type": "manual",
                "trigger": {},
                "params": {},
                "started_by": "admin",
                "created_at": created,
                "started_at": started,
                "ended_at": ended,
            }
        )
        b_end = started + build
        deploy_status = {
            ExecutionStatus.COMPLETED: StepStatus.SUCCEEDED,
            ExecutionStatus.FAILED: StepStatus.FAILED,
            ExecutionStatus.ERROR: StepStatus.FAILED,
        }.get(status)
        steps: list[tuple[str, str, StepStatus, float, float | None]] = [
            ("build", "script", StepStatus.SUCCEEDED, started, b_end)
        ]
        if gate:
            rejected = status == ExecutionStatus.REJECTED
            gate_status = StepStatus.REJECTED if rejected else StepStatus.APPROVED
            gate_end = b_end + wait
            steps.append(("approve", "approval", gate_status, b_end, gate_end))
            rows["ap"].append(
                {
                    "id": f"ap{eid}",
                    "execution_id": eid,
                    "step_id": "approve",
                    "round": 1,
                    "status": "rejected" if rejected else "approved",
                    "message": "",
                    "approvers": [],
                    "min_approvals": 1,
                    "allow_self_approval": True,
                    "opened_at": b_end,
                    "decided_at": gate_end,
                    "decided_by": "admin",
                }
            )
        d_start = b_end + wait
        if deploy_status is not None:
            steps.append(("deploy", "script", deploy_status, d_start, d_start + deploy))
        for pos, (sid, stype, st, s_at, e_at) in enumerate(steps):
            rows["st"].append(
                {
                    "execution_id": eid,
                    "step_id": sid,
                    "position": pos,
                    "type": stype,
                    "status": st.value,
                    "entered_at": s_at,
                    "started_at": s_at,
                    "ended_at": e_at,
                    "retry_base": 0,
                    "user_skipped": False,
                    "outputs": {},
                }
            )
            if stype != "script":
                continue
            job_status = JobStatus.COMPLETED if st == StepStatus.SUCCEEDED else JobStatus.FAILED
            rows["jobs"].append(
                {
                    "id": f"j{eid}{sid}",
                    "execution_id": eid,
                    "step_id": sid,
                    "attempt": 1,
                    "type": "script",
                    "status": job_status.value,
                    "pool": "default",
                    "created_at": s_at,
                    "dispatched_at": s_at,
                    "started_at": s_at,
                    "ended_at": e_at,
                    "agent_id": rng.choices(AGENTS, (5, 3, 2, 1))[0],
                }
            )
        if len(rows["ex"]) >= batch:
            flush()
    flush()
    return Seeded(executions=executions, since=since, until=until, workflows=names)
