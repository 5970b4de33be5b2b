"""Cron fire delay through a real server: from a schedule's instant to its execution created.

Not a timed test: run it by hand and read the table. Each backend gets a fresh ``opsflow
server`` (fresh data dir; a SQLite file in it, or a new PostgreSQL database) without its local
agent, and one published workflow with a per-minute schedule. The server runs a test clock
(``OPSFLOW_SCHEDULER_CLOCK``) at ``--rate`` times real speed, so a per-minute schedule fires
every 60/rate real seconds; the clock stands still for ``--setup`` seconds (time for the server
to start and the workflow to be published; instants before the publish are not measured),
then runs. The delay of one instant is the execution's ``created_at`` (the server's
real clock) minus the real moment the test clock reached the instant; the scheduler's sleep is
computed from the same clocks, so the figure is what a real-time schedule sees: the wake-up
jitter plus the transaction that claims the instant and creates the run.

Target (issue 16): fire delay p99 < 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from server_bench import free_port, pct, pg_database, serving  # noqa: E402

START = "2026-01-01T00:00:30+00:00"
WORKFLOW = """\
id: bench-cron
triggers:
  - {type: schedule, cron: '* * * * *'}
steps:
  - {id: s, type: script, shell: sh, run: 'true'}
"""


@contextlib.contextmanager
def server(db_url: str | None, clock: str) -> Iterator[httpx.Client]:
    """A started server on the test clock, the bench workflow published; its API client."""
    with tempfile.TemporaryDirectory(prefix="opsflow-cronbench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        env["OPSFLOW_ADMIN_PASSWORD"] = "bench-admin-password"
        env["OPSFLOW_SCHEDULER_CLOCK"] = clock
        argv = [str(Path(sys.executable).parent / "opsflow"), "server", "--data-dir", str(data)]
        argv += ["--port", str(port), "--host", "127.0.0.1", "--no-local-agent"]
        if db_url:
            argv += ["--db", db_url]
        log = Path(tmp) / "server.log"
        base = f"http://127.0.0.1:{port}"
        with serving(argv, env, log, base):
            token = (data / "admin-token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as api:
                api.put(
                    "/workflows/bench-cron?publish=true",
                    content=WORKFLOW,
                    headers={"Content-Type": "application/yaml"},
                ).raise_for_status()
                yield api


def delays(db_url: str | None, count: int, rate: float, setup: float) -> list[float]:
    """Fire delays (seconds) of the first ``count`` instants."""
    anchor = time.time() + setup
    start = datetime.fromisoformat(START).timestamp()
    with server(db_url, f"{START},{rate},{anchor}") as api:
        time.sleep(max(0.0, anchor - time.time() + count * 60 / rate))
        while True:
            items = api.get("/executions", params={"workflow": "bench-cron", "limit": 500}).json()[
                "items"
            ]
            if len(items) >= count:
                break
            time.sleep(0.5)
    out: list[float] = []
    for item in items:
        instant = datetime.fromisoformat(item["trigger"]["source"].split(" at ", 1)[1])
        real = anchor + (instant.timestamp() - start) / rate
        out.append(datetime.fromisoformat(item["created_at"]).timestamp() - real)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--count", type=int, default=100, help="instants measured (100)")
    parser.add_argument("--rate", type=float, default=120.0, help="test clock speed (120)")
    parser.add_argument("--setup", type=float, default=15.0, help="seconds to start (15)")
    parser.add_argument("--quick", action="store_true", help="30 instants")
    args = parser.parse_args()
    count = 30 if args.quick else args.count
    print(f"cron fire delay: {count} per-minute instants, test clock x{args.rate:g}")
    print(f"{'backend':<12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(pg_database()) if backend == "postgresql" else None
            found = [d * 1000 for d in delays(url, count, args.rate, args.setup)]
        print(
            f"{backend:<12} {pct(found, 50):8.1f} {pct(found, 99):8.1f} "
            f"{max(found):8.1f} {statistics.mean(found):8.1f}"
        )


if __name__ == "__main__":
    main()
