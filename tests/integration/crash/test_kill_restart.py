"""Crash safety with real processes: ``kill -9`` of the server at random moments, then a restart.

What a user relies on (ARCHITECTURE.md §5): a server may die at any line and, once started
again on the same database, every execution goes on; a job that was running on the dead local
agent becomes a failed attempt ("agent lost") once the server restarts (or its lease expires,
whichever comes first), and the step's retry policy decides; timers that fell due while the
server was down fire at once; and nothing is lost or doubled (each step's attempts are
numbered 1..n, at most one completed).

The random schedule is seeded; the seed is printed, and ``OPSFLOW_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsflow.config import Settings
from opsflow.status import ExecutionStatus, JobStatus, StepStatus

from .conftest import Api, CrashServer, epoch

pytestmark = pytest.mark.slow

AGENT_LOST = "agent lost"
# Attempts lost in a row after which a step fails (OPSFLOW_AGENT_LOST_LIMIT, default).
LOST_LIMIT = Settings.agent_lost_limit
IN_FLIGHT = {JobStatus.DISPATCHED, JobStatus.RUNNING}

# Several script steps: a chain, three parallel branches, retries everywhere (a kill during a
# job costs an attempt), and a step that fails its first attempt on purpose and waits 1s
# before the retry, so a kill often lands while that timer is pending.
MIX = """
id: crash-mix
steps:
  - id: prepare
    type: script
    shell: sh
    retries: 3
    run: sleep 0.2
  - id: left
    type: script
    shell: sh
    needs: [prepare]
    retries: 3
    run: sleep 0.3
  - id: right
    type: script
    shell: sh
    needs: [prepare]
    retries: 3
    run: sleep 0.2; echo right
  - id: flaky
    type: script
    shell: sh
    needs: [prepare]
    retries: 3
    retry_delay: 1s
    run: |
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then echo "first attempt fails on purpose" >&2; exit 3; fi
      echo "attempt $OPSFLOW_ATTEMPT passes"
  - id: join
    type: script
    shell: sh
    needs: [left, right, flaky]
    retries: 3
    run: sleep 0.2
  - id: finish
    type: script
    shell: sh
    needs: [join]
    retries: 1
    run: echo done
"""
MIX_RETRIES = {"prepare": 3, "left": 3, "right": 3, "flaky": 3, "join": 3, "finish": 1}
FAILS_ON_PURPOSE = {("flaky", 1)}
KILLS = 10
# Room for one new run before every kill: a restart fails its lost attempts at once (no lease
# to wait out), so runs end sooner and an aimed kill must always find work in flight.
MAX_RUNS = 3 + KILLS

# The first attempt blocks until the test releases it, so the kill surely lands mid-job.
HOLD = 'while [ ! -e "$MARKS/release" ]; do sleep 0.1; done'
LOST_RETRY = f"""
id: lost-retry
params: {{marks: {{type: string}}}}
steps:
  - id: work
    type: script
    shell: sh
    retries: 1
    env: {{MARKS: "{{{{ params.marks }}}}"}}
    run: |
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then {HOLD}; fi
      echo "attempt $OPSFLOW_ATTEMPT done"
"""
LOST_NO_RETRY = f"""
id: lost-no-retry
params: {{marks: {{type: string}}}}
steps:
  - id: work
    type: script
    shell: sh
    env: {{MARKS: "{{{{ params.marks }}}}"}}
    run: |
      {HOLD}
"""
TIMER_DELAY = 2.0
DUE_TIMER = f"""
id: due-timer
steps:
  - id: flaky
    type: script
    shell: sh
    retries: 1
    retry_delay: {TIMER_DELAY:g}s
    run: |
      if [ "$OPSFLOW_ATTEMPT" = 1 ]; then echo "fails once" >&2; exit 7; fi
  - id: after
    type: script
    shell: sh
    needs: [flaky]
    run: echo after
"""


# --------------------------------------------------------------------------- reading state


def step_of(detail: dict[str, Any], step_id: str) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in detail["steps"] if s["id"] == step_id)
    return step


def is_terminal(detail: dict[str, Any]) -> bool:
    return ExecutionStatus(detail["status"]).terminal


def unfinished(api: Api, ids: list[str], ended: set[str]) -> list[str]:
    """The executions not yet terminal; ``ended`` remembers the rest (an end is final), so a
    poll costs one request per execution still going."""
    going = []
    for eid in ids:
        if eid not in ended:
            if is_terminal(api.execution(eid)):
                ended.add(eid)
            else:
                going.append(eid)
    return going


def any_job_running(api: Api, ids: list[str]) -> bool:
    return any(
        job["status"] == JobStatus.RUNNING
        for eid in ids
        for step in api.execution(eid)["steps"]
        for job in step["jobs"]
    )


def explain(api: Api, ids: list[str]) -> Callable[[], str]:
    """A failure message: each execution's status, steps with attempts, and engine log."""

    def text() -> str:
        lines = []
        for eid in ids:
            d = api.execution(eid)
            lines.append(f"{eid}: {d['status']} {d['status_reason']}")
            for s in d["steps"]:
                jobs = [(j["attempt"], j["status"], j["error"]) for j in s["jobs"]]
                lines.append(f"  {s['id']}: {s['status']} {jobs}")
            lines += [f"  | {e['step'] or '-'}: {e['message']}" for e in d["engine_log"][-15:]]
        return "\n".join(lines)

    return text


def check_attempts(
    detail: dict[str, Any], retries: dict[str, int], lost_at_kill: set[str]
) -> list[str]:
    """Every step ended once, with exactly the attempts its history explains; returns the
    problems found (empty when the execution is sound)."""
    problems: list[str] = []
    eid = detail["id"]
    status = ExecutionStatus(detail["status"])
    exhausted = False
    for step in detail["steps"]:
        sid, jobs = step["id"], step["jobs"]
        where = f"{eid} step {sid}"
        if not StepStatus(step["status"]).terminal:
            problems.append(f"{where} ended the run as {step['status']}")
        numbers = [j["attempt"] for j in jobs]
        if numbers != list(range(1, len(jobs) + 1)):
            problems.append(f"{where}: attempt numbers {numbers}, expected 1..{len(jobs)}")
        if len(jobs) > 1 + retries[sid]:
            problems.append(f"{where}: {len(jobs)} attempts for retries={retries[sid]}")
        completed = [j for j in jobs if j["status"] == JobStatus.COMPLETED]
        if len(completed) > 1:
            problems.append(f"{where}: {len(completed)} completed attempts")
        for job in jobs:
            lost = AGENT_LOST in (job["error"] or "")
            if job["status"] not in (JobStatus.COMPLETED, JobStatus.FAILED):
                problems.append(f"{where} attempt {job['attempt']}: ended as {job['status']}")
            elif job["id"] in lost_at_kill and not lost:
                problems.append(f"{where} attempt {job['attempt']}: held at a kill, not lost")
            elif lost and job["id"] not in lost_at_kill:
                problems.append(f"{where} attempt {job['attempt']}: lost without a kill")
            elif (
                job["status"] == JobStatus.FAILED
                and not lost
                and (sid, job["attempt"]) not in FAILS_ON_PURPOSE
            ):
                problems.append(f"{where} attempt {job['attempt']}: failed: {job['error']}")
        if step["status"] == StepStatus.SUCCEEDED:
            if not jobs or jobs[-1]["status"] != JobStatus.COMPLETED:
                problems.append(f"{where} succeeded but its last attempt did not complete")
        elif step["status"] == StepStatus.FAILED:
            last_lost = AGENT_LOST in (jobs[-1]["error"] or "")
            # Lost the server's limit of times in a row: failed whatever retries are left.
            lost_in_a_row = len(jobs) >= LOST_LIMIT and all(
                AGENT_LOST in (j["error"] or "") for j in jobs[-LOST_LIMIT:]
            )
            spent = (len(jobs) == 1 + retries[sid] and last_lost) or lost_in_a_row
            exhausted = exhausted or spent
            if not spent:
                problems.append(f"{where} failed with retries left or for no kill: {jobs}")
    if status == ExecutionStatus.COMPLETED:
        bad = [s["id"] for s in detail["steps"] if s["status"] != StepStatus.SUCCEEDED]
        if bad:
            problems.append(f"{eid} completed but steps {bad} did not succeed")
    elif status != ExecutionStatus.FAILED or not exhausted:
        problems.append(f"{eid} ended {status.value} ({detail['status_reason']}) unexplained")
    return problems


# --------------------------------------------------------------------------- the tests


def test_kill_9_at_random_moments_every_execution_ends_with_exact_attempts(
    crash_server: Callable[..., CrashServer],
) -> None:
    seed = int(os.environ.get("OPSFLOW_CRASH_SEED") or time.time_ns() % 2**32)
    print(f"\ncrash schedule seed: {seed} (replay with OPSFLOW_CRASH_SEED={seed})")
    rng = random.Random(seed)
    server = crash_server(lease=2.0, heartbeat=0.3)
    api = server.start()
    api.publish("crash-mix", MIX)
    ids = [api.run("crash-mix") for _ in range(3)]
    held_at_kill: set[str] = set()
    ended: set[str] = set()
    kills_during_job = 0
    restarting = 0.0
    for n in range(KILLS):
        if len(unfinished(api, ids, ended)) < 4 and len(ids) < MAX_RUNS:
            ids.append(api.run("crash-mix"))  # keep work in flight for the next kills
        if n % 2 == 0:  # aimed: some job is running now, kill within the next 0.25s
            api.wait_for(
                "a job running before the aimed kill",
                lambda: any_job_running(api, unfinished(api, ids, ended)),  # noqa: B023
                timeout=20,
                explain=explain(api, ids),
            )
            time.sleep(rng.uniform(0.0, 0.25))
        else:  # any moment: between jobs, while a retry timer waits, mid-commit
            time.sleep(rng.uniform(0.05, 1.0))
        server.kill()
        held = [j for j in server.jobs(ids) if j.status in IN_FLIGHT]
        held_at_kill.update(j.id for j in held)
        kills_during_job += any(j.status == JobStatus.RUNNING for j in held)
        began = time.monotonic()
        api = server.start()
        restarting += time.monotonic() - began

    api.wait_for(
        "every execution terminal after the last restart",
        lambda: not unfinished(api, ids, ended),
        timeout=45,
        explain=explain(api, ids),
    )
    details = [api.execution(e) for e in ids]
    problems = [p for d in details for p in check_attempts(d, MIX_RETRIES, held_at_kill)]
    lost = sum(
        AGENT_LOST in (j["error"] or "") for d in details for s in d["steps"] for j in s["jobs"]
    )
    outcomes = sorted(d["status"] for d in details)
    print(
        f"crash summary: {server.kills} kills, {kills_during_job} during a running job, "
        f"{len(held_at_kill)} jobs held at a kill, {lost} attempts 'agent lost', "
        f"{len(ids)} executions: {outcomes}; restarts took {restarting:.1f}s in all"
    )
    assert not problems, "\n".join(problems) + "\n" + explain(api, ids)()
    assert lost == len(held_at_kill)
    assert kills_during_job >= KILLS // 2 - 1, "too few kills landed while a job was running"
    assert ExecutionStatus.COMPLETED in outcomes


def test_lost_jobs_follow_their_retry_policy_and_due_timers_fire_after_restart(
    crash_server: Callable[..., CrashServer], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    lease = 4.0
    server = crash_server(lease=lease, heartbeat=1.0)
    api = server.start()
    try:
        for wf_id, text in [
            ("lost-retry", LOST_RETRY),
            ("lost-no-retry", LOST_NO_RETRY),
            ("due-timer", DUE_TIMER),
        ]:
            api.publish(wf_id, text)
        timer_run = api.run("due-timer")
        retry_run = api.run("lost-retry", {"marks": str(marks)})
        no_retry_run = api.run("lost-no-retry", {"marks": str(marks)})
        ids = [timer_run, retry_run, no_retry_run]

        def ready() -> bool:
            flaky = step_of(api.execution(timer_run), "flaky")
            held = [step_of(api.execution(e), "work")["jobs"] for e in (retry_run, no_retry_run)]
            return (
                flaky["status"] == StepStatus.WAITING
                and flaky["retry_at"] is not None
                and all(jobs and jobs[0]["status"] == JobStatus.RUNNING for jobs in held)
            )

        api.wait_for(
            "both jobs running and the retry timer set",
            ready,
            timeout=20,
            explain=explain(api, ids),
        )
        retry_at = epoch(step_of(api.execution(timer_run), "flaky")["retry_at"])
        assert retry_at is not None
        server.kill()
        killed_at = time.time()
        assert killed_at < retry_at, "the kill came after the timer fell due; nothing to prove"
        held = {j.execution_id: j for j in server.jobs(ids) if j.status in IN_FLIGHT}
        assert set(held) == {retry_run, no_retry_run}, held
        expiry = {eid: float(j.lease_expires_at or 0.0) for eid, j in held.items()}
        # Stay down until the retry timer has fallen due: the point is a timer due while down.
        time.sleep(max(0.0, retry_at + 0.3 - time.time()))
        restarted_at = time.time()
        api = server.start()
        healthy_at = time.time()
        api.wait_for(
            "all three executions terminal after the restart",
            lambda: all(is_terminal(api.execution(e)) for e in ids),
            timeout=lease + 30,
            explain=explain(api, ids),
        )
    finally:
        (marks / "release").touch()  # lets the dead agent's orphaned scripts end

    timer = api.execution(timer_run)
    assert timer["status"] == ExecutionStatus.COMPLETED, explain(api, ids)()
    first, second = step_of(timer, "flaky")["jobs"]
    assert (first["status"], second["status"]) == (JobStatus.FAILED, JobStatus.COMPLETED)
    fired_at = epoch(second["created_at"])
    assert fired_at is not None and restarted_at <= fired_at <= healthy_at + 1.0, (
        f"the retry due at {retry_at:.3f} was created at {fired_at}; restart launched at "
        f"{restarted_at:.3f}, healthy at {healthy_at:.3f}"
    )

    retried = api.execution(retry_run)
    assert retried["status"] == ExecutionStatus.COMPLETED, explain(api, ids)()
    lost, again = step_of(retried, "work")["jobs"]
    assert lost["status"] == JobStatus.FAILED and AGENT_LOST in lost["error"], lost
    assert again["status"] == JobStatus.COMPLETED and again["attempt"] == 2, again
    lost_ended, again_created = epoch(lost["ended_at"]), epoch(again["created_at"])
    assert lost_ended is not None and again_created is not None
    # Failed by the restarted server (which knows its predecessor is dead) or by the lease,
    # whichever came first; never while the killed server might still have been running it.
    assert lost_ended >= min(restarted_at, expiry[retry_run]), "lost before the restart"
    assert again_created >= lost_ended, "retried before the attempt was declared lost"

    not_retried = api.execution(no_retry_run)
    assert not_retried["status"] == ExecutionStatus.FAILED, explain(api, ids)()
    work = step_of(not_retried, "work")
    assert work["status"] == StepStatus.FAILED
    [only] = work["jobs"]
    assert only["status"] == JobStatus.FAILED and AGENT_LOST in only["error"], only
    lost_ended = epoch(only["ended_at"])
    assert lost_ended is not None
    assert lost_ended >= min(restarted_at, expiry[no_retry_run]), "lost before the restart"
    print(
        f"\nrestart: down {restarted_at - killed_at:.2f}s, healthy after "
        f"{healthy_at - restarted_at:.2f}s; timer fired {fired_at - retry_at:.2f}s after due, "
        f"{fired_at - restarted_at:.2f}s after launch; lost leases expired "
        f"{max(expiry.values()) - killed_at:.2f}s after the kill"
    )
