"""An ssh step on 50 hosts running ``true``, ``parallel: 10``, through a real server.

Not a timed test: run it by hand and read the table. One real ``sshd`` (Debian's, started as
the tests start it, ``tests/sshd.py``) listens on up to 16 loopback addresses (OpenSSH's
limit), so four of them serve 127.0.0.2 to 127.0.0.51: 50 "hosts", each a TCP connection, a
key exchange, a public-key login and a session of its own. Each backend gets a fresh
``opsflow server`` (fresh data dir; a SQLite file in it, or a new PostgreSQL database) with its
local agent, an ``ssh`` connection set through ``PUT /api/v1/connections/{name}`` (the
throwaway key and the 50 known_hosts lines), and one published workflow whose only step is
the ssh step. Figures, from the server's own
records:

- the run (execution ``created_at`` → ``ended_at``) and the step's job (``started_at`` →
  ``ended_at``), median and min-max over ``--rounds``;
- per-host overhead: the job's time * ``parallel`` / hosts (what one host costs a slot),
  and each host's own ``duration_ms`` (connect, key exchange, login, session, ``true``,
  close) p50 / p95 / max over every host of every round;
- the server's CPU time per host (``/proc``: its API, database work and the local agent's
  side of every SSH session, all in that one process);
- one host at a time: the same step on 10 of the hosts with ``parallel: 1``, the job's time
  per host (what a host costs without contention);
- for scale, OpenSSH's own client doing one ``ssh host true`` login (p50 of ``--rounds`` * 10).

The machine's ``uptime`` load is printed before and after: the machine is shared, so read
the figures with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.sshd: the same sshd the tests start
from server_bench import pct, pg_database, server, ts  # noqa: E402
from tests.sshd import SshHost, SshUserKey, make_user_key, running_sshd  # noqa: E402

SERIAL_HOSTS = 10


def workflow_yaml(hosts: list[str], parallel: int, workflow_id: str = "bench-ssh") -> str:
    listed = ", ".join(f'"{host}"' for host in hosts)
    return (
        f"id: {workflow_id}\n"
        "steps:\n"
        f"  - {{id: fleet, type: ssh, connection: bench-ssh, hosts: [{listed}],\n"
        f"     command: 'true', parallel: {parallel}}}\n"
    )


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def openssh_login_ms(host: SshHost, key: SshUserKey, known_hosts: Path, count: int) -> float:
    """Median milliseconds of ``ssh host true`` with OpenSSH's client, one after another."""
    argv = ["ssh", "-i", str(key.path), "-p", str(host.port), "-o", "BatchMode=yes"]
    argv += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    argv += ["-F", "/dev/null", f"{host.user}@{host.address}", "true"]
    times = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_backend(
    label: str, db_url: str | None, fleet: list[SshHost], key: SshUserKey, args: argparse.Namespace
) -> dict[str, Any]:
    targets = [f"{address}:{sshd.port}" for sshd in fleet for address in sshd.addresses]
    values = fleet[0].connection_values(key)
    values["known_hosts"] = "".join(sshd.known_hosts() for sshd in fleet)
    with server(db_url, "asyncio", 4) as srv:
        put = srv.client.put(
            "/api/v1/connections/bench-ssh", json={"type": "ssh", "values": values}
        )
        put.raise_for_status()
        srv.publish("bench-ssh", workflow_yaml(targets, args.parallel))
        serial = targets[:SERIAL_HOSTS]
        srv.publish("bench-ssh-serial", workflow_yaml(serial, 1, "bench-ssh-serial"))
        check(srv.run("bench-ssh"), len(targets))  # warm-up: imports, first logins
        runs, jobs, hosts, one_by_one, cpu = [], [], [], [], []
        for _ in range(args.rounds):
            before = cpu_seconds(srv.process.pid)
            detail = srv.run("bench-ssh")
            cpu.append((cpu_seconds(srv.process.pid) - before) / len(targets))
            job = check(detail, len(targets))
            runs.append(ts(detail["ended_at"]) - ts(detail["created_at"]))
            jobs.append(ts(job["ended_at"]) - ts(job["started_at"]))
            hosts += [float(h["duration_ms"]) for h in job["outputs"]["hosts"].values()]
            job = check(srv.run("bench-ssh-serial"), len(serial))
            one_by_one.append((ts(job["ended_at"]) - ts(job["started_at"])) / len(serial))
    return {
        "backend": label,
        "runs": runs,
        "jobs": jobs,
        "hosts": hosts,
        "serial": one_by_one,
        "cpu": cpu,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(detail: dict[str, Any], count: int) -> dict[str, Any]:
    """The run's one job, after checking that it completed on every host."""
    (step,) = detail["steps"]
    job: dict[str, Any] = step["jobs"][-1]
    if detail["status"] != "completed" or len(job["outputs"].get("hosts", {})) != count:
        raise RuntimeError(f"the bench run did not complete on every host: {job}")
    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"before: {uptime()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="opsflow-sshbench-") as tmp:
        key = make_user_key(Path(tmp) / "key")
        addresses = [f"127.0.0.{n}" for n in range(2, 2 + args.hosts)]
        with ExitStack() as stack:
            fleet = [
                stack.enter_context(
                    running_sshd(Path(tmp) / f"sshd-{n}", key, addresses[n : n + 13])
                )
                for n in range(0, len(addresses), 13)
            ]
            known_hosts = Path(tmp) / "known_hosts"
            known_hosts.write_text(fleet[0].known_hosts())
            login_ms = openssh_login_ms(fleet[0], key, known_hosts, args.rounds * 10)
            for backend in args.backends.split(","):
                if backend == "sqlite":
                    results.append(bench_backend("SQLite", None, fleet, key, args))
                else:
                    with pg_database() as url:
                        results.append(bench_backend("PostgreSQL", url, fleet, key, args))
    print(f"after:  {uptime()}")
    print(
        f"\n{args.hosts} hosts x `true`, parallel {args.parallel}, {args.rounds} rounds "
        "(median, min-max)"
    )
    print(f"{'':24}" + "".join(f"{r['backend']:>24}" for r in results))

    def row(name: str, cells: list[str]) -> None:
        print(f"{name:24}" + "".join(f"{cell:>24}" for cell in cells))

    def spread(values: list[float], scale: float, unit: str) -> str:
        low, mid, high = min(values) * scale, statistics.median(values) * scale, max(values) * scale
        return f"{mid:.0f} {unit} ({low:.0f}-{high:.0f})"

    row("run (created->ended)", [spread(r["runs"], 1000, "ms") for r in results])
    row("ssh job (start->end)", [spread(r["jobs"], 1000, "ms") for r in results])
    row(
        "per-host slot",
        [
            f"{statistics.median(r['jobs']) * 1000 * args.parallel / args.hosts:.0f} ms"
            for r in results
        ],
    )
    row(
        "host p50 / p95 / max",
        [
            f"{pct(r['hosts'], 50):.0f}/{pct(r['hosts'], 95):.0f}/{max(r['hosts']):.0f} ms"
            for r in results
        ],
    )
    row(
        "server CPU per host",
        [f"{statistics.median(r['cpu']) * 1000:.1f} ms" for r in results],
    )
    row(
        "one at a time, per host",
        [f"{statistics.median(r['serial']) * 1000:.0f} ms" for r in results],
    )
    print(
        f"\nOpenSSH client, one `ssh host true` login, median of {args.rounds * 10}: "
        f"{login_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
