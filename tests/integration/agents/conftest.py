"""Real ``opsflow server`` processes for the agent tests: no local agent, short leases."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.agent import leftovers
from tests.conftest import BACKENDS
from tests.servers import (
    RunningServer,
    clean_env,
    fresh_database,
    opsflow_executable,
    run_server,
    warm_launch,
)

LEASE = 2.0
HEARTBEAT = 0.5


@pytest.fixture(params=BACKENDS)
def agent_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh migrated database of each backend, for a server process."""
    yield from fresh_database(request, tmp_path_factory, "agents")


def server_env() -> dict[str, str]:
    return {
        **clean_env(),
        "OPSFLOW_ADMIN_PASSWORD": "admin-pw-for-tests",
        "OPSFLOW_LEASE_SECONDS": str(LEASE),
        "OPSFLOW_HEARTBEAT_SECONDS": str(HEARTBEAT),
    }


@pytest.fixture
def server(agent_db: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A server that runs no job itself: only agents do."""
    data = tmp_path / "server"
    data.mkdir()
    with run_server(
        agent_db, data, "--no-local-agent", launch=warm_launch, env=server_env()
    ) as running:
        yield running


def start_replicas(
    stack: ExitStack, agent_db: str, tmp_path: Path, names: tuple[str, ...]
) -> list[RunningServer]:
    """Replicas on one database, started side by side (each a real server process with no
    local agent, its data dir ``tmp_path / name``), stopped when ``stack`` closes."""
    dirs = [tmp_path / name for name in names]
    for d in dirs:
        d.mkdir()
    with ThreadPoolExecutor(len(dirs)) as pool:
        started = [
            pool.submit(
                stack.enter_context,
                run_server(agent_db, d, "--no-local-agent", launch=warm_launch, env=server_env()),
            )
            for d in dirs
        ]
        return [future.result() for future in started]


class Api:
    """The API calls the agent tests make."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def publish(self, workflow_id: str, yaml_text: str) -> None:
        res = self.client.put(
            f"/workflows/{workflow_id}",
            params={"publish": "true"},
            content=yaml_text,
            headers={"Content-Type": "application/yaml"},
        )
        assert res.status_code in (200, 201), res.text

    def run(self, workflow_id: str) -> str:
        res = self.client.post(f"/workflows/{workflow_id}/runs", json={"params": {}})
        assert res.status_code == 201, res.text
        execution_id: str = res.json()["id"]
        return execution_id

    def run_until_started(self, workflow_id: str, yaml_text: str) -> str:
        """Publish ``yaml_text``, run it, and wait until its job says ``started`` in its log
        (an agent runs it); returns the execution id."""
        self.publish(workflow_id, yaml_text)
        execution_id = self.run(workflow_id)
        self.wait_for(
            "an agent runs the job",
            lambda: "started" in self.log_texts(execution_id),
            timeout=60,
        )
        return execution_id

    def execution(self, execution_id: str) -> dict[str, Any]:
        res = self.client.get(f"/executions/{execution_id}")
        assert res.status_code == 200, res.text
        detail: dict[str, Any] = res.json()
        return detail

    def log_texts(self, execution_id: str) -> list[str]:
        res = self.client.get(f"/executions/{execution_id}/logs", params={"limit": 10000})
        assert res.status_code == 200, res.text
        return [line["text"] for line in res.json()["items"]]

    def wait_for(self, what: str, check: Callable[[], bool], *, timeout: float) -> None:
        """Poll the API (the only event a separate process offers) until ``check`` holds."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout}s")
            time.sleep(0.05)


def agent_token(server: RunningServer, pool: str = "default", name: str = "") -> str:
    """A new agent token of ``pool``, created by the admin through the API."""
    res = httpx.post(
        f"{server.url}/api/v1/agents/tokens",
        json={"pool": pool, "name": name},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    assert res.status_code == 201, res.text
    secret: str = res.json()["token"]
    return secret


def agent_client(server: RunningServer, secret: str | None = None) -> httpx.Client:
    """An HTTP client of the agent protocol's routes (``/api/v1/agent``), speaking with
    ``secret`` (a new agent token of the default pool when None)."""
    return httpx.Client(
        base_url=f"{server.url}/api/v1/agent",
        headers={"Authorization": f"Bearer {secret or agent_token(server)}"},
        timeout=60,
    )


def _pool_of(args: tuple[str, ...]) -> str:
    """The pool an agent's command line asks for (``default`` without ``--pool``)."""
    for flag, value in itertools.pairwise(args):
        if flag == "--pool":
            return value
    return "default"


@pytest.fixture
def api(server: RunningServer) -> Iterator[Api]:
    client = Api(server.url, server.token)
    yield client
    client.client.close()


class Agents:
    """Real ``opsflow agent`` processes, each with its own work dir and log; stopped (and, if
    need be, killed) when the test ends."""

    def __init__(self, server: RunningServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.tokens: dict[str, str] = {}  # pool -> an agent token of it

    def token(self, pool: str = "default") -> str:
        """An agent token of ``pool`` (made once per pool)."""
        if pool not in self.tokens:
            self.tokens[pool] = agent_token(self.server, pool, f"tests-{pool}")
        return self.tokens[pool]

    def start(
        self, name: str, *args: str, token: str | None = None, url: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start an agent; without ``token``, with an agent token of the pool it asks for;
        ``url``: where it reaches the server (default the server's own, e.g. a proxy's)."""
        work = self.root / name
        work.mkdir(parents=True, exist_ok=True)
        argv = [opsflow_executable(), "agent", "--server", url or self.server.url]
        argv += ["--work-dir", str(work), *args]
        # The token goes in OPSFLOW_TOKEN, as the docs say: never on the command line, where
        # every user of the machine can read it in the process list.
        env = {**clean_env(), "OPSFLOW_TOKEN": token or self.token(_pool_of(args))}
        with (work / "agent.log").open("ab") as out:
            process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=work
            )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.root / name / "agent.log").read_text(errors="replace")

    def agent_id(self, name: str) -> str:
        path = self.root / name / "agent-id"
        deadline = time.monotonic() + 30
        while not path.exists():
            assert time.monotonic() < deadline, self.log(name)
            time.sleep(0.05)
        return path.read_text().strip()

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # What each agent's next start would do: the jobs of one killed with -9 (or SIGSTOPped
        # past its lease) live on in their cgroups otherwise, after the test.
        for name in self.processes:
            leftovers.reap((self.root / name / "jobs").resolve())


@pytest.fixture
def agents(server: RunningServer, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(server, tmp_path / "agents")
    yield running
    running.close()


def spooled(work: Path) -> str:
    """What an agent's on-disk spool under ``work`` holds now (its JSON lines)."""
    return "".join(p.read_text(errors="replace") for p in (work / "spool").glob("*.jsonl"))


def job_lines(api: Api, execution_id: str) -> list[dict[str, Any]]:
    res = api.client.get(f"/executions/{execution_id}/logs", params={"limit": 10000})
    assert res.status_code == 200, res.text
    items: list[dict[str, Any]] = res.json()["items"]
    return items


def assert_reported_once(
    api: Api, agents: Agents, execution_id: str, agent_id: str, work: Path, count: int
) -> None:
    """The one-step run of ``count`` lines completed in one attempt on ``agent_id``, its lines
    stored once each, numbered without a gap, none lost in transit, and the spool emptied."""
    (step,) = api.execution(execution_id)["steps"]
    assert [(j["status"], j["agent_id"]) for j in step["jobs"]] == [("completed", agent_id)], (
        step,
        agents.log("a"),
    )
    assert step["outputs"]["said"] == count, step
    lines = job_lines(api, execution_id)
    seqs = [line["seq"] for line in lines]
    assert seqs == list(range(1, len(lines) + 1)), seqs  # no gap, no duplicate
    said = [line["text"] for line in lines if line["stream"] == "stdout"]
    assert said == [f"line-{i}" for i in range(1, count + 1)], said
    assert not any("lost in transit" in line["text"] for line in lines), lines
    api.wait_for("the spool empties", lambda: not spooled(work), timeout=30)
