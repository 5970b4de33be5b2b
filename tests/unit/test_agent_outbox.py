"""The outbox: messages wait in the spool while the server is away, in order, bounded, and a
refusal drops the rest of that job's messages. (The whole path through real processes is
tests/integration/agents/test_outages.py; here the server's side is a recorder that can be
switched off, to reach the spool-full and refusal branches in milliseconds.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opsflow.agent.outbox import Outbox
from opsflow.agent.protocol import CancelNotice, JobRef, JobReport, LogBatch, LogLine
from opsflow.agent.spool import Record, Spool
from opsflow.errors import ServerUnreachable, StaleReport
from opsflow.status import JobStatus, LogStream

REF = JobRef(job_id="job-1", lease_token="tok", epoch=1)


class Recorder:
    """Takes the messages an outbox delivers while ``up``; refuses the jobs in ``stale``."""

    def __init__(self) -> None:
        self.up = True
        self.stale: set[str] = set()
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
        self.got.append(("report", report.status))

    async def hand_back(self, job: JobRef) -> None:
        self._answer(job)
        self.got.append(("hand_back", job.job_id))

    async def heartbeat(self, job: JobRef) -> CancelNotice:
        self._answer(job)
        return CancelNotice()


def _batch(first: int, count: int, text: str = "x") -> LogBatch:
    lines = [LogLine(first + i, 1.0, LogStream.STDOUT, text) for i in range(count)]
    return LogBatch(job=REF, lines=lines)


def _outbox(client: Recorder, spool: Spool) -> Outbox:
    return Outbox(client, spool, probe_every=lambda: 0.01, running=lambda _: False)  # type: ignore[arg-type]


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
