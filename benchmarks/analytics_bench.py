"""Analytics query time over a large history, through a real server.

Not a timed test: run it by hand and read the table. Each backend gets a fresh database
(a SQLite file, or a new PostgreSQL database), migrated, then seeded in bulk with
``--executions`` runs spread over ``--days`` days (each with two script steps and their jobs on
four agents, every third with an approval gate; see ``tests/history.py``); a PostgreSQL
database then gets a ``VACUUM ANALYZE``, as autovacuum gives a history that grew over months
(statistics, and the visibility map index-only scans need). A real ``opsflow
server`` (no local agent) then answers ``GET /api/v1/analytics`` for several windows; each
figure is the median (and min) over ``--rounds`` requests, measured by the client from request
to parsed answer, after one warm-up request. The same windows are then computed in this process
(`opsflow.store.analytics`, no HTTP): wall time and this process's CPU time
(``time.process_time``). On SQLite the query runs in this process, so its CPU time is the work
the database did, whatever else the machine is doing; on PostgreSQL it is only the client's.
``uptime``'s load average is printed, since the machine is shared.

Target (issue 20): < 300 ms on SQLite for 30 days of a 100,000-execution history.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from server_bench import free_port, pg_database, serving  # noqa: E402
from tests.history import seed_history  # noqa: E402

from opsflow.store import analytics  # noqa: E402
from opsflow.store.db import Database  # noqa: E402
from opsflow.store.migrate import upgrade  # noqa: E402

DAY = 86400.0


@contextlib.contextmanager
def server(db_url: str) -> Iterator[httpx.Client]:
    """A started server on ``db_url``; its API client as the bootstrap admin."""
    with tempfile.TemporaryDirectory(prefix="opsflow-analyticsbench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        env["OPSFLOW_ADMIN_PASSWORD"] = "bench-admin-password"
        argv = [str(Path(sys.executable).parent / "opsflow"), "server", "--data-dir", str(data)]
        argv += ["--port", str(port), "--host", "127.0.0.1", "--no-local-agent", "--db", db_url]
        log = Path(tmp) / "server.log"
        base = f"http://127.0.0.1:{port}"
        with serving(argv, env, log, base):
            token = (data / "admin-token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=120) as api:
                yield api


def timed(api: httpx.Client, params: dict[str, str], rounds: int) -> tuple[float, float, int]:
    """Median and min milliseconds of ``rounds`` requests, and the executions counted."""
    api.get("/analytics", params=params).raise_for_status()  # warm-up
    times: list[float] = []
    total = 0
    for _ in range(rounds):
        start = time.perf_counter()
        response = api.get("/analytics", params=params)
        response.raise_for_status()
        total = response.json()["summary"]["total_executions"]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times), total


def in_process(db: Database, window: analytics.Window, rounds: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of computing ``window`` in this process."""
    with db.read() as session:
        analytics.analytics(session, window)  # warm-up
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        with db.read() as session:
            analytics.analytics(session, window)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def run(backend: str, db_url: str, executions: int, days: float, rounds: int) -> None:
    upgrade(db_url)
    now = time.time()
    started = time.perf_counter()
    seeded_db = Database(db_url)
    seeded = seed_history(seeded_db, executions=executions, until=now, days=days)
    if backend == "postgresql":
        # What autovacuum does to a history that grew over months: statistics, and the
        # visibility map that lets index-only scans skip the heap.
        with seeded_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    seeded_db.dispose()
    print(f"{backend}: seeded {executions:,} executions in {time.perf_counter() - started:.1f} s")

    def iso(ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

    whole = f"{days:g} days (all)"
    windows: list[tuple[str, float, float, str | None]] = [
        ("30 days", now - 30 * DAY, now, None),
        ("30 days, one workflow", now - 30 * DAY, now, seeded.workflows[0]),
        ("7 days", now - 7 * DAY, now, None),
        (whole, now - days * DAY, now + 1, None),
    ]
    db = Database(db_url)
    with server(db_url) as api:
        for name, since, until, workflow in windows:
            params = {"since": iso(since), "until": iso(until)}
            if workflow:
                params["workflow"] = workflow
            median, best, total = timed(api, params, rounds)
            wall, cpu = in_process(db, analytics.Window(since, until, workflow), rounds)
            print(
                f"  {backend:<11} {name:<24} {total:>8,} {median:>9.1f} {best:>9.1f}"
                f" {wall:>9.1f} {cpu:>9.1f}"
            )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=90.0, help="history length (90)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="20,000 executions, 3 rounds")
    args = parser.parse_args()
    executions = 20_000 if args.quick else args.executions
    rounds = 3 if args.quick else args.rounds
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"uptime: {load.strip()}")
    print(
        f"  {'backend':<11} {'window':<24} {'counted':>8} {'median ms':>9} {'min ms':>9}"
        f" {'inproc ms':>9} {'cpu ms':>9}"
    )
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        with contextlib.ExitStack() as stack:
            if backend == "postgresql":
                url = stack.enter_context(pg_database())
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="opsflow-abench-"))
                url = f"sqlite:///{tmp}/analytics.db"
            run(backend, url, executions, args.days, rounds)
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"uptime: {load.strip()}")


if __name__ == "__main__":
    main()
