"""A claim is idempotent by its claim id: sent again after its answer was lost, it gets the
jobs the first try leased (same lease token and epoch, lease renewed), and nothing else; a
new claim id, a job the agent started or handed back, or a first claim older than two leases
does not. Jobs the claim itself started (`ClaimRequest.start`) are answered again as they
are: running, same start time, no second start or attempt."""

from __future__ import annotations

import pytest

from opsflow.agent.protocol import JobRef
from opsflow.errors import StaleReport
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import JobStatus
from opsflow.store import agents as agents_store
from opsflow.store import jobs as jobs_store
from opsflow.store import runs as runs_store
from opsflow.store.db import Database

LEASE = 4.0
TWO = """
id: two
steps:
  - {id: a, type: script, run: "true"}
  - {id: b, type: script, run: "true"}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _runtime(database: Database, clock: Clock) -> Runtime:
    runtime = Runtime(database, lease_seconds=LEASE, clock=clock)
    workflow = load_workflow(TWO)
    runtime.start_execution(
        RunRequest(workflow_id=workflow.id, definition=canonical(workflow), params={})
    )
    runtime.jobs.register(agent_id="ag", pools=["default"], labels={}, version="1", hostname="h")
    return runtime


def _claim(
    runtime: Runtime, claim_id: str, limit: int = 1, *, resent: bool = False, start: bool = False
) -> list[jobs_store.Job]:
    return runtime.claim(
        agent_id="ag",
        pools=["default"],
        labels={},
        limit=limit,
        claim_id=claim_id,
        resent=resent,
        start=start,
    )


def _stored(database: Database, execution_id: str) -> list[jobs_store.Job]:
    with database.read() as session:
        return jobs_store.jobs_of_execution(session, execution_id)


def _running_events(database: Database, execution_id: str) -> list[str]:
    with database.read() as session:
        events = runs_store.events_after(session, execution_id, 0)
    return [
        e["data"]["step"] for e in events if e["kind"] == "job" and e["data"]["status"] == "running"
    ]


def _ref(job: jobs_store.Job) -> JobRef:
    assert job.lease_token is not None
    return JobRef(job_id=job.id, lease_token=job.lease_token, epoch=job.lease_epoch)


def test_a_claim_sent_again_gets_the_same_lease_renewed_and_nothing_more(
    database: Database,
) -> None:
    clock = Clock()
    runtime = _runtime(database, clock)
    (first,) = _claim(runtime, "claim-one")
    clock.now += 3.0  # the answer was lost; the lease (4 s) is almost over
    (again,) = _claim(runtime, "claim-one", resent=True)
    assert (again.id, again.lease_token, again.lease_epoch) == (
        first.id,
        first.lease_token,
        first.lease_epoch,
    )
    with database.read() as session:
        stored = jobs_store.get_job(session, first.id)
    assert stored.status == JobStatus.DISPATCHED
    assert stored.lease_expires_at == clock.now + LEASE  # renewed by the retry
    # Not marked resent, the same id is a new claim: it leases the other job, not this one.
    (other,) = _claim(runtime, "claim-one")
    assert other.id != first.id
    # Once started, a job is no longer an answer to resend.
    runtime.start_job(_ref(first))
    runtime.start_job(_ref(other))
    assert _claim(runtime, "claim-one", resent=True) == []


def test_a_resent_claim_gets_nothing_after_a_hand_back_or_two_leases(
    database: Database,
) -> None:
    clock = Clock()
    runtime = _runtime(database, clock)
    (first,) = _claim(runtime, "claim-one")
    runtime.hand_back(_ref(first))
    # Handed back, the job is queued: the retry leases it afresh (new token, next epoch),
    # with the other queued job, as any claim would.
    again = {j.id: j for j in _claim(runtime, "claim-one", limit=2, resent=True)}
    assert first.id in again and len(again) == 2
    assert again[first.id].lease_epoch == first.lease_epoch + 1
    assert again[first.id].lease_token != first.lease_token
    for job in again.values():
        runtime.hand_back(_ref(job))

    both = _claim(runtime, "claim-three", limit=2)
    assert len(both) == 2
    resent = [j.id for j in _claim(runtime, "claim-three", limit=2, resent=True)]
    assert sorted(resent) == sorted(j.id for j in both)
    for _ in range(3):  # each retry renews the leases, but only within two leases of the claim
        clock.now += LEASE * 0.9
        resent = [j.id for j in _claim(runtime, "claim-three", limit=2, resent=True)]
    assert resent == []  # left to run out as for any lost agent


def _handed_back(database: Database, execution_id: str) -> list[tuple[str | None, str]]:
    with database.read() as session:
        log = runs_store.engine_log(session, execution_id)
    return [(e["step_id"], e["message"]) for e in log if "handed back" in e["message"]]


def test_a_hand_back_is_written_to_the_engine_log(database: Database) -> None:
    clock = Clock()
    runtime = _runtime(database, clock)
    (job,) = _claim(runtime, "claim-one")
    runtime.hand_back(_ref(job))
    with database.read() as session:
        assert jobs_store.get_job(session, job.id).status == JobStatus.PENDING
    said = f"step {job.step_id}: job handed back by agent ag (draining; attempt 1 "
    assert _handed_back(database, job.execution_id) == [
        (job.step_id, said + "had not started); re-queued for another agent")
    ]
    with pytest.raises(StaleReport):  # a second hand-back of that lease is refused, unlogged
        runtime.hand_back(_ref(job))
    assert len(_handed_back(database, job.execution_id)) == 1

    # A job still running when the agent's grace ran out is stopped and handed back too.
    (again,) = [j for j in _claim(runtime, "claim-two", limit=2) if j.id == job.id]
    runtime.start_job(_ref(again))
    runtime.hand_back(_ref(again))
    assert _handed_back(database, job.execution_id)[1] == (
        job.step_id,
        said + "was stopped unfinished); re-queued for another agent",
    )

    # A claim abandoned before its answer went out (the agent went away): the server hands
    # back what it leased, started by the claim or not, and says the agent never had it.
    (third,) = [j for j in _claim(runtime, "claim-three", limit=2, start=True) if j.id == job.id]
    assert third.status == JobStatus.RUNNING
    runtime.jobs.hand_back(_ref(third), unanswered=True)
    assert _handed_back(database, job.execution_id)[2] == (
        job.step_id,
        f"step {job.step_id}: job handed back by the server: the claim of agent ag was "
        "abandoned before its answer (the agent went away or is stopping); attempt 1 never "
        "reached it; re-queued for another agent",
    )
    with database.read() as session:
        back = jobs_store.get_job(session, job.id)
    assert (back.status, back.started_at, back.attempt) == (JobStatus.PENDING, None, 1)


def test_a_resent_claim_of_jobs_it_started_gets_them_as_they_are_and_no_second_attempt(
    database: Database,
) -> None:
    clock = Clock()
    runtime = _runtime(database, clock)
    first = {j.id: j for j in _claim(runtime, "claim-one", limit=2, start=True)}
    assert {j.status for j in first.values()} == {JobStatus.RUNNING}
    began = clock.now
    execution_id = next(iter(first.values())).execution_id
    clock.now += 3.0  # the answer was lost; the leases (4 s) are almost over
    again = {j.id: j for j in _claim(runtime, "claim-one", limit=2, resent=True, start=True)}
    assert {i: (j.lease_token, j.lease_epoch, j.status) for i, j in again.items()} == {
        i: (j.lease_token, j.lease_epoch, JobStatus.RUNNING) for i, j in first.items()
    }
    stored = _stored(database, execution_id)
    assert [(j.attempt, j.status, j.started_at) for j in stored] == [
        (1, JobStatus.RUNNING, began),
        (1, JobStatus.RUNNING, began),
    ]
    assert {j.lease_expires_at for j in stored} == {clock.now + LEASE}  # renewed
    assert sorted(_running_events(database, execution_id)) == ["a", "b"]  # one start each

    # An agent that sends a start anyway (one from before `ClaimRequest.start`, or a start
    # sent again): a plain answer, and nothing changes but the lease.
    one, other = again.values()
    clock.now += 1.0
    notice = runtime.start_job(_ref(one))
    assert not notice.requested
    (after,) = [j for j in _stored(database, execution_id) if j.id == one.id]
    assert (after.status, after.started_at, after.lease_token) == (
        JobStatus.RUNNING,
        began,
        one.lease_token,
    )
    assert sorted(_running_events(database, execution_id)) == ["a", "b"]
    # Its start shows the agent has the answer: the claim is answered with the other only.
    assert [j.id for j in _claim(runtime, "claim-one", limit=2, resent=True, start=True)] == [
        other.id
    ]
    # The same id not marked resent is a new claim: nothing is queued, nothing is leased.
    assert _claim(runtime, "claim-one", limit=2, start=True) == []
    assert len(_stored(database, execution_id)) == 2


def test_a_started_job_whose_claim_answer_never_arrives_is_lost_when_its_lease_runs_out(
    database: Database,
) -> None:
    """The agent died before it got the answer (or the answer never gets through): the
    attempt might have run, so it is never handed out afresh: its lease runs out and it
    counts as 'agent lost', like any lost attempt."""
    clock = Clock()
    runtime = _runtime(database, clock)
    (job,) = _claim(runtime, "claim-one", start=True)
    clock.now += 2.5 * LEASE
    # Past two leases the try finds nothing of its own (and leases the other queued job).
    assert job.id not in [j.id for j in _claim(runtime, "claim-one", resent=True, start=True)]
    assert runtime.expire_leases() == 1
    (lost,) = [j for j in _stored(database, job.execution_id) if j.id == job.id]
    assert lost.status == JobStatus.FAILED and jobs_store.agent_lost(lost.status, lost.error)
    with pytest.raises(StaleReport):
        runtime.start_job(_ref(job))


def test_a_draining_agents_resent_claim_gets_what_it_leased_and_nothing_new(
    database: Database,
) -> None:
    clock = Clock()
    runtime = _runtime(database, clock)
    (job,) = _claim(runtime, "claim-one", start=True)
    with database.session() as session:
        agents_store.set_draining(session, "ag", True)
    clock.now += LEASE / 2  # the claim's presence write is due: it learns of the drain
    (again,) = _claim(runtime, "claim-one", limit=2, resent=True, start=True)
    assert (again.id, again.lease_token, again.status) == (
        job.id,
        job.lease_token,
        JobStatus.RUNNING,
    )
    assert _claim(runtime, "claim-two", limit=2, start=True) == []
    assert [j.status for j in _stored(database, job.execution_id)].count(JobStatus.PENDING) == 1
