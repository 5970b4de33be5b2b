"""Webhook accept latency and sustained deliveries per second, through a real server.

Not a timed test: run it by hand and read the table. Each backend gets a fresh ``opsflow
server`` (fresh data dir; a SQLite file in it, or a new PostgreSQL database) with one
published workflow whose webhook trigger's generated secret is read by rotating it, as a
person would. By default the server runs without its local agent, so the figures are the
ingress's own (authenticate, rate-count, start the execution and record the delivery in the
database, answer 202); ``--with-agent`` lets the started runs execute meanwhile.

Workloads (each delivery a new ``Idempotency-Key``, so each starts a run):

- accept latency, one client, one request at a time on a kept-alive connection: p50 / p99 /
  max of bearer deliveries, of Standard Webhooks signed deliveries, and of repeats (200);
- sustained deliveries per second to the 202 with ``--clients`` concurrent clients for
  ``--seconds``, and the p50 / p99 latency those clients saw.

Latency is measured by the client (request sent to answer read) on loopback. Target (issue
16): p99 accept < 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from opsflow.triggers.webhook import sign

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from server_bench import free_port, pct, pg_database, serving  # noqa: E402

WORKFLOW = """\
id: bench-hook
params:
  n: {type: integer, default: 0}
triggers:
  - {type: webhook}
steps:
  - {id: s, type: script, shell: sh, run: 'true'}
"""


@dataclass
class Hook:
    url: str
    secret: str


@contextlib.contextmanager
def server(db_url: str | None, with_agent: bool) -> Iterator[tuple[Hook, int]]:
    """A started server with the bench workflow published; its hook and the server's pid."""
    with tempfile.TemporaryDirectory(prefix="opsflow-hookbench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        env["OPSFLOW_ADMIN_PASSWORD"] = "bench-admin-password"
        env["OPSFLOW_HOOK_RATE_PER_MINUTE"] = str(10**9)  # the bench measures, not limits
        argv = [str(Path(sys.executable).parent / "opsflow"), "server", "--data-dir", str(data)]
        argv += ["--port", str(port), "--host", "127.0.0.1"]
        if db_url:
            argv += ["--db", db_url]
        if not with_agent:
            argv.append("--no-local-agent")
        log = Path(tmp) / "server.log"
        base = f"http://127.0.0.1:{port}"
        with serving(argv, env, log, base) as process:
            token = (data / "admin-token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as api:
                api.put(
                    "/workflows/bench-hook?publish=true",
                    content=WORKFLOW,
                    headers={"Content-Type": "application/yaml"},
                ).raise_for_status()
                (trigger,) = api.get("/workflows/bench-hook/triggers").json()
                rotated = api.post(
                    f"/workflows/bench-hook/triggers/{trigger['name']}/rotate-secret"
                )
                rotated.raise_for_status()
            yield Hook(trigger["url"], rotated.json()["secret"]), process.pid


Headers = Callable[[bytes], dict[str, str]]


def bearer_headers(hook: Hook) -> Headers:
    def make(_body: bytes) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {hook.secret}",
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }

    return make


def signed_headers(hook: Hook) -> Headers:
    def make(body: bytes) -> dict[str, str]:
        msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(hook.secret, msg_id, stamp, body),
            "Content-Type": "application/json",
        }

    return make


BODY = b'{"params": {"n": 7}, "variables": {"sha": "0123456789abcdef"}}'


def latencies(hook: Hook, headers: Headers, count: int, expect: int) -> list[float]:
    """Milliseconds of ``count`` sequential deliveries on one kept-alive connection."""
    out: list[float] = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            sent = headers(BODY)
            started = time.perf_counter()
            response = client.post(hook.url, content=BODY, headers=sent)
            out.append((time.perf_counter() - started) * 1000)
            if response.status_code != expect:
                raise RuntimeError(f"{response.status_code}: {response.text}")
    return out


def repeats(hook: Hook, count: int) -> list[float]:
    """Milliseconds of ``count`` repeats of one delivery (each answered 200)."""
    headers = bearer_headers(hook)(BODY)
    with httpx.Client(timeout=30) as client:
        client.post(hook.url, content=BODY, headers=headers).raise_for_status()
    return latencies(hook, lambda _b: headers, count, 200)


def sustained(hook: Hook, clients: int, seconds: float) -> tuple[float, list[float]]:
    """Deliveries per second answered 202 by ``clients`` concurrent clients over ``seconds``,
    and the latencies they saw."""
    stop = time.monotonic() + seconds
    seen: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    make = bearer_headers(hook)

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = client.post(hook.url, content=BODY, headers=make(BODY))
                if response.status_code != 202:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
                    return
                seen[index].append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    if errors:
        raise RuntimeError(errors[0])
    flat = [ms for per in seen for ms in per]
    return len(flat) / elapsed, flat


def row(label: str, values: list[float]) -> str:
    return (
        f"  {label:<34} n={len(values):<5} p50 {statistics.median(values):6.1f} ms   "
        f"p99 {pct(values, 99):6.1f} ms   max {max(values):6.1f} ms"
    )


def bench(label: str, db_url: str | None, args: argparse.Namespace) -> None:
    with server(db_url, args.with_agent) as (hook, _pid):
        latencies(hook, bearer_headers(hook), 20, 202)  # warm-up: imports, pools, caches
        bearer = latencies(hook, bearer_headers(hook), args.count, 202)
        signed = latencies(hook, signed_headers(hook), args.count, 202)
        repeated = repeats(hook, args.count)
        rate, seen = sustained(hook, args.clients, args.seconds)
    print(f"{label}:")
    print(row("accept, bearer (202)", bearer))
    print(row("accept, signed (202)", signed))
    print(row("repeat (200, deduplicated)", repeated))
    print(
        f"  sustained, {args.clients} clients, {args.seconds:.0f} s     "
        f"{rate:7.1f} deliveries/s to the 202 (p50 {statistics.median(seen):.1f} ms, "
        f"p99 {pct(seen, 99):.1f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--count", type=int, default=500, help="sequential deliveries per kind")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, sustained")
    parser.add_argument("--seconds", type=float, default=10.0, help="sustained run length")
    parser.add_argument("--with-agent", action="store_true", help="runs execute meanwhile")
    parser.add_argument("--quick", action="store_true", help="200 per kind, 5 s sustained")
    args = parser.parse_args()
    if args.quick:
        args.count, args.seconds = 200, 5.0
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores; uptime: {load}")
    agent = "with the local agent running them" if args.with_agent else "no local agent"
    print(f"webhook deliveries through a real server ({agent}); client-measured, loopback\n")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            bench("SQLite", None, args)
        elif backend == "postgresql":
            with pg_database() as url:
                bench("PostgreSQL", url, args)
        else:
            parser.error(f"unknown backend {backend!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
