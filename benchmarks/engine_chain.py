"""Engine benchmarks: print figures for the orchestration overhead on SQLite and PostgreSQL.

Not a timed test: run it with ``make bench`` (or ``python benchmarks/engine_chain.py``) and
read the numbers. Everything is real: the runtime and its local agent in this process, a real
database, real ``sh`` processes for every step.

Figures:
- chain: a 40-step sequential chain of ``true`` script steps, from the run request to
  completed (wall time), and the same 40 processes spawned back to back through the same
  executor path, so ``overhead per step = (chain - spawn) / 40``;
- dependent start latency: from one step's job end to the next step's job start (p50, p99);
- fan-out: 500 parallel no-op steps, steps per second.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from opsflow.runtime.host import RuntimeHost
from opsflow.runtime.service import RunRequest
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import JobStatus, LogLevel, LogStream, StepType
from opsflow.steps.base import CancelSignal, JobSpec
from opsflow.steps.registry import executor_for
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database
from opsflow.store.migrate import upgrade

PG_ADMIN = os.environ.get("OPSFLOW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def chain_yaml(n: int) -> str:
    lines = ["id: bench-chain", "steps:"]
    for i in range(n):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, type: script, shell: sh, run: 'true'{needs}}}")
    return "\n".join(lines) + "\n"


def fanout_yaml(n: int) -> str:
    lines = ["id: bench-fanout", "steps:"]
    for i in range(n):
        lines.append(f"  - {{id: p{i}, type: script, shell: sh, run: 'true'}}")
    return "\n".join(lines) + "\n"


def request(yaml_text: str) -> RunRequest:
    wf = load_workflow(yaml_text)
    return RunRequest(workflow_id=wf.id, definition=canonical(wf), params={})


class _Sink:
    def write(self, stream: LogStream, text: str, level: LogLevel | None = None) -> None:
        pass


async def spawn_baseline(n: int, workdir: Path) -> float:
    """The same n ``true`` script steps run back to back by the executor, no engine."""
    executor = executor_for(StepType.SCRIPT)
    t0 = time.perf_counter()
    for i in range(n):
        spec = JobSpec(
            job_id=f"b{i}",
            execution_id="bench",
            step_id=f"s{i}",
            attempt=1,
            type=StepType.SCRIPT,
            config={"shell": "sh", "run": "true"},
            workdir=workdir,
        )
        result = await executor.run(spec, _Sink(), CancelSignal())
        assert result.status == JobStatus.COMPLETED, result
    return time.perf_counter() - t0


async def run_once(host: RuntimeHost, req: RunRequest, timeout: float = 120) -> tuple[float, str]:
    """Start a run and wait for its end without adding load: the waiter wakes only when the
    execution finishes (one read then), not on every step."""
    t0 = time.perf_counter()
    execution_id = await asyncio.to_thread(host.runtime.start_execution, req)
    async with host.bus.watch_finished(execution_id) as sub:
        while True:
            ex = await asyncio.to_thread(_get, host, execution_id)
            if ex.status.terminal:
                elapsed = (ex.ended_at or 0) - ex.created_at
                assert ex.status.value == "completed", ex
                return elapsed, execution_id
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(ex.status)
            await sub.wait(1.0)


def _get(host: RuntimeHost, execution_id: str) -> runs_store.Execution:
    with host.runtime.db.read() as s:
        return runs_store.get_execution(s, execution_id)


def _jobs(host: RuntimeHost, execution_id: str) -> list[jobs_store.Job]:
    with host.runtime.db.read() as s:
        return jobs_store.jobs_of_execution(s, execution_id)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def bench(url: str, label: str, rounds: int, steps: int, fanout: int) -> dict[str, Any]:
    db = Database(url)
    with tempfile.TemporaryDirectory() as tmp:
        host = RuntimeHost(db, work_dir=Path(tmp) / "work", concurrency=8)
        await host.start()
        try:
            chain_req = request(chain_yaml(steps))
            await run_once(host, chain_req)  # warm-up: imports, caches, connections
            chains, spawns, latencies = [], [], []
            for _ in range(rounds):
                elapsed, eid = await run_once(host, chain_req)
                chains.append(elapsed)
                spawns.append(await spawn_baseline(steps, Path(tmp)))
                jobs = sorted(_jobs(host, eid), key=lambda j: int(j.step_id[1:]))
                for prev, nxt in itertools.pairwise(jobs):
                    assert prev.ended_at is not None and nxt.started_at is not None
                    latencies.append((nxt.started_at - prev.ended_at) * 1000)
            fan_elapsed, _ = await run_once(host, request(fanout_yaml(fanout)), timeout=600)
        finally:
            await host.stop()
            db.dispose()
    chain = statistics.median(chains)
    spawn = statistics.median(spawns)
    return {
        "backend": label,
        "chain_s": chain,
        "spawn_s": spawn,
        "overhead_ms": (chain - spawn) / steps * 1000,
        "latency_p50_ms": pct(latencies, 50),
        "latency_p99_ms": pct(latencies, 99),
        "fanout_steps_per_s": fanout / fan_elapsed,
        "fanout_s": fan_elapsed,
    }


def pg_database() -> tuple[str, str]:
    import psycopg

    name = f"opsflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--fanout", type=int, default=500)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db"
                upgrade(url)
                results.append(
                    asyncio.run(bench(url, "sqlite", args.rounds, args.steps, args.fanout))
                )
        else:
            url, name = pg_database()
            try:
                upgrade(url)
                results.append(
                    asyncio.run(bench(url, "postgresql", args.rounds, args.steps, args.fanout))
                )
            finally:
                drop_pg(name)
    print(f"{args.steps}-step chain (median of {args.rounds}), {args.fanout}-step fan-out")
    header = (
        f"{'backend':<11}{'chain':>9}{'spawn':>9}{'overhead/step':>15}"
        f"{'start p50':>11}{'start p99':>11}{'fan-out':>14}"
    )
    print(header)
    for r in results:
        print(
            f"{r['backend']:<11}{r['chain_s']:>8.3f}s{r['spawn_s']:>8.3f}s"
            f"{r['overhead_ms']:>12.2f} ms"
            f"{r['latency_p50_ms']:>8.2f} ms{r['latency_p99_ms']:>8.2f} ms"
            f"{r['fanout_steps_per_s']:>9.0f} st/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
