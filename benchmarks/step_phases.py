"""Where one chain step's time goes, through a real ``opsflow server``: a per-phase breakdown.

Not a timed test: run it by hand and read the table. For each backend it starts a real
``opsflow server`` (fresh data dir and database, local agent concurrency 16) through this very
file in ``serve`` mode, which wraps the functions on a step's path with wall-clock stamps
before the server starts (nothing in ``src/`` knows about it), runs a chain of ``sh -c true``
steps a few times over the HTTP API, and stops the server, which writes its stamps to a file
on its way out. Each link of each chain (a job and the one before it) is then cut into
phases, from the previous job's report to this job's report committed:

    report tx      the previous job's final report: lease check, end, reconcile, next job
                   queued, and (when the agent's claim waits in this process) the next job
                   leased to it, commit (``AgentJobs.write_serving``, or ``write`` in builds
                   before the write served waiting claims)
    wake -> claim  from that commit until the agent's waiting claim runs its transaction
                   (only for a job leased by a claim transaction of its own)
    claim tx       the claim transaction (lease the job, fill in secrets), idem
    commit -> claim answered   from the report's commit until the claim returns the job
                   (the two above, or the write's answer to the claim it served)
    -> serve       the claim's answer until the job's task runs (event loop hops)
    workdir        a fresh work dir (copy of the version's files, or an empty dir)
    start          the start call: dispatched -> running committed, answer back
    -> exec        from the start's answer to the executor's first line
    scope+spawn    open the process scope, fork/exec, the transport ready
    process        the child runs (``sh -c true``) until its exit is seen
    exit -> end    pipes drained, leftovers killed, scope closed, outputs read
    -> report      the executor's result until the report call (log sink, artifacts)
    report queue   the report call until its transaction begins (batching task, thread)

The medians (and p90) per phase are printed per backend, with the chain's total and the
dependent-start latency as ``server_bench.py`` computes it (a job's ``ended_at`` to the
next's ``started_at``, from the server's records).

    .venv/bin/python benchmarks/step_phases.py                     # both backends, 40 steps
    .venv/bin/python benchmarks/step_phases.py --backends sqlite --rounds 5 --steps 40
    .venv/bin/python benchmarks/step_phases.py --profile            # + a cProfile of the
                                                                    #   server's threads
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import contextvars
import functools
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRACE_ENV = "OPSFLOW_BENCH_TRACE"  # where the server writes its stamps (serve mode only)
PROFILE_ENV = "OPSFLOW_BENCH_PROFILE"  # where it writes its cProfile stats (serve mode only)

# -- serve mode: the server, with stamps ------------------------------------------------------

_stamps: list[tuple[str | None, str, float]] = []
_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_job", default=None)


def stamp(job_id: str | None, phase: str) -> None:
    _stamps.append((job_id, phase, time.time()))


def _wrap_async(owner: Any, name: str, phase: str, job_of: Callable[..., str | None]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        job_id = job_of(*args, **kwargs)
        stamp(job_id, f"{phase}>")
        try:
            return await original(*args, **kwargs)
        finally:
            stamp(job_id, f"{phase}<")

    setattr(owner, name, wrapper)


def _wrap_sync(owner: Any, name: str, phase: str, job_of: Callable[..., str | None]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        job_id = job_of(*args, **kwargs)
        stamp(job_id, f"{phase}>")
        try:
            return original(*args, **kwargs)
        finally:
            stamp(job_id, f"{phase}<")

    setattr(owner, name, wrapper)


def _current(*_: Any, **__: Any) -> str | None:
    return _job.get()


def instrument() -> None:
    """Wrap the functions on a step's path (before the server imports its app)."""
    from opsflow.agent.loop import Agent
    from opsflow.runtime.agent_jobs import AgentJobs
    from opsflow.runtime.agent_service import AgentService, InProcessClient
    from opsflow.steps import process, scope
    from opsflow.steps.script import ScriptExecutor

    serve = Agent._serve

    async def serve_stamped(self: Agent, job: Any) -> None:
        _job.set(job.job_id)
        stamp(job.job_id, "serve>")
        try:
            await serve(self, job)
        finally:
            stamp(job.job_id, "serve<")

    Agent._serve = serve_stamped  # type: ignore[method-assign]

    claim = AgentJobs.claim

    def claim_stamped(self: AgentJobs, **kwargs: Any) -> Any:
        began = time.time()
        jobs = claim(self, **kwargs)
        ended = time.time()
        for job in jobs:
            _stamps.append((job.id, "claim_tx>", began))
            _stamps.append((job.id, "claim_tx<", ended))
        if not jobs:
            _stamps.append((None, "empty_claim_tx>", began))
            _stamps.append((None, "empty_claim_tx<", ended))
        return jobs

    AgentJobs.claim = claim_stamped  # type: ignore[method-assign]

    service_claim = AgentService.claim

    async def service_claim_stamped(self: AgentService, request: Any, **kwargs: Any) -> Any:
        jobs = await service_claim(self, request, **kwargs)
        for job in jobs:
            stamp(job.job_id, "claim_answered")
        return jobs

    AgentService.claim = service_claim_stamped  # type: ignore[method-assign]

    # The reports' write (`AgentService` batches reports and log lines into one): its
    # transaction ends the job, reconciles, queues the next job and (since the waiting claims
    # are served by the write) leases it. Older builds have `write` only.
    name = "write_serving" if hasattr(AgentJobs, "write_serving") else "write"
    write = getattr(AgentJobs, name)

    def write_stamped(self: AgentJobs, reports: list[Any], *rest: Any) -> Any:
        began = time.time()
        out = None
        try:
            out = write(self, reports, *rest)
            return out
        finally:
            ended = time.time()
            for report in reports:
                _stamps.append((report.job.job_id, "finish_tx>", began))
                _stamps.append((report.job.job_id, "finish_tx<", ended))
            served = out[2] if out is not None and len(out) > 2 else {}
            for jobs in served.values():
                for job in jobs if isinstance(jobs, list) else []:
                    _stamps.append((job.id, "leased_in_write", ended))

    setattr(AgentJobs, name, write_stamped)

    _wrap_sync(AgentJobs, "start_job", "start_tx", lambda self, ref: ref.job_id)
    _wrap_async(InProcessClient, "start", "start", lambda self, ref: ref.job_id)
    _wrap_async(InProcessClient, "report", "report", lambda self, report: report.job.job_id)
    _wrap_async(Agent, "_workdir", "workdir", lambda self, job: job.job_id)
    _wrap_async(ScriptExecutor, "run", "exec", _current)
    _wrap_sync(process, "open_scope", "scope_open", _current)
    _wrap_async(process, "_kill_leftovers", "leftovers", _current)
    _wrap_async(process, "_drain", "drain", _current)
    for kind in (scope.Scope, scope.CgroupScope, scope.SubreaperScope):
        if "close" in vars(kind):
            _wrap_sync(kind, "close", "scope_close", _current)
        if "kill_all" in vars(kind):
            _wrap_sync(kind, "kill_all", "scope_kill_all", _current)

    made = process._Protocol.connection_made
    exited = process._Protocol.process_exited

    def made_stamped(self: Any, transport: Any) -> None:
        self.bench_job = _job.get()
        stamp(self.bench_job, "spawned")
        made(self, transport)

    def exited_stamped(self: Any) -> None:
        stamp(getattr(self, "bench_job", None), "exited")
        exited(self)

    # Each hop to a worker thread: queued -> running in the thread -> back on the loop.
    import asyncio

    to_thread = asyncio.to_thread

    async def to_thread_stamped(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        job_id = _job.get()
        name = getattr(func, "__name__", "call")
        stamp(job_id, f"hop:{name}>")

        def inside() -> Any:
            stamp(job_id, f"thread:{name}>")
            try:
                return func(*args, **kwargs)
            finally:
                stamp(job_id, f"thread:{name}<")

        try:
            return await to_thread(inside)
        finally:
            stamp(job_id, f"hop:{name}<")

    asyncio.to_thread = to_thread_stamped

    process._Protocol.connection_made = made_stamped  # type: ignore[method-assign]
    process._Protocol.process_exited = exited_stamped  # type: ignore[method-assign]

    # fork/exec (on the event loop's thread), and the exit as the child watcher's thread
    # sees it (the protocol hears of it only after the pipes are connected).
    import asyncio.unix_events
    import subprocess

    pids: dict[int, str | None] = {}
    execute = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_stamped(self: Any, *args: Any, **kwargs: Any) -> None:
        job_id = _job.get()
        stamp(job_id, "popen>")
        try:
            execute(self, *args, **kwargs)
        finally:
            stamp(job_id, "popen<")
            pids[self.pid] = job_id

    subprocess.Popen._execute_child = execute_stamped  # type: ignore[attr-defined]
    loop_class = asyncio.unix_events._UnixSelectorEventLoop
    seen = loop_class._child_watcher_callback  # type: ignore[attr-defined]

    def seen_stamped(self: Any, pid: int, returncode: int, transp: Any) -> None:
        stamp(pids.pop(pid, None), "exit_seen")
        seen(self, pid, returncode, transp)

    loop_class._child_watcher_callback = seen_stamped  # type: ignore[attr-defined]


def dump(path: str) -> None:
    Path(path).write_text(json.dumps(_stamps))


def serve() -> None:
    """``step_phases.py serve server [options]``: ``opsflow server`` with stamps."""
    instrument()
    atexit.register(dump, os.environ[TRACE_ENV])
    profile_to = os.environ.get(PROFILE_ENV)
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        threading.setprofile(lambda *_: profiler.enable(subcalls=True, builtins=True))
        profiler.enable()

        def save() -> None:
            profiler.disable()
            profiler.dump_stats(profile_to)

        atexit.register(save)
    from opsflow.cli.main import app

    # uvicorn re-raises SIGTERM once it has shut down: exit normally then, so atexit runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.argv.pop(1)
    app()


# -- driver mode ------------------------------------------------------------------------------

PHASES = [
    ("report tx", "finish_tx>", "finish_tx<", "prev"),
    ("wake -> claim", "finish_tx<", "claim_tx>", "mixed"),
    ("claim tx", "claim_tx>", "claim_tx<", "this"),
    ("commit -> claim answered", "finish_tx<", "claim_answered", "mixed"),
    ("-> serve", "claim_answered", "serve>", "this"),
    ("workdir", "workdir>", "workdir<", "this"),
    ("start", "start>", "start<", "this"),
    ("  (start tx)", "start_tx>", "start_tx<", "this"),
    ("-> exec", "start<", "exec>", "this"),
    ("-> popen", "exec>", "popen>", "this"),
    ("  (scope open)", "scope_open>", "scope_open<", "this"),
    ("popen (fork+exec)", "popen>", "popen<", "this"),
    ("process", "popen<", "exit_seen", "this"),
    ("pipes connected", "popen<", "spawned", "this"),
    ("exit -> protocol", "exit_seen", "exited", "this"),
    ("exit -> end", "exited", "exec<", "this"),
    ("  (leftovers)", "leftovers>", "leftovers<", "this"),
    ("  (drain)", "drain>", "drain<", "this"),
    ("  (scope close)", "scope_close>", "scope_close<", "this"),
    ("-> report", "exec<", "report>", "this"),
    ("report queue", "report>", "finish_tx>", "this"),
]


def links(stamps: list[list[Any]], chains: list[list[str]]) -> list[dict[str, float]]:
    """Per link (job, next job) the phases' durations in ms."""
    at: dict[str, dict[str, float]] = defaultdict(dict)
    for job_id, phase, t in stamps:
        if job_id is not None:
            at[job_id].setdefault(phase, t)  # the first occurrence
    out = []
    for order in chains:
        for prev, this in itertools.pairwise(order):
            row: dict[str, float] = {}
            for name, a, b, which in PHASES:
                src_a = at[prev] if which in ("prev", "mixed") else at[this]
                src_b = at[prev] if which == "prev" else at[this]
                if a in src_a and b in src_b:
                    row[name] = (src_b[b] - src_a[a]) * 1000
            row["link total"] = (at[this]["finish_tx<"] - at[prev]["finish_tx<"]) * 1000
            row["leased in the report tx"] = float("leased_in_write" in at[this])
            if "popen<" in at[this]:
                row["report -> spawn"] = (at[this]["popen<"] - at[prev]["finish_tx<"]) * 1000
            for phase in at[this]:
                if phase.startswith("hop:") and phase.endswith(">"):
                    name = phase[4:-1]
                    hop = at[this]
                    if f"thread:{name}>" in hop and f"hop:{name}<" in hop:
                        row[f"  hop {name}: to thread"] = (
                            hop[f"thread:{name}>"] - hop[phase]
                        ) * 1000
                        row[f"  hop {name}: back"] = (
                            hop[f"hop:{name}<"] - hop[f"thread:{name}<"]
                        ) * 1000
            out.append(row)
    return out


@contextlib.contextmanager
def traced_server(db_url: str | None, trace: Path, profile: Path | None) -> Iterator[Any]:
    """server_bench's server, started through this file's launcher, which stamps phases."""
    sys.path.insert(0, str(HERE))
    from server_bench import server

    extra = {TRACE_ENV: str(trace)}
    if profile is not None:
        extra[PROFILE_ENV] = str(profile)
    launcher = [sys.executable, str(Path(__file__).resolve()), "serve"]
    with server(db_url, "asyncio", 16, launcher=launcher, extra_env=extra) as running:
        yield running


def bench(label: str, db_url: str | None, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from server_bench import chain_figures, chain_yaml, pct

    with tempfile.TemporaryDirectory(prefix="opsflow-phases-out-") as out:
        trace = Path(out) / "trace.json"
        profile = Path(args.profile_out) / f"{label}.prof" if args.profile else None
        chains: list[list[str]] = []
        totals: list[float] = []
        gaps: list[float] = []
        with traced_server(db_url, trace, profile) as srv:
            srv.publish("bench-chain", chain_yaml("bench-chain", args.steps))
            srv.run("bench-chain")  # warm-up
            for _ in range(args.rounds):
                detail = srv.run("bench-chain")
                elapsed, g = chain_figures(detail)
                totals.append(elapsed)
                gaps += g
                jobs = sorted(
                    (job for step in detail["steps"] for job in step["jobs"]),
                    key=lambda job: job["started_at"],
                )
                chains.append([job["id"] for job in jobs])
        stamps = json.loads(trace.read_text())
        rows = links(stamps, chains)
        # Claim transactions that leased nothing (warm-up and idle waits included).
        empty = sum(1 for _, phase, _ in stamps if phase == "empty_claim_tx>")
    in_write = sum(1 for r in rows if r.get("leased in the report tx"))
    print(
        f"\n{label}: {args.rounds} chains of {args.steps} steps, {len(rows)} links, "
        f"{in_write} of them leased in the previous job's report transaction, "
        f"{empty} claim transactions that leased nothing"
    )
    print(
        f"  chain {statistics.median(totals):.3f} s ({min(totals):.3f}-{max(totals):.3f}), "
        f"dependent start p50 {pct(gaps, 50):.1f} ms, p99 {pct(gaps, 99):.1f} ms"
    )
    print(f"  {'phase':<34}{'p50 ms':>9}{'p90 ms':>9}")
    hops = sorted({k for r in rows for k in r if k.startswith("  hop ")})
    for name in [p[0] for p in PHASES] + ["link total", "report -> spawn", *hops]:
        values = [r[name] for r in rows if name in r]
        if values:
            print(f"  {name:<34}{statistics.median(values):>9.2f}{pct(values, 90):>9.2f}")
    if profile is not None:
        print(f"  profile: {profile} (python -m pstats)")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the server too")
    parser.add_argument("--profile-out", default=tempfile.gettempdir())
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from server_bench import pg_database

    for backend in args.backends.split(","):
        if backend == "sqlite":
            bench("SQLite", None, args)
        else:
            with pg_database() as url:
                bench("PostgreSQL", url, args)
    with contextlib.suppress(OSError):
        load = os.getloadavg()
        print(f"\nload average: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
