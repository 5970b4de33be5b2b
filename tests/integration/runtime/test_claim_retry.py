"""A claim is idempotent by its claim id: sent again after its answer was lost, it gets the
jobs the first try leased (same lease token and epoch, lease renewed), and nothing else; a
new claim id, a started or handed-back job, or a first claim older than two leases does not."""

from __future__ import annotations

import pytest

from opsflow.agent.protocol import JobRef
from opsflow.errors import StaleReport
from opsflow.runtime.service import RunRequest, Runtime
from opsflow.spec.loader import canonical, load_workflow
from opsflow.status import JobStatus
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
    runtime: Runtime, claim_id: str, limit: int = 1, *, resent: bool = False
) -> list[jobs_store.Job]:
    return runtime.claim(
        agent_id="ag", pools=["default"], labels={}, limit=limit, claim_id=claim_id, resent=resent
    )


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
