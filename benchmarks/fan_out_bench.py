"""A 1,000-item ``for_each`` of ``true`` next to a 1,000-step static fan-out, through a real
``opsflow server`` (the helpers of ``server_bench.py``: fresh data dir and database per backend,
local agent concurrency 16, every job ``sh -c true``).

Not a timed test: run it by hand and read the figures. Times come from the server's records
(an execution's ``created_at`` to ``ended_at``). Printed per backend: each shape's run time
(median of the rounds, alternated), items or steps per second, the per-item overhead over the
static step (``(for_each - static) / N``) and the ratio (the target is within 1.2x).

    python benchmarks/fan_out_bench.py [--items 1000] [--rounds 3] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_bench import fanout_yaml, pg_database, server, ts


def for_each_yaml(workflow_id: str, n: int) -> str:
    return (
        f"id: {workflow_id}\nsteps:\n"
        f"  - {{id: each, type: script, shell: sh, for_each: '{{{{ range({n}) | list }}}}', "
        "run: 'true'}\n"
    )


def bench(label: str, db_url: str | None, n: int, rounds: int) -> None:
    times: dict[str, list[float]] = {"for_each": [], "static": []}
    with server(db_url, "auto", 16) as srv:
        srv.publish("bench-each", for_each_yaml("bench-each", n))
        srv.publish("bench-static", fanout_yaml("bench-static", n))
        for _ in range(rounds):
            for shape, workflow in (("for_each", "bench-each"), ("static", "bench-static")):
                detail = srv.run(workflow)
                times[shape].append(ts(detail["ended_at"]) - ts(detail["created_at"]))
    each, static = (statistics.median(times[k]) for k in ("for_each", "static"))
    print(f"{label}: {n} jobs of `true`, median of {rounds} rounds (alternated)")
    print(f"  for_each of {n} items : {each:7.2f} s  {n / each:7.1f} items/s")
    print(f"  static fan-out        : {static:7.2f} s  {n / static:7.1f} steps/s")
    overhead = (each - static) / n * 1000
    print(f"  per-item overhead     : {overhead:+7.2f} ms    ratio {each / static:.2f}x")
    print(f"  rounds: for_each {times['for_each']}, static {times['static']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            bench("SQLite", None, args.items, args.rounds)
        else:
            with contextlib.ExitStack() as stack:
                bench("PostgreSQL", stack.enter_context(pg_database()), args.items, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
