"""Why a queued job waits, judged against the agents online: pure rules, no database."""

from __future__ import annotations

from opsflow.runtime.roster import AgentPresence, AgentRoster, online_window, presence_round
from opsflow.runtime.waiting import queued_reason
from opsflow.status import JobStatus
from opsflow.store.jobs import Job


def job(pool: str = "default", labels: dict[str, str] | None = None) -> Job:
    return Job.from_values(
        {
            "id": "j1",
            "execution_id": "e1",
            "step_id": "build",
            "attempt": 1,
            "type": "script",
            "status": JobStatus.PENDING,
            "pool": pool,
            "labels": labels or {},
            "created_at": 0.0,
        }
    )


LOCAL = AgentPresence("local", ("default",), {}, capacity=16)


def test_every_slot_of_the_serving_agents_busy_says_how_many() -> None:
    reason = queued_reason(job(), [LOCAL], {"local": 16})
    assert reason == "waiting for a free slot on pool default (16/16 busy)"


def test_a_free_slot_means_nothing_holds_the_job_up() -> None:
    assert queued_reason(job(), [LOCAL], {"local": 15}) is None


def test_slots_add_up_over_every_agent_that_serves_the_pool() -> None:
    eu = AgentPresence("eu-1", ("default", "eu-west"), {"region": "eu"}, capacity=2)
    busy = {"local": 16, "eu-1": 2}
    assert queued_reason(job(), [LOCAL, eu], busy) == (
        "waiting for a free slot on pool default (18/18 busy)"
    )
    assert queued_reason(job("eu-west"), [LOCAL, eu], busy) == (
        "waiting for a free slot on pool eu-west (2/2 busy)"
    )
    assert queued_reason(job("eu-west", {"region": "us"}), [LOCAL, eu], busy) == (
        "no agent of pool eu-west has the labels region=us"
    )


def test_no_agent_at_all_names_the_pool() -> None:
    assert queued_reason(job("db-hosts"), [], {}) == "no agent serves pool db-hosts"
    assert queued_reason(job("db-hosts"), [LOCAL], {}) == "no agent serves pool db-hosts"


def test_an_agent_that_did_not_say_its_slots_is_not_called_busy() -> None:
    remote = AgentPresence("r1", ("us-east",), {})
    assert queued_reason(job("us-east"), [remote], {"r1": 40}) is None


def test_the_roster_holds_this_process_s_own_agent_until_it_leaves() -> None:
    roster = AgentRoster()
    roster.serve(LOCAL)
    assert roster.residents() == [LOCAL]
    roster.leave("local")
    assert roster.residents() == []


def test_the_online_window_outlasts_three_presence_rounds_and_two_leases() -> None:
    # The default lease: the 30 s operators read about; a short test lease: seconds.
    assert online_window(15.0) == 30.0 and presence_round(15.0) == 10.0
    assert online_window(2.0) == 6.0 and presence_round(2.0) == 2.0
    assert online_window(60.0) == 120.0 and presence_round(60.0) == 10.0


def test_every_serving_agent_draining_says_so_with_how_many() -> None:
    eu = AgentPresence("eu-1", ("eu",), {"gpu": "1"}, capacity=2, draining=True)
    eu2 = AgentPresence("eu-2", ("eu",), {}, capacity=2, draining=True)
    assert queued_reason(job("eu"), [eu, eu2], {}) == "every agent of pool eu is draining (2)"
    assert queued_reason(job("eu", {"gpu": "1"}), [eu, eu2], {}) == (
        "every agent of pool eu with the labels gpu=1 is draining (1)"
    )


def test_a_draining_agent_counts_neither_as_serving_nor_as_busy() -> None:
    drained = AgentPresence("eu-1", ("eu",), {"gpu": "1"}, capacity=1, draining=True)
    live = AgentPresence("eu-2", ("eu",), {}, capacity=1)
    # One that takes jobs remains: its slots alone count.
    assert queued_reason(job("eu"), [drained, live], {"eu-1": 1, "eu-2": 1}) == (
        "waiting for a free slot on pool eu (1/1 busy)"
    )
    assert queued_reason(job("eu"), [drained, live], {"eu-1": 1}) is None
    # No agent of the pool has the labels among those taking jobs: the reasons as before.
    assert queued_reason(job("eu", {"gpu": "2"}), [drained, live], {}) == (
        "no agent of pool eu has the labels gpu=2"
    )
    assert queued_reason(job("eu", {"gpu": "2"}), [drained], {}) == "no agent serves pool eu"
