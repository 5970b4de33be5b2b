"""Agent tokens against a real server and real agents: made by an admin through the CLI, shown
once, listed without their secret, bound to a pool, and revoked at once on every agent route
(a claim already waiting on the server included), the revoked agent's job lost when its lease
expires."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from opsflow.agent.loop import REFUSED
from opsflow.runtime.roster import online_window
from tests.servers import RunningServer, clean_env, opsflow_executable

from .conftest import LEASE, Agents, Api, agent_client

SLEEPER = """
id: sleeper
steps:
  - id: work
    type: script
    shell: sh
    # Prints on: log batches are being shipped when the token is revoked.
    run: "echo started; for i in $(seq 1 300); do echo tick $i; sleep 0.1; done"
"""


def _cli(server: RunningServer, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [opsflow_executable(), "--url", server.url, "--token", server.token, "agents", *args]
    done = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=60)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def _secret_of(created: str) -> str:
    (line,) = [x for x in created.splitlines() if x.startswith("token: ")]
    return line.removeprefix("token: ").strip()


def _audit_actions(api: Api) -> list[tuple[str, str]]:
    res = api.client.get("/audit", params={"limit": 100})
    assert res.status_code == 200, res.text
    body = res.json()
    entries = body["items"] if isinstance(body, dict) else body
    return [(e["action"], e["target"]) for e in entries]


def test_an_agent_token_is_shown_once_listed_without_its_secret_and_bound_to_its_pool(
    server: RunningServer, api: Api
) -> None:
    created = _cli(server, "tokens", "create", "--pool", "eu", "--name", "eu-hosts").stdout
    secret = _secret_of(created)
    assert secret.startswith("opfa_") and "pool eu" in created
    # The way to start an agent keeps the secret off the command line (the process list).
    assert f"`OPSFLOW_TOKEN=<token> opsflow agent --server {server.url}`" in created
    assert "--token" not in created
    listed = json.loads(_cli(server, "tokens", "list", "-o", "json").stdout)
    (token,) = [t for t in listed if t["name"] == "eu-hosts"]
    assert token["pool"] == "eu" and token["active"] and secret.startswith(token["prefix"])
    assert token["last_used_at"] is None
    assert secret not in json.dumps(listed) and "token" not in token
    assert ("agent_token.create", token["id"]) in _audit_actions(api)

    with agent_client(server, secret) as agent:
        other = agent.post("/register", json={"agent_id": "eu-1", "pools": ["us"]})
        assert other.status_code == 403, other.text
        detail = other.json()["detail"]
        assert "'eu'" in detail and "'us'" in detail and "--pool eu" in detail
        claim = agent.post("/claim", json={"agent_id": "eu-1", "pools": ["us"], "wait": 0})
        assert claim.status_code == 403
        # --pool left out: the token's pool.
        own = agent.post("/register", json={"agent_id": "eu-1"})
        assert own.status_code == 200 and own.json()["pools"] == ["eu"]
    shown = api.client.get("/agents/eu-1").json()
    assert shown["pools"] == ["eu"] and shown["token_id"] == token["id"]
    # Its use is recorded (in a write of its own, at most once a minute: the check only reads).
    (used,) = [t for t in api.client.get("/agents/tokens").json() if t["id"] == token["id"]]
    assert used["last_used_at"] is not None, used
    # The kinds do not mix: a user's token is refused by the agent protocol, an agent token
    # by the rest of the API.
    with agent_client(server, server.token) as user:
        refused = user.post("/register", json={"agent_id": "u-1"})
        assert refused.status_code == 403 and "agent token" in refused.json()["detail"]
    elsewhere = httpx.get(
        f"{server.url}/api/v1/workflows", headers={"Authorization": f"Bearer {secret}"}
    )
    assert elsewhere.status_code == 401 and "agent token" in elsewhere.json()["detail"]
    assert _cli(server, "tokens", "create", "--pool", "", ok=False).returncode != 0


def test_a_revoked_token_is_refused_at_once_on_every_route_and_its_agents_job_is_lost(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    secret = agents.token()
    agents.start("revoked")
    agent_id = agents.agent_id("revoked")
    execution_id = api.run_until_started("sleeper", SLEEPER)
    # A second agent with the same token, its claim waiting on the server (nothing queued).
    waiting = agent_client(server, secret)
    assert waiting.post("/register", json={"agent_id": "waiter"}).status_code == 200
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["res"] = waiting.post("/claim", json={"agent_id": "waiter", "wait": 25})
        answer["at"] = time.monotonic()

    poll = threading.Thread(target=long_poll)
    poll.start()
    time.sleep(0.5)
    assert "res" not in answer

    revoked = _cli(server, "revoke", agent_id).stdout  # by the agent's id: its token
    revoked_at = time.monotonic()
    assert "revoked" in revoked and agent_id in revoked
    poll.join(30)
    assert answer["res"].status_code == 401, answer["res"].text
    assert "revoked" in answer["res"].json()["detail"]
    assert answer["at"] - revoked_at < 3.0  # woken by the revocation, not its 25 s wait

    (job,) = api.execution(execution_id)["steps"][0]["jobs"]
    ref = {"job_id": job["id"], "lease_token": "x" * 32, "epoch": 1}
    for path, body in [
        ("/register", {"agent_id": "waiter"}),
        ("/claim", {"agent_id": "waiter", "wait": 0}),
        ("/start", ref),
        ("/heartbeat", ref),
        ("/logs", {"job": ref, "lines": []}),
        ("/report", {"job": ref, "status": "completed"}),
        ("/hand-back", {"job": ref}),
        ("/artifact", {"job": ref, "step_id": "work", "name": "plan"}),
    ]:
        res = waiting.post(path, json=body)
        assert res.status_code == 401, (path, res.text)
    assert waiting.get("/bundles/" + "0" * 64).status_code == 401
    waiting.close()

    # The running agent's heartbeats are refused too: its job is lost when the lease expires.
    api.wait_for(
        "the revoked agent's job is lost",
        lambda: api.execution(execution_id)["status"] == "failed",
        timeout=LEASE + 20,
    )
    (job,) = api.execution(execution_id)["steps"][0]["jobs"]
    assert job["status"] == "failed" and job["error"].startswith("agent lost")
    (listed,) = json.loads(_cli(server, "tokens", "list", "-o", "json").stdout)
    assert not listed["active"] and agent_id in listed["agents"]
    assert ("agent_token.revoke", listed["id"]) in _audit_actions(api)
    # Revoking again by the token's id is idempotent.
    assert _cli(server, "revoke", listed["id"]).returncode == 0
    # The agent stopped its job when its heartbeat was refused, and exits non-zero with one
    # clear line: no traceback per refused log batch, no unretrieved task exception.
    assert agents.processes["revoked"].wait(timeout=30) != 0
    said = agents.log("revoked")
    assert said.count(REFUSED) == 1 and "was revoked at" in said, said
    assert "Traceback" not in said and "never retrieved" not in said, said


def test_revoking_a_revoked_agent_token_is_idempotent_and_audited_once(
    server: RunningServer, api: Api
) -> None:
    created = api.client.post("/agents/tokens", json={"pool": "eu", "name": "twice"})
    assert created.status_code == 201, created.text
    token_id = created.json()["id"]
    first = api.client.delete(f"/agents/tokens/{token_id}")
    assert first.status_code == 200 and not first.json()["active"], first.text
    again = api.client.delete(f"/agents/tokens/{token_id}")
    assert again.status_code == 200, again.text
    # The existing revoked state: the first revocation time, not a new one.
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    by_cli = _cli(server, "revoke", token_id).stdout
    assert "revoked" in by_cli and token_id in by_cli
    revokes = [a for a in _audit_actions(api) if a == ("agent_token.revoke", token_id)]
    assert len(revokes) == 1
    missing = api.client.delete("/agents/tokens/atk_nosuch")
    assert missing.status_code == 404 and "atk_nosuch" in missing.json()["detail"]


SLEEPER_EU = """
id: sleeper-eu
steps:
  - {id: work, type: script, shell: sh, run: "echo started; sleep 30", agent: {pool: eu}}
"""


def _metric_online(server: RunningServer, pool: str) -> float:
    """``opsflow_agents_online{pool=...}`` of one scrape (0 when the pool has no sample)."""
    res = httpx.get(f"{server.url}/metrics", timeout=30)
    assert res.status_code == 200, res.text
    for family in text_string_to_metric_families(res.text):
        for sample in family.samples:
            if sample.name == "opsflow_agents_online" and sample.labels.get("pool") == pool:
                return float(sample.value)
    return 0.0


def test_a_revoked_agent_is_offline_at_once_and_its_pool_says_no_agent_serves_it(
    server: RunningServer, api: Api, agents: Agents
) -> None:
    """Revoking a running agent's token marks it left in the revocation's transaction: not
    online (``revoked``) in the agents list, the CLI and /metrics before its online window
    runs out, so a step of its pool queued then says no agent serves the pool; its running
    job keeps its lease (lost only when the lease expires)."""
    agents.start("eu", "--pool", "eu")
    agent_id = agents.agent_id("eu")
    api.publish("sleeper-eu", SLEEPER_EU)
    running = api.run("sleeper-eu")
    api.wait_for("the agent runs the job", lambda: "started" in api.log_texts(running), timeout=60)
    before = api.client.get(f"/agents/{agent_id}").json()
    assert before["online"] is True and before["revoked"] is False, before
    # Online until at least then without the fix (its last_seen only grows meanwhile).
    online_until = datetime.fromisoformat(before["last_seen"]).timestamp() + online_window(LEASE)

    assert agent_id in _cli(server, "revoke", agent_id).stdout
    (job,) = api.execution(running)["steps"][0]["jobs"]
    (listed,) = [a for a in api.client.get("/agents").json() if a["id"] == agent_id]
    assert listed["online"] is False and listed["revoked"] is True, listed
    assert listed["running"] == [job["id"]] and job["status"] == "running", (listed, job)
    assert "revoked" in _cli(server, "show", agent_id).stdout
    assert _metric_online(server, "eu") == 0
    queued = api.run("sleeper-eu")
    assert api.execution(queued)["steps"][0]["pending_reason"] == "no agent serves pool eu"
    assert time.time() < online_until, "too slow to tell a revoked agent from a stale one"

    # Its running job is lost only when its lease expires, as before.
    api.wait_for(
        "the revoked agent's job is lost",
        lambda: api.execution(running)["status"] == "failed",
        timeout=LEASE + 20,
    )
    assert agents.processes["eu"].wait(timeout=30) != 0


def test_an_agent_refused_at_registration_never_says_it_is_serving(
    server: RunningServer, agents: Agents
) -> None:
    """New-user trial: ``agent ... serving pool us`` was logged before the server answered the
    registration, then the agent exited with the server's refusal."""
    wrong_pool = agents.start("wrong-pool", "--pool", "us", token=agents.token("eu"))
    bad_token = agents.start("bad-token", token="opfa_not-a-token")
    assert wrong_pool.wait(timeout=30) != 0
    assert bad_token.wait(timeout=30) != 0
    for name in ("wrong-pool", "bad-token"):
        said = agents.log(name)
        assert "error:" in said and "serving" not in said, said
    # A registration the server accepts is announced, with the pool it granted.
    agents.start("good", token=agents.token("eu"))
    good = agents.agent_id("good")
    deadline = time.monotonic() + 30
    while f"agent {good} serving pool eu (its token's)" not in agents.log("good"):
        assert time.monotonic() < deadline, agents.log("good")
        time.sleep(0.05)
