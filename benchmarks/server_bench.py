"""Benchmarks of the server users run: a real ``opsflow server`` subprocess driven over its API.

Not a timed test: run it by hand and read the table (``--quick`` for a short run). Each backend
gets a fresh server with a fresh data dir and a fresh database (a SQLite file in the data dir,
or a new PostgreSQL database), local agent concurrency 16. Workflows are applied and run over
the HTTP API; every step is a script step running ``sh -c true``. Times come from the server's
own records (an execution's ``created_at`` to ``ended_at``, a job's ``ended_at`` to the next
job's ``started_at``), so the client's polling adds nothing.

Workloads: chains of 10/40/160 steps, fan-outs of 100/500/2,000 steps, one step printing
200,000 lines (from the last line read by the agent until every line is stored and readable
through the logs API, which is when the job's end is recorded), 50 concurrent executions of a
10-step chain, dependent-step start latency p50/p99 (over the chain rounds), and the server's
RSS idle and during the log test. The in-process figures of ``engine_chain.py`` are printed
after (``--no-engine`` to skip them).

``--peer`` adds the comparison with a bare Procrastinate queue on the same PostgreSQL: the same
40-link chain (each task runs ``sh -c true`` and defers the next), installed into a throwaway
venv under /tmp by this script (never a project dependency), alternated round by round with
ours through the real server; it prints both medians and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
PG_ADMIN = os.environ.get("OPSFLOW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
INT_MAX = 2**53 - 1
PEER_VENV = Path(tempfile.gettempdir()) / "opsflow-bench-procrastinate"


def chain_yaml(workflow_id: str, n: int) -> str:
    lines = [f"id: {workflow_id}", "steps:"]
    for i in range(n):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, type: script, shell: sh, run: 'true'{needs}}}")
    return "\n".join(lines) + "\n"


def fanout_yaml(workflow_id: str, n: int) -> str:
    lines = [f"id: {workflow_id}", "steps:"]
    lines += [f"  - {{id: p{i}, type: script, shell: sh, run: 'true'}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def log_yaml(lines: int) -> str:
    return (
        f"id: bench-log\nsteps:\n  - {{id: flood, type: script, shell: sh, run: 'seq 1 {lines}'}}\n"
    )


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    import psycopg

    name = f"opsflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    """A running ``opsflow server`` and an admin client of its API."""

    process: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path
    published: set[str] = field(default_factory=set)

    def publish(self, workflow_id: str, yaml_text: str) -> None:
        if workflow_id in self.published:
            return
        r = self.client.put(
            f"/api/v1/workflows/{workflow_id}?publish=true",
            content=yaml_text,
            headers={"Content-Type": "application/yaml"},
        )
        r.raise_for_status()
        self.published.add(workflow_id)

    def start(self, workflow_id: str) -> str:
        r = self.client.post(f"/api/v1/workflows/{workflow_id}/runs", json={})
        r.raise_for_status()
        return str(r.json()["id"])

    def wait(self, execution_id: str) -> dict[str, Any]:
        """Follow the live stream (without its log lines) until the run ends."""
        with self.client.stream(
            "GET",
            f"/api/v1/executions/{execution_id}/events",
            headers={"Last-Event-ID": f"0-{INT_MAX}"},
            timeout=httpx.Timeout(10, read=600),
        ) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line == "event: end":
                    break
        detail = self.client.get(f"/api/v1/executions/{execution_id}").json()
        assert detail["status"] == "completed", detail.get("engine_log")
        return dict(detail)

    def run(self, workflow_id: str) -> dict[str, Any]:
        return self.wait(self.start(workflow_id))


@contextlib.contextmanager
def serving(
    argv: list[str], env: dict[str, str], log: Path, base: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (an ``opsflow server``) with its output in ``log`` until ``base/healthz``
    answers 200 (RuntimeError with the log if it exits or is not healthy within 120 s); yield
    the process, and terminate it (kill after 20 s) when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy:\n{log.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def server(
    db_url: str | None,
    loop: str,
    concurrency: int,
    *,
    launcher: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """A real ``opsflow server`` on loopback, started through ``launcher`` (default:
    serve_with_loop.py with ``loop``), with a client holding its admin token."""
    with tempfile.TemporaryDirectory(prefix="opsflow-bench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        env["OPSFLOW_ADMIN_PASSWORD"] = "bench-admin-password"
        env.update(extra_env or {})
        argv = [*(launcher or [sys.executable, str(HERE / "serve_with_loop.py"), loop]), "server"]
        argv += ["--data-dir", str(data), "--port", str(port), "--host", "127.0.0.1"]
        argv += ["--concurrency", str(concurrency)]
        if db_url:
            argv += ["--db", db_url]
        log = Path(tmp) / "server.log"
        base = f"http://127.0.0.1:{port}"
        with serving(argv, env, log, base) as process:
            token = (data / "admin-token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                yield Server(process, client, log)


def chain_figures(detail: dict[str, Any]) -> tuple[float, list[float]]:
    """An execution's duration and its dependent-start latencies (ms), from server records."""
    elapsed = ts(detail["ended_at"]) - ts(detail["created_at"])
    jobs = sorted(
        (job for step in detail["steps"] for job in step["jobs"]),
        key=lambda job: ts(job["started_at"]),
    )
    gaps = [(ts(b["started_at"]) - ts(a["ended_at"])) * 1000 for a, b in itertools.pairwise(jobs)]
    return elapsed, gaps


def log_figures(srv: Server, lines: int) -> tuple[float, float, float]:
    """(seconds from the last line read to all stored, run seconds, peak RSS MB during it)."""
    srv.publish("bench-log", log_yaml(lines))
    peak = rss_mb(srv.process.pid)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(srv.process.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        detail = srv.run("bench-log")
    finally:
        stop.set()
        sampler.join()
    (job,) = detail["steps"][0]["jobs"]
    last = srv.client.get(
        f"/api/v1/executions/{detail['id']}/logs",
        params={"q": str(lines), "stream": "stdout", "limit": 10},
    ).json()["items"]
    last_at = max(ts(item["at"]) for item in last if item["text"] == str(lines))
    count = srv.client.get(
        f"/api/v1/executions/{detail['id']}/logs",
        params={"after": 0, "limit": 1, "q": "lost in transit"},
    ).json()["items"]
    assert not count, "a gap in the log"
    run_s = ts(detail["ended_at"]) - ts(detail["created_at"])
    return ts(job["ended_at"]) - last_at, run_s, peak


def concurrent_figures(srv: Server, executions: int) -> float:
    srv.publish("bench-c10", chain_yaml("bench-c10", 10))
    ids = [srv.start("bench-c10") for _ in range(executions)]
    details = [srv.wait(i) for i in ids]
    return max(ts(d["ended_at"]) for d in details) - min(ts(d["created_at"]) for d in details)


def bench_backend(label: str, db_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": label}
    with server(db_url, args.loop, args.concurrency) as srv:
        for n in args.chains:
            srv.publish(f"bench-chain-{n}", chain_yaml(f"bench-chain-{n}", n))
        srv.run(f"bench-chain-{args.chains[0]}")  # warm-up: imports, caches, connections
        out["rss_idle_mb"] = rss_mb(srv.process.pid)
        gaps: list[float] = []
        for n in args.chains:
            times = []
            for _ in range(args.rounds):
                elapsed, g = chain_figures(srv.run(f"bench-chain-{n}"))
                times.append(elapsed)
                gaps += g
            out[f"chain {n}"] = times
        out["start p50"], out["start p99"] = pct(gaps, 50), pct(gaps, 99)
        for n in args.fanouts:
            srv.publish(f"bench-fan-{n}", fanout_yaml(f"bench-fan-{n}", n))
            detail = srv.run(f"bench-fan-{n}")
            out[f"fan-out {n}"] = ts(detail["ended_at"]) - ts(detail["created_at"])
        if args.log_lines:
            out["log lag"], out["log run"], out["rss_log_mb"] = log_figures(srv, args.log_lines)
        if args.concurrent:
            out["concurrent"] = concurrent_figures(srv, args.concurrent)
    return out


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nopsflow server (event loop {args.loop}, local agent concurrency {args.concurrency}, "
        f"{args.rounds} rounds; median (min-max))"
    )
    print(f"{'workload':<34}" + "".join(f"{r['backend']:>26}" for r in results))

    def row(name: str, cells: list[str]) -> None:
        print(f"{name:<34}" + "".join(f"{c:>26}" for c in cells))

    for n in args.chains:
        key = f"chain {n}"
        row(
            f"chain of {n} steps",
            [
                f"{statistics.median(r[key]):.3f} s ({min(r[key]):.2f}-{max(r[key]):.2f})"
                for r in results
            ],
        )
    row("  dependent start p50", [f"{r['start p50']:.1f} ms" for r in results])
    row("  dependent start p99", [f"{r['start p99']:.1f} ms" for r in results])
    for n in args.fanouts:
        key = f"fan-out {n}"
        row(
            f"fan-out of {n} steps",
            [f"{n / r[key]:.0f} st/s ({r[key] / n * 1000:.1f} ms/st)" for r in results],
        )
    if args.log_lines:
        row(f"{args.log_lines} log lines: stored after", [f"{r['log lag']:.2f} s" for r in results])
        row("  whole run", [f"{r['log run']:.2f} s" for r in results])
    if args.concurrent:
        row(
            f"{args.concurrent} concurrent 10-step chains",
            [f"{r['concurrent']:.2f} s" for r in results],
        )
    row("server RSS idle", [f"{r['rss_idle_mb']:.0f} MB" for r in results])
    if args.log_lines:
        row("server RSS during the log test", [f"{r['rss_log_mb']:.0f} MB" for r in results])


# -- the peer: a bare Procrastinate queue ----------------------------------------------------

PEER_SCRIPT = r"""
import asyncio, json, sys, time
import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=sys.argv[1]))
N = int(sys.argv[2])
done = None

@app.task(queue="chain")
async def link(i: int) -> None:
    proc = await asyncio.create_subprocess_exec("sh", "-c", "true")
    await proc.wait()
    if i + 1 < N:
        await link.defer_async(i=i + 1)
    else:
        done.set()

async def main() -> None:
    global done
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(app.run_worker_async(queues=["chain"], concurrency=1,
                                                          wait=True, install_signal_handlers=False))
        for line in sys.stdin:
            done = asyncio.Event()
            t0 = time.perf_counter()
            await link.defer_async(i=0)
            await done.wait()
            print(json.dumps(time.perf_counter() - t0), flush=True)
            await asyncio.sleep(0)
        worker.cancel()

asyncio.run(main())
"""


def peer_python() -> Path:
    """The throwaway venv with Procrastinate (made on first use, kept under /tmp)."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "procrastinate", "psycopg[binary]"],
            check=True,
        )
    return python


def peer_comparison(args: argparse.Namespace) -> None:
    python = peer_python()
    n = 40
    ours: list[float] = []
    theirs: list[float] = []
    with pg_database() as ours_url, pg_database() as peer_url:
        script = Path(tempfile.gettempdir()) / "opsflow-bench-peer.py"
        script.write_text(PEER_SCRIPT)
        peer = subprocess.Popen(
            [str(python), str(script), peer_url, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert peer.stdin is not None and peer.stdout is not None
        try:
            with server(ours_url, args.loop, args.concurrency) as srv:
                srv.publish("bench-peer", chain_yaml("bench-peer", n))
                srv.run("bench-peer")
                peer.stdin.write("warm-up\n")
                peer.stdin.flush()
                peer.stdout.readline()
                for _ in range(args.peer_rounds):
                    ours.append(chain_figures(srv.run("bench-peer"))[0])
                    peer.stdin.write("go\n")
                    peer.stdin.flush()
                    theirs.append(float(peer.stdout.readline()))
        finally:
            peer.stdin.close()
            peer.wait(30)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"\n{n}-link chain on the same PostgreSQL, {args.peer_rounds} alternated rounds")
    print(f"  opsflow server ({args.loop}):  {a:.3f} s ({min(ours):.3f}-{max(ours):.3f})")
    print(f"  bare Procrastinate:        {b:.3f} s ({min(theirs):.3f}-{max(theirs):.3f})")
    print(f"  ratio:                     {a / b:.2f}x")


def ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="a short run: small sizes, 2 rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chains", type=ints, default=[10, 40, 160])
    parser.add_argument("--fanouts", type=ints, default=[100, 500, 2000])
    parser.add_argument("--log-lines", type=int, default=200_000)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16, help="local agent concurrency")
    parser.add_argument("--loop", default="asyncio", help="asyncio or uvloop")
    parser.add_argument("--peer", action="store_true", help="only the Procrastinate comparison")
    parser.add_argument("--peer-rounds", type=int, default=7)
    parser.add_argument("--no-engine", action="store_true", help="skip engine_chain.py")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.chains, args.fanouts = 2, [10, 40], [100, 500]
        args.log_lines, args.concurrent, args.peer_rounds = 50_000, 10, 3
    if args.peer:
        peer_comparison(args)
        return 0
    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            results.append(bench_backend("SQLite", None, args))
        else:
            with pg_database() as url:
                results.append(bench_backend("PostgreSQL", url, args))
    print_table(results, args)
    if not args.no_engine:
        print("\nin-process (benchmarks/engine_chain.py):", flush=True)
        engine = [sys.executable, str(HERE / "engine_chain.py"), "--backends", args.backends]
        engine += ["--rounds", str(args.rounds)]
        if args.quick:
            engine += ["--fanout", "100"]
        subprocess.run(engine, check=True)
    with contextlib.suppress(OSError):
        load = os.getloadavg()
        print(f"\nload average while measured: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
