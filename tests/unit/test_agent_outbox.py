"""The outbox: messages wait in the spool while the server is away, in order, bounded, and a
refusal drops the rest of that job's messages. (The whole path through real processes is
tests/integration/agents/test_outages.py; here the server's side is a recorder that can be
switched off, to reach the spool-full and refusal branches in milliseconds.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import pytest

from opsflow.agent.outbox import DEFAULT_GIVE_UP_AFTER, Outbox
from opsflow.agent.protocol import CancelNotice, JobRef, JobReport, LogBatch, LogLine
from opsflow.agent.spool import Record, Spool
from opsflow.cli.agent import GIVE_UP_AFTER
from opsflow.errors import ServerUnreachable, StaleReport
from opsflow.status import JobStatus, LogStream

REF = JobRef(job_id="job-1", lease_token="tok", epoch=1)


class Recorder:
    """Takes the messages an outbox delivers while ``up``; refuses the jobs in ``stale``."""

    def __init__(self) -> None:
        self.up = True
        self.stale: set[str] = set()
        self.failing: set[str] = set()  # jobs whose report the server answers 500 (for ever)
        self.beats: list[str] = []
        self.got: list[tuple[str, object]] = []
        self.texts: list[str] = []

    def _answer(self, job: JobRef) -> None:
        if not self.up:
            raise ServerUnreachable("connection refused")
        if job.job_id in self.stale:
            raise StaleReport(f"job {job.job_id!r}: lease epoch {job.epoch} is not current")

    async def send_logs(self, batch: LogBatch) -> None:
        self._answer(batch.job)
        self.got.append(("logs", [line.seq for line in batch.lines]))
        self.texts += [line.text for line in batch.lines]

    async def report(self, report: JobReport) -> None:
        self._answer(report.job)
        if report.job.job_id in self.failing:
            raise ServerUnreachable("http://server: the server answered 500")
        self.got.append(("report", report.status))

    async def hand_back(self, job: JobRef) -> None:
        self._answer(job)
        self.got.append(("hand_back", job.job_id))

    async def heartbeat(self, job: JobRef) -> CancelNotice:
        self._answer(job)
        self.beats.append(job.job_id)
        return CancelNotice()


def _batch(first: int, count: int, text: str = "x") -> LogBatch:
    lines = [LogLine(first + i, 1.0, LogStream.STDOUT, text) for i in range(count)]
    return LogBatch(job=REF, lines=lines)


def _outbox(client: Recorder, spool: Spool, give_up_after: float = DEFAULT_GIVE_UP_AFTER) -> Outbox:
    return Outbox(
        client,  # type: ignore[arg-type]
        spool,
        probe_every=lambda: 0.01,
        running=lambda _: False,
        give_up_after=give_up_after,
    )


async def _send(outbox: Outbox, client: Recorder, message: LogBatch | JobReport) -> None:
    if isinstance(message, LogBatch):
        await outbox.send(Record("logs", message), lambda: client.send_logs(message))
    else:
        await outbox.send(Record("report", message), lambda: client.report(message))


def test_messages_made_while_the_server_is_away_arrive_in_order_once_it_is_back(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        client, spool = Recorder(), Spool(tmp_path)
        outbox = _outbox(client, spool)
        await _send(outbox, client, _batch(1, 2))
        client.up = False
        await _send(outbox, client, _batch(3, 2))
        client.up = True  # back, but the job's earlier batch still waits: this one queues
        await _send(outbox, client, _batch(5, 1))
        await _send(outbox, client, JobReport(job=REF, status=JobStatus.COMPLETED))
        assert client.got == [("logs", [1, 2])]
        await outbox.flush()
        assert client.got == [
            ("logs", [1, 2]),
            ("logs", [3, 4]),
            ("logs", [5]),
            ("report", JobStatus.COMPLETED),
        ]
        assert spool.jobs() == [] and not list(tmp_path.glob("*.jsonl"))

    asyncio.run(scenario())


def test_a_full_spool_drops_log_lines_with_one_visible_line_but_keeps_the_report(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        client, spool = Recorder(), Spool(tmp_path, max_bytes=600)
        outbox = _outbox(client, spool)
        client.up = False
        await _send(outbox, client, _batch(1, 2))
        for first in range(3, 60, 3):
            await _send(outbox, client, _batch(first, 3, "y" * 50))
        await _send(outbox, client, JobReport(job=REF, status=JobStatus.FAILED, error="e"))
        client.up = True
        await outbox.flush()
        kinds = [kind for kind, _ in client.got]
        assert kinds[-1] == "report"
        seqs = [seq for kind, got in client.got if kind == "logs" for seq in got]  # type: ignore[attr-defined]
        assert seqs == sorted(seqs) and seqs[:2] == [1, 2]
        assert len(seqs) < 59  # lines were dropped, and the server will show the gap
        assert sum("the agent's spool is full" in text for text in client.texts) == 1

    asyncio.run(scenario())


def test_a_refused_message_drops_the_rest_of_its_jobs_spool(tmp_path: Path) -> None:
    async def scenario() -> None:
        client, spool = Recorder(), Spool(tmp_path)
        outbox = _outbox(client, spool)
        client.up = False
        await _send(outbox, client, _batch(1, 1))
        await _send(outbox, client, JobReport(job=REF, status=JobStatus.COMPLETED))
        client.up = True
        client.stale.add("job-1")  # the attempt was lost and retried meanwhile
        await outbox.flush()
        assert client.got == []
        assert spool.jobs() == []

    asyncio.run(scenario())


def test_a_report_failed_for_ever_is_given_up_after_the_bound_and_holds_no_other_job_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server answers 500 to one job's report for ever while heartbeats succeed: the
    outbox renews that lease only until ``give_up_after``, then drops the job's messages
    (no more heartbeats: the lease runs out) and says so; another job's report, spooled
    after it, is delivered meanwhile."""
    other = JobRef(job_id="job-2", lease_token="tok", epoch=1)

    async def scenario() -> None:
        client, spool = Recorder(), Spool(tmp_path)
        outbox = _outbox(client, spool, give_up_after=0.5)
        client.failing.add("job-1")
        report = JobReport(job=REF, status=JobStatus.COMPLETED)
        await outbox.send(Record("report", report, 3), lambda: client.report(report))
        client.up = False
        late = JobReport(job=other, status=JobStatus.COMPLETED)
        await outbox.send(Record("report", late, 1), lambda: client.report(late))
        client.up = True
        began = time.monotonic()
        for _ in range(2):  # job-1 failed first: from then on it is tried after the others
            with pytest.raises(ServerUnreachable):
                await outbox.flush()
        assert client.got == [("report", JobStatus.COMPLETED)]  # job-2's, past job-1's
        assert spool.jobs() == ["job-1"] and "job-1" in client.beats
        while spool.jobs():
            assert time.monotonic() - began < 5, "job-1 was never given up"
            with contextlib.suppress(ServerUnreachable):  # the last round gives it up
                await outbox.flush()
            await asyncio.sleep(0.05)
        assert time.monotonic() - began >= 0.5
        beats = len(client.beats)
        await outbox.flush()  # nothing left: job-1's lease is no longer renewed
        assert len(client.beats) == beats and client.got == [("report", JobStatus.COMPLETED)]

    with caplog.at_level(logging.ERROR, logger="opsflow.agent.outbox"):
        asyncio.run(scenario())
    (said,) = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert "job job-1 (attempt 3)" in said and "its report" in said, said
    assert "last error: http://server: the server answered 500" in said, said


def test_the_cli_default_bound_is_the_outbox_s() -> None:
    assert GIVE_UP_AFTER == DEFAULT_GIVE_UP_AFTER


def test_a_server_down_for_longer_than_the_bound_still_gets_the_report(tmp_path: Path) -> None:
    """While heartbeats fail too nothing keeps the lease alive, so nothing runs for ever:
    the bound does not count, and a server back after it still gets the report."""

    async def scenario() -> None:
        client, spool = Recorder(), Spool(tmp_path)
        outbox = _outbox(client, spool, give_up_after=0.2)
        client.up = False
        report = JobReport(job=REF, status=JobStatus.COMPLETED)
        await outbox.send(Record("report", report, 1), lambda: client.report(report))
        down_until = time.monotonic() + 0.6
        while time.monotonic() < down_until:
            with pytest.raises(ServerUnreachable):
                await outbox.flush()
            await asyncio.sleep(0.02)
        assert spool.jobs() == ["job-1"]
        client.up = True
        await outbox.flush()
        assert client.got == [("report", JobStatus.COMPLETED)] and spool.jobs() == []

    asyncio.run(scenario())
