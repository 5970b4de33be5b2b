"""Remote agents: dispatch latency, steps per second with 1, 2 and 4 agents, and how long a
killed agent's work takes to be queued again.

Starts a real ``opsflow server --no-local-agent`` (SQLite in a fresh data dir, or the
PostgreSQL database ``--db`` names) with leases of ``--lease`` seconds, and real ``opsflow
agent`` processes on loopback. Times are the server's own records of each job:

- dispatch: ``created_at`` (queued) → ``dispatched_at`` (claimed by a waiting agent), →
  ``started_at`` (the agent has its work dir and says it began; an agent whose claim starts
  its jobs, `ClaimRequest.start`, has it from the claim, equal to ``dispatched_at``) and →
  spawned: the ``at`` of the job's first log line, the line the script executor writes
  just before it spawns the process (so the figure holds the agent's work dir, its start
  and its executor's preparation whoever recorded ``started_at``), over the links of a chain
  of script steps (each job is queued the moment its predecessor's report is committed);
- throughput: a fan-out of ``--fanout`` independent ``true`` steps, first job queued → last
  job ended, with 1, 2 and 4 agents of ``--concurrency`` slots each;
  with the CPU each side spent per step: the server process, the agent processes (and the
  job processes they ran), the PostgreSQL backends of the run's database (SQLite runs in
  the server's process), and the rest of the machine (other users of the cores);
- re-queue: ``kill -9`` of the agent running a ``sleep`` step → the next attempt's
  ``created_at``, ``--kills`` times (the lease expiry sweep decides it: at most ``--lease``
  plus the sweep's delay).

    python benchmarks/agents_bench.py --quick
    python benchmarks/agents_bench.py --db postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from opsflow.agent import leftovers


def _opsflow() -> str:
    beside = Path(sys.executable).parent / "opsflow"
    return str(beside) if beside.exists() else (shutil.which("opsflow") or "opsflow")


def _env(lease: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
    env["OPSFLOW_ADMIN_PASSWORD"] = "bench-admin-pw"
    env["OPSFLOW_LEASE_SECONDS"] = str(lease)
    env["OPSFLOW_HEARTBEAT_SECONDS"] = str(lease / 4)
    # The re-queue figure kills the agent of one step over and over: the "agent lost N times
    # in a row" rule (default 3) would fail that step after the third kill.
    env["OPSFLOW_AGENT_LOST_LIMIT"] = "1000"
    return env


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _t(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso).timestamp()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


TICK = os.sysconf("SC_CLK_TCK")
SERVER_PID = 0  # the running server's, set by `server`


def _cpu(pid: int) -> tuple[float, float]:
    """Seconds of CPU of process ``pid`` itself and of its waited-for children (0 once it is
    gone), from ``/proc/<pid>/stat``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    # After the command: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def _machine_busy() -> float:
    """Seconds of CPU the whole machine spent busy (all cores), from ``/proc/stat``."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / TICK


def _backends(db: str | None) -> list[int]:
    """The PostgreSQL backend pids serving ``db`` (the server's pool; not this process's)."""
    if not db:
        return []
    import psycopg

    plain = db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


class CpuSplit:
    """CPU seconds spent by the server, the agents, their jobs, the database's backends and
    the rest of the machine between `start` and `stop`."""

    def __init__(self, server_pid: int, db: str | None) -> None:
        self.server_pid, self.db = server_pid, db

    def _sample(self, agents: list[int]) -> dict[str, float]:
        agent_cpu = [_cpu(pid) for pid in agents]
        backends = {pid: _cpu(pid)[0] for pid in _backends(self.db)}
        return {
            "server": _cpu(self.server_pid)[0],
            "agents": sum(own for own, _ in agent_cpu),
            "jobs": sum(children for _, children in agent_cpu),
            "machine": _machine_busy(),
            **{f"pg{pid}": cpu for pid, cpu in backends.items()},
        }

    def start(self, agents: list[int]) -> None:
        self.agents = agents
        self.began = self._sample(agents)
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        ended = self._sample(self.agents)
        out = {k: ended[k] - self.began[k] for k in ("server", "agents", "jobs", "machine")}
        out["database"] = sum(
            cpu - self.began.get(key, 0.0) for key, cpu in ended.items() if key.startswith("pg")
        )
        out["others"] = out["machine"] - sum(
            out[k] for k in ("server", "agents", "jobs", "database")
        )
        out["wall"] = time.monotonic() - self.t0
        return out


@contextmanager
def server(root: Path, db: str | None, lease: float) -> Iterator[tuple[str, str]]:
    data = root / "server"
    data.mkdir()
    port = _port()
    argv = [_opsflow(), "server", "--port", str(port), "--data-dir", str(data), "--no-local-agent"]
    if db:
        argv += ["--db", db]
    with (data / "server.log").open("wb") as out:
        process = subprocess.Popen(argv, env=_env(lease), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit((data / "server.log").read_text())
            time.sleep(0.05)
        global SERVER_PID
        SERVER_PID = process.pid
        yield url, (data / "admin-token").read_text().strip()
    finally:
        process.terminate()
        process.wait(30)


class Fleet:
    def __init__(self, root: Path, url: str, token: str, lease: float) -> None:
        self.root, self.url, self.token, self.lease = root, url, token, lease
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, concurrency: int) -> subprocess.Popen[bytes]:
        work = self.root / name
        work.mkdir(parents=True, exist_ok=True)
        # The token goes in OPSFLOW_TOKEN, as the docs say: a command line is visible to every
        # user of the machine in the process list.
        argv = [_opsflow(), "agent", "--server", self.url]
        argv += ["--work-dir", str(work), "--concurrency", str(concurrency), "--grace", "5"]
        with (work / "agent.log").open("ab") as out:
            process = subprocess.Popen(
                argv,
                env={**_env(self.lease), "OPSFLOW_TOKEN": self.token},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120
        )

    def publish(self, workflow_id: str, yaml_text: str) -> None:
        res = self.http.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=yaml_text,
            headers={"Content-Type": "application/yaml"},
        )
        res.raise_for_status()

    def agent_token(self, pool: str = "default") -> str:
        """A new agent token of ``pool`` (agents register with one, not an admin's token)."""
        res = self.http.post("/agents/tokens", json={"pool": pool, "name": "bench"})
        res.raise_for_status()
        return str(res.json()["token"])

    def run(self, workflow_id: str) -> str:
        res = self.http.post(f"/workflows/{workflow_id}/runs", json={"params": {}})
        res.raise_for_status()
        return str(res.json()["id"])

    def first_lines(self, execution_id: str) -> dict[str, float]:
        """Job id -> the ``at`` of its first log line (seq 1), in epoch seconds."""
        res = self.http.get(
            f"/executions/{execution_id}/logs", params={"stream": "system", "limit": 10000}
        )
        res.raise_for_status()
        return {line["job_id"]: _t(line["at"]) for line in res.json()["items"] if line["seq"] == 1}

    def detail(self, execution_id: str) -> dict[str, Any]:
        res = self.http.get(f"/executions/{execution_id}")
        res.raise_for_status()
        return dict(res.json())

    def status(self, execution_id: str) -> str:
        """The execution's status from the executions list (one row): the detail of a
        100-step execution polled twice a second took a fifth of the server's CPU that the
        fan-out's figure then charged to the agents' steps (py-spy)."""
        res = self.http.get("/executions", params={"id_prefix": execution_id, "limit": 1})
        res.raise_for_status()
        (item,) = res.json()["items"]
        return str(item["status"])

    def finish(self, execution_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.status(execution_id) in ("completed", "failed", "cancelled", "error"):
                return self.detail(execution_id)
            if time.monotonic() > deadline:
                raise SystemExit(f"{execution_id} did not finish: {self.status(execution_id)}")
            # The figures come from the jobs' own records, not from this polling.
            time.sleep(0.2)


def jobs_of(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return [job for step in detail["steps"] for job in step["jobs"]]


def dispatch(api: Api, fleet: Fleet, links: int, step_timeout: str | None) -> None:
    fleet.start("dispatch", 4)
    chain = "id: chain\nsteps:\n" + "\n".join(
        f"  - {{id: s{i}, type: script, shell: sh, run: 'true'"
        + (f", needs: [s{i - 1}]" if i else "")
        + (f", timeout: {step_timeout}" if step_timeout else "")
        + "}"
        for i in range(links)
    )
    api.publish("chain", chain)
    api.finish(api.run("chain"))  # warm-up: the agent caches the files
    execution_id = api.run("chain")
    jobs = jobs_of(api.finish(execution_id))[1:]
    first_line = api.first_lines(execution_id)
    claimed = [(_t(j["dispatched_at"]) - _t(j["created_at"])) * 1000 for j in jobs]
    started = [(_t(j["started_at"]) - _t(j["created_at"])) * 1000 for j in jobs]
    spawned = [(first_line[j["id"]] - _t(j["created_at"])) * 1000 for j in jobs]
    by_claim = sum(j["started_at"] == j["dispatched_at"] for j in jobs)
    print(
        f"dispatch over {len(jobs)} links: queued -> claimed p50 {_pct(claimed, 50):.1f} ms, "
        f"p99 {_pct(claimed, 99):.1f} ms; queued -> started p50 {_pct(started, 50):.1f} ms, "
        f"p99 {_pct(started, 99):.1f} ms ({by_claim} started by their claim); "
        f"queued -> spawned p50 {_pct(spawned, 50):.1f} ms, p99 {_pct(spawned, 99):.1f} ms"
    )
    fleet.stop()


def throughput(api: Api, fleet: Fleet, fanout: int, concurrency: int, db: str | None) -> None:
    yaml_text = "id: fan\nsteps:\n" + "\n".join(
        f"  - {{id: s{i}, type: script, shell: sh, run: 'true'}}" for i in range(fanout)
    )
    api.publish("fan", yaml_text)
    for count in (1, 2, 4):
        started = [fleet.start(f"fan{count}-{n}", concurrency) for n in range(count)]
        time.sleep(1.0)  # the agents register and wait on the server
        split = CpuSplit(SERVER_PID, db)
        split.start([p.pid for p in started])
        jobs = jobs_of(api.finish(api.run("fan")))
        cpu = split.stop()
        first = min(_t(j["created_at"]) for j in jobs)
        last = max(_t(j["ended_at"]) for j in jobs)
        per_agent = sorted({j["agent_id"] for j in jobs})
        print(
            f"{count} agent(s) x {concurrency} slots: {fanout} steps in {last - first:.2f} s = "
            f"{fanout / (last - first):.0f} steps/s (jobs spread over {len(per_agent)} agents)"
        )
        per_step = {k: v / fanout * 1000 for k, v in cpu.items()}
        print(
            f"  CPU per step: server {per_step['server']:.1f} ms, agents "
            f"{per_step['agents']:.1f} ms (+ their jobs {per_step['jobs']:.1f} ms), database "
            + (f"{per_step['database']:.1f} ms" if db else "in the server (SQLite)")
            + f", rest of the machine {per_step['others']:.1f} ms; machine busy "
            f"{cpu['machine'] / cpu['wall']:.2f} of {os.cpu_count()} cores over {cpu['wall']:.1f} s"
        )
        fleet.stop()


def requeue(api: Api, fleet: Fleet, kills: int) -> None:
    api.publish(
        "long",
        "id: long\nsteps:\n  - {id: work, type: script, shell: sh, "
        "run: 'echo started; sleep 60', retries: 50}\n",
    )
    delays: list[float] = []
    execution_id = api.run("long")
    for k in range(kills):
        victim = fleet.start(f"victim-{k}", 1)  # the only agent: it takes the next attempt
        deadline = time.monotonic() + 60
        while not any(j["status"] == "running" for j in jobs_of(api.detail(execution_id))):
            if time.monotonic() > deadline:
                raise SystemExit("no attempt started")
            time.sleep(0.05)
        attempts = len(jobs_of(api.detail(execution_id)))
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        fleet.processes.remove(victim)
        # What the victim's next start would do: its `sleep` lives on in its cgroup otherwise.
        leftovers.reap((fleet.root / f"victim-{k}" / "jobs").resolve())
        while len(jobs_of(api.detail(execution_id))) == attempts:
            time.sleep(0.02)
        successor = jobs_of(api.detail(execution_id))[-1]
        delays.append(_t(successor["created_at"]) - killed_at)
    print(
        f"re-queue after kill -9 over {kills} kills: p50 {_pct(delays, 50):.2f} s, "
        f"p99 {_pct(delays, 99):.2f} s, max {max(delays):.2f} s (lease {fleet.lease:g} s)"
    )
    fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in the data dir)")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--links", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="links 30, fan-out 100, 5 kills")
    parser.add_argument(
        "--only",
        choices=["dispatch", "throughput", "requeue"],
        action="append",
        help="run only these parts (repeatable; default: all three)",
    )
    parser.add_argument(
        "--step-timeout",
        help="give the dispatch chain's steps this timeout (e.g. 1h): an agent's claim does "
        "not start a job with a timeout, whose own start arms it",
    )
    args = parser.parse_args()
    parts = set(args.only or ["dispatch", "throughput", "requeue"])
    if args.quick:
        args.links, args.fanout, args.kills = 30, 100, 5
    with tempfile.TemporaryDirectory(prefix="opsflow-agents-bench-") as tmp:
        root = Path(tmp)
        with server(root, args.db, args.lease) as (url, token):
            api = Api(url, token)
            fleet = Fleet(root / "agents", url, api.agent_token(), args.lease)
            try:
                print(f"backend: {'postgresql' if args.db else 'sqlite'}, lease {args.lease:g} s")
                if "dispatch" in parts:
                    dispatch(api, fleet, args.links, args.step_timeout)
                if "throughput" in parts:
                    throughput(api, fleet, args.fanout, args.concurrency, args.db)
                if "requeue" in parts:
                    requeue(api, fleet, args.kills)
            finally:
                fleet.stop()


if __name__ == "__main__":
    main()
