"""What one job's end costs the server as its execution grows: fan-outs of 100 and 2,000 steps.

Not a timed test: run it and read the numbers. It drives the runtime in this process the way
an agent does (claim every job of a fan-out, report each start, then each end), with no step
processes, so the figure is the server's own work per job end: the lease check, the end's
record and the reconcile that follows, on a real SQLite file and a real PostgreSQL database.
It prints the median wall time per end and, for SQLite (which runs in this process), the CPU
time, which the machine's load disturbs far less.

    .venv/bin/python benchmarks/reconcile_cost.py                  # 100 and 2,000, 3 rounds
    .venv/bin/python benchmarks/reconcile_cost.py --widths 100,500 --backends sqlite
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from opsflow.agent.protocol import JobRef, JobReport
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import ExecutionStatus, JobStatus
from opsflow.store import runs as runs_store
from opsflow.store.db import Database
from opsflow.store.migrate import upgrade

PG_ADMIN = os.environ.get("OPSFLOW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def fanout_yaml(width: int) -> str:
    return f"id: cost-{width}\nsteps:\n" + "\n".join(
        f"  - {{id: p{i}, type: script, shell: sh, run: 'true'}}" for i in range(width)
    )


def one_run(db: Database, width: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per job end over one fan-out of ``width`` steps."""
    runtime = Runtime(db)
    workflow = load_workflow(fanout_yaml(width))
    execution_id = runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )
    refs: list[JobRef] = []
    while len(refs) < width:
        jobs = runtime.claim(agent_id="bench", pools=["default"], labels={}, limit=500)
        for job in jobs:
            assert job.lease_token is not None
            ref = JobRef(job_id=job.id, lease_token=job.lease_token, epoch=job.lease_epoch)
            runtime.start_job(ref)
            refs.append(ref)
    walls: list[float] = []
    cpus: list[float] = []
    for ref in refs:
        wall, cpu = time.perf_counter(), time.process_time()
        runtime.finish_job(JobReport(job=ref, status=JobStatus.COMPLETED, exit_code=0))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    with db.read() as session:
        assert runs_store.get_execution(session, execution_id).status == ExecutionStatus.COMPLETED
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def pg_database() -> str:
    name = f"opsflow_cost_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(backend: str, widths: list[int], rounds: int) -> dict[int, list[tuple[float, float]]]:
    out: dict[int, list[tuple[float, float]]] = {w: [] for w in widths}
    for _ in range(rounds):
        for width in widths:  # interleaved, so a change of load hits every width alike
            with tempfile.TemporaryDirectory(prefix="opsflow-cost-") as tmp:
                pg = pg_database() if backend == "postgresql" else None
                url = (
                    f"{PG_ADMIN.rsplit('/', 1)[0]}/{pg}" if pg else f"sqlite:///{Path(tmp) / 'db'}"
                )
                try:
                    upgrade(url)
                    db = Database(url)
                    try:
                        out[width].append(one_run(db, width))
                    finally:
                        db.engine.dispose()
                finally:
                    if pg:
                        drop_pg(pg)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--widths", default="100,2000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",") if w]
    print(f"one job's end, in process, median over each run's ends; {args.rounds} rounds")
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        results = measure(backend, widths, args.rounds)
        base: float | None = None
        for width in widths:
            walls = [r[0] for r in results[width]]
            cpus = [r[1] for r in results[width]]
            wall = statistics.median(walls)
            base = base or wall
            cpu = f", CPU {statistics.median(cpus):.2f} ms" if backend == "sqlite" else ""
            print(
                f"{backend:<10} fan-out {width:>5}: {wall:6.2f} ms per end "
                f"({min(walls):.2f}-{max(walls):.2f}){cpu}; {wall / base:.2f}x the first width"
            )
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
