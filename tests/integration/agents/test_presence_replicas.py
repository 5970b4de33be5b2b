"""Whether an agent is online is the database's, so every replica agrees: an agent that talks
to replica A only is online in replica B's ``GET /agents`` and ``/metrics`` while it runs
(an idle one too: its waiting claim renews its presence), offline on B at once when it leaves,
and within the online window (two leases, at least three presence rounds; 30 s with the
default lease) after a ``kill -9``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsflow.runtime.roster import online_window
from tests.conftest import BACKENDS
from tests.servers import RunningServer

from .conftest import LEASE, Agents, Api, start_replicas

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="replicas share a PostgreSQL"),
]

WINDOW = online_window(LEASE)


def gauge(server: RunningServer, pool: str = "default") -> float:
    """``opsflow_agents_online{pool=...}`` of one scrape (0 when the pool has no sample)."""
    response = httpx.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "opsflow_agents_online" and sample.labels.get("pool") == pool:
                return sample.value
    return 0.0


def online(api: Api, agent_id: str) -> bool | None:
    """The agent's ``online`` in ``GET /agents`` (None: not listed)."""
    res = api.client.get("/agents")
    assert res.status_code == 200, res.text
    return next((a["online"] for a in res.json() if a["id"] == agent_id), None)


def until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check`` holds; fails after ``timeout``."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - began


@pytest.mark.parametrize("agent_db", ["postgresql"], indirect=True)
def test_every_replica_shows_an_agent_offline_once_it_leaves_or_is_killed(
    agent_db: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        a, b = start_replicas(stack, agent_db, tmp_path, ("a", "b"))
        on_a, on_b = Api(a.url, a.token), Api(b.url, b.token)
        stack.callback(on_a.client.close)
        stack.callback(on_b.client.close)
        agents = Agents(a, tmp_path / "agents")  # talks to replica A only
        stack.callback(agents.close)
        assert gauge(a) == 0 and gauge(b) == 0

        agents.start("x")
        agent_id = agents.agent_id("x")
        until("B lists it online", lambda: online(on_b, agent_id) is True, 30)
        until("B's gauge counts it", lambda: gauge(b) == 1, 30)
        # Idle, past the whole online window: its waiting claims keep it online everywhere.
        idle_until = time.monotonic() + WINDOW + 2
        while time.monotonic() < idle_until:
            assert online(on_b, agent_id) is True and gauge(b) == 1, agents.log("x")
            assert online(on_a, agent_id) is True and gauge(a) == 1
            time.sleep(0.5)

        # It leaves (SIGTERM drains, then it tells A): B says offline at once.
        agents.processes["x"].terminate()
        assert agents.processes["x"].wait(timeout=30) == 0, agents.log("x")
        assert online(on_b, agent_id) is False and gauge(b) == 0
        assert online(on_a, agent_id) is False and gauge(a) == 0

        # Back, then killed: nobody is told; B says offline within the online window.
        killed = agents.start("x")
        until("online again on B", lambda: online(on_b, agent_id) is True and gauge(b) == 1, 30)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        took = until(
            "B shows the killed agent offline",
            lambda: online(on_b, agent_id) is False and gauge(b) == 0,
            30,
        )
        print(f"killed agent offline on the other replica after {took:.1f}s (window {WINDOW}s)")
        assert took <= WINDOW + 3.0, took  # the last look may take a moment on a busy machine
        assert online(on_a, agent_id) is False and gauge(a) == 0
