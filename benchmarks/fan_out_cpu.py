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
moves with the load. The server's CPU is also split between its event loop's thread and its
other threads (worker threads), user and system time apart (``/proc/<pid>/task``).

``--viewers N`` sets how many clients follow each run's live event stream (as browsers
watching it do; the bench's own wait is one of them): 0 waits by listing the execution every
second instead (no stream; its summary, not its detail of every step), 1 (the default) is
server_bench's follower, more add followers that read the same stream.
``--py-spy PATH`` records the server with py-spy (``--gil``, raw collapsed stacks, 200 Hz)
across the sized runs of each backend into ``PATH-<backend>.txt`` and prints the samples'
split by what they were doing (py-spy is not a project dependency: ``python -m venv
/tmp/pyspy && /tmp/pyspy/bin/pip install py-spy``). On a loaded machine ``--gil`` samples
count a thread that holds the GIL while the kernel has it off the CPU: shares lean towards
what holds the GIL across system calls (process start).

    python benchmarks/fan_out_cpu.py [--fanouts 100,500] [--rounds 2] [--backends sqlite,postgresql]
        [--viewers 1] [--py-spy /tmp/profile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_bench import INT_MAX, PG_ADMIN, Server, fanout_yaml, pg_database, server, ts

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    utime, stime, cutime, cstime = (int(fields[i - 3]) for i in (14, 15, 16, 17))
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of ``pid``'s threads now alive, in two groups: ``loop``, its
    main thread (the event loop's: `opsflow server` runs uvicorn there), and ``threads``,
    every other (worker threads: transactions, the scope's hops, file work; the migration
    warmer). A thread that ended since is missed (the pool keeps its workers)."""
    groups = {"loop": [0.0, 0.0], "threads": [0.0, 0.0]}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        group = groups["loop" if tid == str(pid) else "threads"]
        group[0] += int(fields[11]) / TICK  # utime, field 14
        group[1] += int(fields[12]) / TICK  # stime, field 15
    return {k: (v[0], v[1]) for k, v in groups.items()}


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


# What a sample was doing: the first category with a needle in any frame of its stack names it
# (so a reconcile inside a report write counts as the reconcile).
CATEGORIES = [
    ("live stream", ("api/events.py",)),
    ("process start", ("steps/process.py", "subprocess.py")),
    ("executor", ("steps/",)),
    ("reconcile", ("reconciler.py", "opsflow/engine/")),
    ("log batches", ("logsink.py", "_append_batches", "store/logs.py", "Agent._ship")),
    ("claims", ("claim",)),
    ("report writes", ("_write_all", "agent_jobs.py", "agent_service.py")),
    ("run start, reads", ("api/executions.py",)),
    ("local agent", ("agent/loop.py",)),
    ("HTTP", ("httptools_impl", "starlette", "fastapi")),
    ("event loop", ("asyncio/",)),
]


def classify(stack: str) -> str:
    frames = stack.split(";")
    for name, needles in CATEGORIES:
        for frame in frames:
            if any(n in frame for n in needles):
                return name
    return "other"


def summarise(raw: Path) -> None:
    """Print the samples of a py-spy raw file by category (``CATEGORIES``, outermost match
    wins), and the 15 functions with the most samples of their own."""
    by: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        by[classify(stack)] += int(count)
        own[stack.rsplit(";", 1)[-1]] += int(count)
    total = sum(by.values()) or 1
    print(f"  py-spy {raw}: {total} samples holding the GIL")
    for name, n in by.most_common():
        print(f"    {name:<16} {100 * n / total:5.1f} %")
    print("    own samples, top 15:")
    for frame, n in own.most_common(15):
        print(f"      {100 * n / total:5.1f} %  {frame}")


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy recording ``pid`` (``--gil``, raw) into ``out`` while the block runs (nothing
    without ``out``), stopped with SIGINT; then its summary."""
    if out is None:
        yield
        return
    binary = os.environ.get("PY_SPY", "/tmp/pyspy/bin/py-spy")
    argv = [binary, "record", "--gil", "--rate", "200", "--format", "raw"]
    argv += ["--pid", str(pid), "-o", str(out)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    summarise(out)


def poll(srv: Server, execution_id: str) -> dict[str, Any]:
    """Wait for the run's end by listing it (its summary: one row) every second, no live
    stream; then its detail, once (the detail of every step is no cheap read)."""
    while True:
        page = srv.client.get(
            "/api/v1/executions", params={"id_prefix": execution_id, "limit": 1}
        ).json()
        if page["items"] and page["items"][0]["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(1.0)
    detail: dict[str, Any] = srv.client.get(f"/api/v1/executions/{execution_id}").json()
    assert detail["status"] == "completed", detail.get("engine_log")
    return detail


def follow(srv: Server, execution_id: str) -> None:
    """A viewer: the run's live stream (events and log lines), read to its end."""
    with srv.client.stream(
        "GET",
        f"/api/v1/executions/{execution_id}/events",
        headers={"Last-Event-ID": f"0-{INT_MAX}"},
    ) as r:
        for line in r.iter_lines():
            if line == "event: end":
                return


def run(srv: Server, workflow_id: str, viewers: int) -> dict[str, Any]:
    """Run ``workflow_id`` to its end with ``viewers`` live-stream followers (0: polled)."""
    execution_id = srv.start(workflow_id)
    if viewers == 0:
        return poll(srv, execution_id)
    others = [threading.Thread(target=follow, args=(srv, execution_id)) for _ in range(viewers - 1)]
    for t in others:
        t.start()
    detail = srv.wait(execution_id)
    for t in others:
        t.join()
    return detail


def bench(
    label: str,
    db_url: str | None,
    sizes: list[int],
    rounds: int,
    concurrency: int,
    viewers: int = 1,
    spy: Path | None = None,
) -> None:
    database = db_url.rsplit("/", 1)[1] if db_url else None
    with server(db_url, "asyncio", concurrency) as srv:
        pid = srv.process.pid
        for n in sizes:
            srv.publish(f"bench-fan-{n}", fanout_yaml(f"bench-fan-{n}", n))
        srv.publish("bench-fan-warm", fanout_yaml("bench-fan-warm", 100))
        run(srv, "bench-fan-warm", viewers)
        print(f"{label}, {viewers} viewer(s) (load {os.getloadavg()[0]:.1f} at start)")
        with py_spy(pid, spy):
            figures(srv, pid, database, sizes, rounds, viewers)


def figures(
    srv: Server, pid: int, database: str | None, sizes: list[int], rounds: int, viewers: int
) -> None:
    """Run each fan-out ``rounds`` times, printing rate and CPU per step, then medians."""
    for n in sizes:
        rows: list[tuple[float, float, float, float]] = []
        for _ in range(rounds):
            own0, kids0 = cpu(pid)
            pg0 = pg_cpu(database)
            split0 = thread_cpu(pid)
            started = time.monotonic()
            detail = run(srv, f"bench-fan-{n}", viewers)
            wall = time.monotonic() - started
            own1, kids1 = cpu(pid)
            pg1 = pg_cpu(database)
            split1 = thread_cpu(pid)
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
            split = {
                k: tuple((split1[k][i] - split0[k][i]) / n * 1000 for i in (0, 1)) for k in split1
            }
            print(
                "      server split, ms/step user + system: "
                f"event loop {split['loop'][0]:.2f} + {split['loop'][1]:.2f}, "
                f"other threads {split['threads'][0]:.2f} + {split['threads'][1]:.2f}"
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
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--py-spy", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()
    sizes = [int(s) for s in args.fanouts.split(",") if s]
    for backend in args.backends.split(","):
        spy = args.py_spy and args.py_spy.with_name(f"{args.py_spy.name}-{backend}.txt")
        if backend == "sqlite":
            bench("SQLite", None, sizes, args.rounds, args.concurrency, args.viewers, spy)
        else:
            with pg_database() as url:
                bench("PostgreSQL", url, sizes, args.rounds, args.concurrency, args.viewers, spy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
