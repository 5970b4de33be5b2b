"""Round trips and time of one chain step's transactions, counted at the driver, in process.

Not a timed test: run it by hand and read the table. It makes its own PostgreSQL database
(dropped afterwards) or SQLite file, starts a chain of ``--steps`` script steps through the
runtime, and plays the server's own agent for each job: a claim that starts the job
(``start=True``) and the end report, with ``--lines`` log lines. Around each call it counts
what went to the database:

- PostgreSQL: psycopg's calls, each a round trip (psycopg's own ``BEGIN`` before a
  transaction's first statement and the ``COMMIT`` included; a pipelined ``executemany`` one,
  a ``COPY`` two), wrapped here on psycopg's classes (nothing in ``src/`` knows about it);
- SQLite: the statements SQLAlchemy sends (each a call through the driver), ``BEGIN
  IMMEDIATE`` and ``COMMIT`` included.

It prints, per phase (claim, report), the round trips of a middle step by kind, the
wall-clock p50 / p90 of the phase over the chain's middle steps and the p50 of the calling
thread's CPU time in it (what the round trips cost in Python: SQLAlchemy, psycopg, the
reconcile).

    .venv/bin/python benchmarks/round_trips.py                       # PostgreSQL, 40 steps
    .venv/bin/python benchmarks/round_trips.py --backend sqlite --lines 0
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Trips:
    """The round trips counted since the last `take`, by kind."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        self.kinds[kind] += n

    def take(self) -> Counter[str]:
        out, self.kinds = self.kinds, Counter()
        return out


TRIPS = Trips()


def _kind(query: object) -> str:
    text = query if isinstance(query, str) else getattr(query, "as_string", lambda _c: "")(None)
    words = str(text).split()
    if not words:
        return "?"
    verb = words[0].upper()
    if verb == "WITH":
        verb = "WITH " + next((w.upper() for w in words if w.upper() in ("INSERT",)), "")
    table = next(
        (words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() in ("INTO", "FROM", "UPDATE")),
        "",
    )
    return f"{verb} {table}".strip()


def count_psycopg() -> None:
    """Wrap psycopg's cursor and connection calls to count their round trips."""
    cursor = psycopg.Cursor
    connection = psycopg.Connection
    execute, executemany, copy = cursor.execute, cursor.executemany, cursor.copy
    commit, rollback = connection.commit, connection.rollback

    def begins(conn: psycopg.Connection[Any]) -> None:
        if not conn.autocommit and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            TRIPS.add("BEGIN")

    @functools.wraps(execute)
    def counted_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        begins(self.connection)
        TRIPS.add(_kind(query))
        return execute(self, query, *args, **kw)

    @functools.wraps(executemany)
    def counted_executemany(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        begins(self.connection)
        TRIPS.add(_kind(query) + " (executemany)")
        return executemany(self, query, *args, **kw)

    @contextlib.contextmanager
    def counted_copy(self: psycopg.Cursor[Any], statement: Any, *args: Any, **kw: Any) -> Any:
        begins(self.connection)
        TRIPS.add("COPY", 2)
        with copy(self, statement, *args, **kw) as c:
            yield c

    def ending(fn: Callable[..., None], name: str) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: psycopg.Connection[Any]) -> None:
            if self.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                TRIPS.add(name)
            fn(self)

        return wrapper

    cursor.execute = counted_execute  # type: ignore[method-assign]
    cursor.executemany = counted_executemany  # type: ignore[method-assign]
    cursor.copy = counted_copy  # type: ignore[method-assign]
    connection.commit = ending(commit, "COMMIT")  # type: ignore[method-assign]
    connection.rollback = ending(rollback, "ROLLBACK")  # type: ignore[method-assign]


def count_sqlite(engine: Any) -> None:
    """Count the statements SQLAlchemy sends to SQLite (its explicit BEGIN included)."""
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _on(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        TRIPS.add(_kind(statement))

    @event.listens_for(engine, "commit")
    def _commit(_c: Any) -> None:
        TRIPS.add("COMMIT")


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="round-trips-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'opsflow.db'}"
        return
    name = f"round_trips_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(backend: str, steps: int, lines: int) -> None:
    from opsflow.agent.protocol import JobRef, JobReport, LogLine
    from opsflow.runtime.service import RunRequest, Runtime
    from opsflow.spec.loader import canonical, load_workflow
    from opsflow.status import JobStatus, LogStream
    from opsflow.store.db import Database
    from opsflow.store.migrate import upgrade

    chain = "id: trips\nsteps:\n" + "\n".join(
        f"  - {{id: s{i}, type: script, shell: sh, run: 'true'"
        + (f", needs: [s{i - 1}]" if i else "")
        + "}"
        for i in range(steps)
    )
    with database(backend) as url:
        upgrade(url)
        db = Database(url)
        if backend == "postgresql":
            count_psycopg()
        else:
            count_sqlite(db.engine)
        try:
            runtime = Runtime(db)
            workflow = load_workflow(chain)
            runtime.start_execution(
                RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
            )
            phases: dict[str, list[tuple[float, float, Counter[str]]]] = {
                "claim": [],
                "report": [],
            }
            for _ in range(steps):
                TRIPS.take()
                began, cpu = time.perf_counter(), time.thread_time()
                (job,) = runtime.claim(
                    agent_id="trips", pools=["default"], labels={}, limit=1, start=True
                )
                phases["claim"].append(
                    (time.perf_counter() - began, time.thread_time() - cpu, TRIPS.take())
                )
                assert job.lease_token is not None
                ref = JobRef(job_id=job.id, lease_token=job.lease_token, epoch=job.lease_epoch)
                report = JobReport(
                    job=ref,
                    status=JobStatus.COMPLETED,
                    exit_code=0,
                    lines=[
                        LogLine(seq, time.time(), LogStream.STDOUT, f"line {seq}")
                        for seq in range(1, lines + 1)
                    ],
                )
                began, cpu = time.perf_counter(), time.thread_time()
                runtime.finish_job(report)
                phases["report"].append(
                    (time.perf_counter() - began, time.thread_time() - cpu, TRIPS.take())
                )
        finally:
            db.dispose()
    print(f"{backend}, {steps}-step chain, {lines} log line(s) per report, the server's own agent")
    for phase, taken in phases.items():
        middle = taken[1:-1]  # the first and last steps also start or end the execution
        times = sorted(t * 1000 for t, _, _ in middle)
        cpu = statistics.median(c * 1000 for _, c, _ in middle)
        kinds = middle[len(middle) // 2][2]
        p90 = times[int(len(times) * 0.9)]
        print(
            f"  {phase:7} {sum(kinds.values()):2} round trips, p50 "
            f"{statistics.median(times):.2f} ms, p90 {p90:.2f} ms, CPU p50 {cpu:.2f} ms: "
            + ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items())
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lines", type=int, default=1, help="log lines per end report")
    args = parser.parse_args(argv)
    run(args.backend, args.steps, args.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
