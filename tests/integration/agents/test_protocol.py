"""The agent protocol over HTTP against a real server: a waiting claim is woken by a queued
job, a job is named by id, lease token and epoch only, and a stale reference is refused."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

from opsflow.agent.protocol import LogLine
from opsflow.status import LogStream
from tests.servers import RunningServer

from .conftest import Api, agent_client

ONE_STEP = """
id: one
steps:
  - {id: work, type: script, run: "echo hi"}
"""


def test_a_waiting_claim_gets_a_job_the_moment_it_is_queued_and_stale_epochs_are_refused(
    server: RunningServer, api: Api
) -> None:
    agent = agent_client(server)
    registered = agent.post("/register", json={"agent_id": "test-agent-1", "concurrency": 1})
    assert registered.status_code == 200, registered.text
    assert registered.json()["lease_seconds"] == 2.0
    api.publish("one", ONE_STEP)

    answer: dict[str, Any] = {}

    def long_poll() -> None:
        res = agent.post("/claim", json={"agent_id": "test-agent-1", "limit": 1, "wait": 20})
        answer["at"] = time.monotonic()
        answer["res"] = res

    waiting = threading.Thread(target=long_poll)
    waiting.start()
    time.sleep(0.5)  # the claim is waiting on the server now (nothing is queued)
    assert "res" not in answer
    execution_id = api.run("one")
    queued_at = time.monotonic()
    waiting.join(30)
    res = answer["res"]
    assert res.status_code == 200, res.text
    (job,) = res.json()["jobs"]
    # Woken by the queueing itself, not by the 20 s wait running out (loose bound: CI load).
    assert answer["at"] - queued_at < 2.0
    assert job["execution_id"] == execution_id and job["step_id"] == "work"
    assert job["epoch"] == 1 and job["config"]["run"] == "echo hi"

    ref = {"job_id": job["job_id"], "lease_token": job["lease_token"], "epoch": job["epoch"]}
    stale = {**ref, "epoch": 0}
    refused = agent.post("/heartbeat", json=stale)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "epoch" in refused.json()["detail"]
    # A report names the job only: anything else is refused as an unknown field.
    assert agent.post("/start", json={**ref, "step_id": "other"}).status_code == 422
    assert agent.post("/start", json=ref).json() == {
        "requested": False,
        "force": False,
        "timed_out": False,
    }
    lines = [list(LogLine(1, time.time(), LogStream.STDOUT, "hi"))]
    assert agent.post("/logs", json={"job": ref, "lines": lines}).status_code == 204
    report = {"job": ref, "status": "completed", "outputs": {"exit_code": 0}, "exit_code": 0}
    assert agent.post("/report", json={**report, "job": stale}).status_code == 409
    assert agent.post("/report", json=report).status_code == 204
    assert agent.post("/report", json=report).status_code == 409  # delivered once

    api.wait_for(
        "the run completes",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=30,
    )
    assert api.log_texts(execution_id) == ["hi"]
    detail = api.execution(execution_id)
    (step,) = detail["steps"]
    (attempt,) = step["jobs"]
    assert attempt["agent_id"] == "test-agent-1"
    agent.close()


def test_a_claim_that_accepts_started_jobs_is_answered_again_with_them_and_a_start_is_harmless(
    server: RunningServer, api: Api
) -> None:
    """An agent that says it accepts started jobs (``start``) gets them running, its start
    time the claim's; the claim sent again after its answer was lost gets the same jobs, same
    lease, still running; a ``start`` sent anyway (an older agent's habit) changes nothing.
    An agent that does not say so (an older one) gets its jobs dispatched, as before."""
    agent = agent_client(server)
    assert agent.post("/register", json={"agent_id": "newer", "concurrency": 1}).status_code == 200
    api.publish("one", ONE_STEP)
    execution_id = api.run("one")
    claim = {"agent_id": "newer", "limit": 1, "wait": 20, "claim_id": "claim-0001", "start": True}
    (job,) = agent.post("/claim", json=claim).json()["jobs"]
    assert job["started"] is True
    # The answer was lost: the same claim, sent again.
    (again,) = agent.post("/claim", json={**claim, "resent": True}).json()["jobs"]
    assert {k: again[k] for k in ("job_id", "lease_token", "epoch", "started")} == {
        k: job[k] for k in ("job_id", "lease_token", "epoch", "started")
    }
    (attempt,) = api.execution(execution_id)["steps"][0]["jobs"]
    assert attempt["status"] == "running"
    assert attempt["started_at"] == attempt["dispatched_at"]
    ref = {"job_id": job["job_id"], "lease_token": job["lease_token"], "epoch": job["epoch"]}
    started = agent.post("/start", json=ref)
    assert started.status_code == 200 and started.json()["requested"] is False
    (after,) = api.execution(execution_id)["steps"][0]["jobs"]
    assert (after["status"], after["started_at"]) == ("running", attempt["started_at"])
    report = {"job": ref, "status": "completed", "outputs": {"exit_code": 0}, "exit_code": 0}
    assert agent.post("/report", json=report).status_code == 204
    api.wait_for(
        "the run completes",
        lambda: api.execution(execution_id)["status"] == "completed",
        timeout=30,
    )
    (done,) = api.execution(execution_id)["steps"][0]["jobs"]  # one attempt, started once
    assert (done["status"], done["started_at"]) == ("completed", attempt["started_at"])

    older = api.run("one")
    claim = {"agent_id": "newer", "limit": 1, "wait": 20, "claim_id": "claim-0002"}
    (plain,) = agent.post("/claim", json=claim).json()["jobs"]
    assert plain["started"] is False
    (dispatched,) = api.execution(older)["steps"][0]["jobs"]
    assert (dispatched["status"], dispatched["started_at"]) == ("dispatched", None)
    agent.close()


def test_an_empty_claim_answers_when_its_wait_runs_out(server: RunningServer) -> None:
    with agent_client(server) as agent:
        began = time.monotonic()
        res = agent.post("/claim", json={"agent_id": "idle", "limit": 2, "wait": 1})
        assert res.status_code == 200 and res.json() == {"jobs": []}
        assert 0.9 <= time.monotonic() - began < 10


def test_a_log_line_time_no_clock_can_show_is_refused_and_the_log_stays_readable(
    server: RunningServer, api: Api
) -> None:
    agent = agent_client(server)
    assert agent.post("/register", json={"agent_id": "clock", "concurrency": 1}).status_code == 200
    api.publish("one", ONE_STEP)
    execution_id = api.run("one")
    claimed = agent.post("/claim", json={"agent_id": "clock", "limit": 1, "wait": 20})
    (job,) = claimed.json()["jobs"]
    ref = {"job_id": job["job_id"], "lease_token": job["lease_token"], "epoch": job["epoch"]}
    # A time beyond what a date can hold was stored, and every later read of the log was a
    # 500; NaN was a 500 at once.
    for at in [float("nan"), float("inf"), 1e308, -1.0]:
        line = [1, at, "stdout", "never stored"]
        body = json.dumps({"job": ref, "lines": [line]})  # NaN and Infinity as json writes them
        refused = agent.post("/logs", content=body, headers={"Content-Type": "application/json"})
        assert refused.status_code == 422, (at, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["loc"] for e in refused.json()["errors"]] == ["body.lines[0][1]"]
    good = [list(LogLine(1, time.time(), LogStream.STDOUT, "hi"))]
    assert agent.post("/logs", json={"job": ref, "lines": good}).status_code == 204
    logs = api.client.get(f"/executions/{execution_id}/logs")
    assert logs.status_code == 200, logs.text
    assert api.log_texts(execution_id) == ["hi"]
    agent.close()


def test_a_stopping_server_answers_a_waiting_claim_at_once_and_does_not_wait_for_it(
    server: RunningServer,
) -> None:
    """uvicorn waits for every open request before it stops: an agent's claim waiting (up to
    30 s) for a job must answer, with no job, as soon as the server begins to stop."""
    agent = agent_client(server)
    registered = agent.post("/register", json={"agent_id": "test-agent-2", "concurrency": 1})
    assert registered.status_code == 200, registered.text
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["res"] = agent.post(
            "/claim", json={"agent_id": "test-agent-2", "limit": 1, "wait": 30}
        )
        answer["at"] = time.monotonic()

    waiting = threading.Thread(target=long_poll)
    waiting.start()
    time.sleep(0.5)  # the claim is waiting on the server now (nothing is queued)
    assert "res" not in answer
    os.kill(server.pid, signal.SIGTERM)
    stopping_at = time.monotonic()
    waiting.join(40)
    res = answer["res"]
    assert res.status_code == 200, res.text
    assert res.json()["jobs"] == []
    # Answered on the stop, not when its 30 s ran out (loose bound: CI load).
    assert answer["at"] - stopping_at < 10.0
    deadline = stopping_at + 20
    while "Finished server process" not in server.log.read_text():
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.05)  # the log is the only view of the server's end a test has
    agent.close()
