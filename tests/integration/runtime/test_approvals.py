"""Approval gates and manual control through the real runtime, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsflow.auth.permissions import Role
from opsflow.engine.model import CancelMode
from opsflow.errors import Conflict, GateRefused
from opsflow.runtime.host import RuntimeHost
from opsflow.status import ExecutionStatus, JobStatus, StepStatus
from opsflow.store import approvals as approvals_store
from opsflow.store import users as users_store
from opsflow.store.db import Database

from .conftest import Harness

pytestmark = pytest.mark.anyio

GATE = """
id: gated
steps:
  - {id: plan, type: script, shell: sh, run: "echo 'changes=3' >> $OPSFLOW_OUTPUT"}
  - id: approve
    type: approval
    needs: [plan]
    message: "Apply {{ nodes.plan.output.changes }} changes?"
    %s
  - {id: apply, type: script, needs: [approve], run: "true"}
  - {id: told-no, type: script, needs: [approve.rejected], run: "true"}
"""


def _people(database: Database) -> None:
    with database.session() as s:
        for name in ("alice", "bob", "carol", "dave"):
            users_store.create_user(s, name=name, role=Role.OPERATOR)
        users_store.create_team(s, "platform")
        users_store.add_member(s, "platform", "carol")


async def _waiting(harness: Harness, eid: str) -> None:
    await harness.wait(eid, until=lambda ex: ex.status == ExecutionStatus.PAUSED)


async def _respond(harness: Harness, eid: str, user: str, approve: bool, note: str | None = None):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(
        harness.runtime.respond, eid, "approve", user=user, approve=approve, note=note, via="cli"
    )


async def test_approved_gate_follows_the_approved_edge(harness: Harness) -> None:
    eid = await harness.start_async(GATE % "approvers: []", started_by="alice")
    await _waiting(harness, eid)
    with harness.runtime.db.session() as s:
        gate = approvals_store.current(s, eid, "approve")
    assert gate.message == "Apply 3 changes?"
    approval, decided = await _respond(harness, eid, "bob", True, "looks fine")
    assert decided and approval.status == "approved"
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED
    steps = harness.steps(eid)
    assert steps["approve"].status == StepStatus.APPROVED
    assert steps["apply"].status == StepStatus.SUCCEEDED
    assert steps["told-no"].status == StepStatus.SKIPPED
    out = steps["approve"].outputs
    assert out["approved"] is True and out["responded_by"] == "bob"
    assert out["response_note"] == "looks fine" and out["responded_via"] == "cli"
    assert any("approved by bob via cli" in m for m in harness.engine_log(eid))


async def test_rejected_gate_takes_the_rejected_edge(harness: Harness) -> None:
    eid = await harness.start_async(GATE % "approvers: []")
    await _waiting(harness, eid)
    await _respond(harness, eid, "bob", False, "not today")
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED  # the rejection was handled by told-no
    steps = harness.steps(eid)
    assert steps["approve"].status == StepStatus.REJECTED
    assert steps["told-no"].status == StepStatus.SUCCEEDED
    assert steps["apply"].status == StepStatus.SKIPPED


async def test_unhandled_rejection_ends_the_run_rejected(harness: Harness) -> None:
    eid = await harness.start_async(
        """
id: strict
steps:
  - {id: approve, type: approval, message: "go?"}
  - {id: apply, type: script, needs: [approve], run: "true"}
"""
    )
    await _waiting(harness, eid)
    await asyncio.to_thread(
        harness.runtime.respond, eid, "approve", user="bob", approve=False, via="api"
    )
    assert (await harness.wait(eid)).status == ExecutionStatus.REJECTED


async def test_timeout_rejects_with_responded_via_timeout(harness: Harness) -> None:
    eid = await harness.start_async(GATE % "timeout: 0.3s")
    ex = await harness.wait(eid, timeout=15)
    assert ex.status == ExecutionStatus.COMPLETED
    out = harness.steps(eid)["approve"].outputs
    assert out["approved"] is False and out["responded_via"] == "timeout"
    assert harness.steps(eid)["told-no"].status == StepStatus.SUCCEEDED
    assert any("timed out" in m or "via timeout" in m for m in harness.engine_log(eid))
    with pytest.raises(Conflict, match="timeout"):
        await _respond(harness, eid, "bob", True)


async def test_approvers_teams_and_self_approval_are_enforced(harness: Harness) -> None:
    _people(harness.runtime.db)
    eid = await harness.start_async(
        GATE % 'approvers: [dave, "team:platform"]\n    allow_self_approval: false',
        started_by="dave",
    )
    await _waiting(harness, eid)
    with pytest.raises(GateRefused) as refused:
        await _respond(harness, eid, "bob", True)
    assert refused.value.message == (
        "bob is not among this gate's approvers (user dave; team platform): a role does not "
        "make an approver, team membership does; an admin can add you with "
        "`opsflow teams add-member platform bob` (or, if there is no such team yet, "
        "`opsflow teams create platform -m bob`)"
    )
    with pytest.raises(GateRefused, match="self-approval"):
        await _respond(harness, eid, "dave", True)
    _, decided = await _respond(harness, eid, "carol", True)  # via team:platform
    assert decided
    assert (await harness.wait(eid)).status == ExecutionStatus.COMPLETED


async def test_two_approvers_at_once_with_min_approvals_two(harness: Harness) -> None:
    _people(harness.runtime.db)
    eid = await harness.start_async(GATE % "min_approvals: 2")
    await _waiting(harness, eid)
    results = await asyncio.gather(
        _respond(harness, eid, "alice", True), _respond(harness, eid, "bob", True)
    )
    assert sorted(decided for _, decided in results) == [False, True]
    with pytest.raises(Conflict):
        await _respond(harness, eid, "carol", True)
    assert (await harness.wait(eid)).status == ExecutionStatus.COMPLETED
    out = harness.steps(eid)["approve"].outputs
    assert sorted(out["approvals"]) == ["alice", "bob"]


async def test_nobody_counts_twice(harness: Harness) -> None:
    eid = await harness.start_async(GATE % "min_approvals: 2")
    await _waiting(harness, eid)
    await _respond(harness, eid, "alice", True)
    with pytest.raises(Conflict, match="nobody counts twice"):
        await _respond(harness, eid, "alice", True)
    assert harness.execution(eid).status == ExecutionStatus.PAUSED


def test_approve_against_timeout_at_the_same_instant_has_one_winner(
    database: Database, tmp_path: Path
) -> None:
    from opsflow.runtime.bus import EventBus
    from opsflow.runtime.service import Runtime

    from .test_control import _request

    runtime = Runtime(database, EventBus())
    outcomes = []
    for _ in range(4):
        eid = runtime.start_execution(
            _request(
                """
id: race
steps:
  - {id: approve, type: approval, timeout: 0.2s}
  - {id: after, type: script, needs: [approve.always], run: "true"}
"""
            )
        )
        time.sleep(0.25)  # the deadline has passed; nobody has looked yet
        barrier = threading.Barrier(2)
        answer: list[object] = []

        def approve(
            eid: str = eid, answer: list[object] = answer, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                answer.append(runtime.respond(eid, "approve", user="bob", approve=True)[0].status)
            except Conflict as exc:
                answer.append(exc)

        def fire(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            runtime.fire_due_timers()

        threads = [threading.Thread(target=approve), threading.Thread(target=fire)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with database.session() as s:
            gate = approvals_store.current(s, eid, "approve")
        (result,) = answer
        # Exactly one wins: the deadline had passed, so the timeout decides, and the late
        # approver is told why.
        assert gate.status == "rejected" and gate.decided_via == "timeout"
        assert isinstance(result, Conflict) and "timeout" in result.message
        outcomes.append(gate.status)
    assert outcomes == ["rejected"] * 4


async def test_cancel_rejects_waiting_approvals_with_reason_cancelled(harness: Harness) -> None:
    eid = await harness.start_async(GATE % "approvers: []")
    await _waiting(harness, eid)
    await asyncio.to_thread(harness.runtime.cancel, eid, mode=CancelMode.GRACEFUL, by="alice")
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.CANCELLED
    steps = harness.steps(eid)
    assert steps["approve"].status == StepStatus.REJECTED
    assert steps["approve"].outputs["responded_via"] == "cancel"
    assert steps["told-no"].status == StepStatus.CANCELLED


async def test_a_waiting_approval_survives_a_restart(database: Database, tmp_path: Path) -> None:
    host = RuntimeHost(database, work_dir=tmp_path / "w1")
    await host.start()
    eid = await asyncio.to_thread(Harness(host).start, GATE % "timeout: 1.5s")
    await Harness(host).wait(eid, until=lambda ex: ex.status == ExecutionStatus.PAUSED)
    await host.stop()
    await asyncio.sleep(1.6)  # the gate's deadline passes while no server runs
    again = RuntimeHost(database, work_dir=tmp_path / "w2")
    await again.start()
    try:
        ex = await Harness(again).wait(eid, timeout=15)
        assert ex.status == ExecutionStatus.COMPLETED
        steps = Harness(again).steps(eid)
        assert steps["approve"].outputs["responded_via"] == "timeout"
        assert steps["told-no"].status == StepStatus.SUCCEEDED
    finally:
        await again.stop()


FLAKY = """
id: flaky
steps:
  - id: first
    type: script
    shell: sh
    env: {MARK: "%s"}
    run: 'if [ -e "$MARK" ]; then echo ok; else touch "$MARK"; exit 1; fi'
    allow_skip: true
  - {id: second, type: script, needs: [first], run: "true"}
"""


async def test_retry_step_runs_it_again_and_downstream_goes_on(
    harness: Harness, tmp_path: Path
) -> None:
    eid = await harness.start_async(FLAKY % (tmp_path / "mark"))
    assert (await harness.wait(eid)).status == ExecutionStatus.FAILED
    assert harness.steps(eid)["second"].status == StepStatus.SKIPPED
    await asyncio.to_thread(harness.runtime.retry_step, eid, "first", by="alice")
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED
    jobs = [j for j in harness.jobs(eid) if j.step_id == "first"]
    assert [(j.attempt, j.status) for j in jobs] == [
        (1, JobStatus.FAILED),
        (2, JobStatus.COMPLETED),
    ]
    assert harness.steps(eid)["second"].status == StepStatus.SUCCEEDED
    assert any("alice retried step first" in m for m in harness.engine_log(eid))


async def test_skip_lets_downstream_go_on_only_where_allowed(
    harness: Harness, tmp_path: Path
) -> None:
    eid = await harness.start_async(FLAKY % (tmp_path / "mark"))
    assert (await harness.wait(eid)).status == ExecutionStatus.FAILED
    await asyncio.to_thread(harness.runtime.skip_step, eid, "first", by="alice")
    ex = await harness.wait(eid)
    assert ex.status == ExecutionStatus.COMPLETED
    assert harness.steps(eid)["first"].user_skipped
    assert harness.steps(eid)["second"].status == StepStatus.SUCCEEDED

    strict = await harness.start_async(
        """
id: noskip
steps:
  - {id: first, type: script, shell: sh, run: "exit 1"}
"""
    )
    await harness.wait(strict)
    with pytest.raises(Conflict, match="allow_skip"):
        await asyncio.to_thread(harness.runtime.skip_step, strict, "first", by="alice")


async def test_retry_from_here_resets_every_step_downstream(
    harness: Harness, tmp_path: Path
) -> None:
    eid = await harness.start_async(
        """
id: fromhere
steps:
  - {id: a, type: script, run: "true"}
  - id: b
    type: script
    shell: sh
    needs: [a]
    env: {MARK: "%s"}
    run: 'if [ -e "$MARK" ]; then exit 0; else touch "$MARK"; exit 1; fi'
  - {id: handler, type: script, needs: [b.failed], run: "true"}
  - {id: report, type: script, needs: [handler], run: "true"}
  - {id: other, type: script, shell: sh, needs: [handler], run: "exit 1"}
"""
        % (tmp_path / "mark")
    )
    assert (await harness.wait(eid)).status == ExecutionStatus.FAILED  # 'other' failed
    before = harness.steps(eid)
    assert before["handler"].status == before["report"].status == StepStatus.SUCCEEDED
    reset = await asyncio.to_thread(
        harness.runtime.retry_step, eid, "b", by="alice", from_here=True
    )
    assert reset == ["handler", "report", "other"]  # in definition order
    # Everything after b was reset; b now succeeds, so the failure path is skipped this time.
    assert (await harness.wait(eid)).status == ExecutionStatus.COMPLETED
    after = harness.steps(eid)
    assert after["b"].status == StepStatus.SUCCEEDED
    for sid in ("handler", "report", "other"):
        assert after[sid].status == StepStatus.SKIPPED
    counts: dict[str, int] = {}
    for j in harness.jobs(eid):
        counts[j.step_id] = counts.get(j.step_id, 0) + 1
    assert counts == {"a": 1, "b": 2, "handler": 1, "report": 1, "other": 1}
    log = harness.engine_log(eid)
    assert any("alice retried from step b; reset handler, report, other" in m for m in log)


async def test_cancel_racing_a_job_that_finishes(harness: Harness) -> None:
    for _ in range(5):
        eid = await harness.start_async(
            """
id: quick
steps:
  - {id: fast, type: script, run: "true"}
  - {id: next, type: script, needs: [fast], run: "true"}
"""
        )
        with contextlib.suppress(Conflict):  # it already ended: the cancel was told so
            await asyncio.to_thread(harness.runtime.cancel, eid, mode=CancelMode.FORCE, by="alice")
        ex = await harness.wait(eid)
        assert ex.status in (ExecutionStatus.CANCELLED, ExecutionStatus.COMPLETED)
        statuses = {s.status for s in harness.steps(eid).values()}
        assert all(s.terminal for s in statuses)


class _Inbox(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_approvers_are_notified_through_the_workflow_channel(
    database: Database, tmp_path: Path
) -> None:
    _Inbox.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = RuntimeHost(
        database,
        work_dir=tmp_path / "w",
        notify_channels={"ops": [f"json://127.0.0.1:{server.server_address[1]}/approvals"]},
    )
    await host.start()
    try:
        harness = Harness(host)
        eid = await harness.start_async(
            "notify: {channel: ops}\n" + (GATE % 'approvers: ["team:platform"]'),
            started_by="alice",
        )
        await _waiting(harness, eid)
        deadline = time.monotonic() + 15
        while not _Inbox.received:
            assert time.monotonic() < deadline, "no notification arrived"
            await asyncio.sleep(0.05)
        (message,) = _Inbox.received
        assert "Approval needed: gated / approve" in str(message.get("title"))
        body = str(message.get("message"))
        assert "Apply 3 changes?" in body and f"opsflow approve {eid} approve" in body
        assert "team:platform" in body
    finally:
        await host.stop()
        server.shutdown()
