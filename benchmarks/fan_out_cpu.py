"""CPU per step of a fan-out through a real ``opsflow server``: the server process, its step
processes and (on PostgreSQL) the database's backends serving it, next to the wall-clock rate.

Not a timed test: run it by hand and read the figures. Each backend gets a fresh server (the
helpers of ``server_bench.py``: fresh data dir and database, local agent concurrency 16,
every step a script step running ``sh -c true``), a warm-up fan-out of 100, then fan-outs of
the given sizes, ``--rounds`` each. CPU comes from ``/proc/<pid>/stat`` read before and after
each run: the server's own ``utime + stime`` (every thread), its reaped children's
``cutime + cstime`` (the step processes), and the sum over the PostgreSQL backends connected
to the run's database (``pg_stat_activity``; only while they live, so a backend that exits
mid-run is missed). On a loaded machine CPU per step is the robust figure; steps per second
moves with the load.

    python benchmarks/fan_out_cpu.py [--fanouts 100,500] [--rounds 2] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_bench import PG_ADMIN, fanout_yaml, pg_database, server, ts

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    utime, stime, cutime, cstime = (int(fields[i - 3]) for i in (14, 15, 16, 17))
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def pg_cpu(database: str | None) -> float:
    """CPU seconds of the PostgreSQL backends connected to ``database`` (0 without one)."""
    if database is None:
        return 0.0
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
            )
        ]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu(pid)[0]
    return total


def bench(label: str, db_url: str | None, sizes: list[int], rounds: int, concurrency: int) -> None:
    database = db_url.rsplit("/", 1)[1] if db_url else None
    with server(db_url, "asyncio", concurrency) as srv:
        pid = srv.process.pid
        for n in sizes:
            srv.publish(f"bench-fan-{n}", fanout_yaml(f"bench-fan-{n}", n))
        srv.publish("bench-fan-warm", fanout_yaml("bench-fan-warm", 100))
        srv.run("bench-fan-warm")
        print(f"{label} (load {os.getloadavg()[0]:.1f} at start)")
        for n in sizes:
            rows: list[tuple[float, float, float, float]] = []
            for _ in range(rounds):
                own0, kids0 = cpu(pid)
                pg0 = pg_cpu(database)
                started = time.monotonic()
                detail = srv.run(f"bench-fan-{n}")
                wall = time.monotonic() - started
                own1, kids1 = cpu(pid)
                pg1 = pg_cpu(database)
                run_s = ts(detail["ended_at"]) - ts(detail["created_at"])
                rows.append(
                    (
                        n / run_s,
                        (own1 - own0) / n * 1000,
                        (kids1 - kids0) / n * 1000,
                        (pg1 - pg0) / n * 1000,
                    )
                )
                print(
                    f"  fan-out {n:>5}: {n / run_s:6.1f} steps/s  server {rows[-1][1]:5.2f} ms/step"
                    f"  steps {rows[-1][2]:5.2f}  postgres {rows[-1][3]:5.2f}"
                    f"  (client wall {wall:.2f} s, load {os.getloadavg()[0]:.1f})"
                )
            med = [statistics.median(r[k] for r in rows) for k in range(4)]
            print(
                f"  fan-out {n:>5} median: {med[0]:6.1f} steps/s  server {med[1]:5.2f} ms/step"
                f"  steps {med[2]:5.2f}  postgres {med[3]:5.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fanouts", default="100,500")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    sizes = [int(s) for s in args.fanouts.split(",") if s]
    for backend in args.backends.split(","):
        if backend == "sqlite":
            bench("SQLite", None, sizes, args.rounds, args.concurrency)
        else:
            with pg_database() as url:
                bench("PostgreSQL", url, sizes, args.rounds, args.concurrency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
