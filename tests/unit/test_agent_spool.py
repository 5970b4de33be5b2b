"""The agent's spool keeps undelivered messages on disk, in order, bounded, crash-safe."""

from __future__ import annotations

from pathlib import Path

from opsflow.agent.protocol import HandBack, JobRef, JobReport, LogBatch, LogLine
from opsflow.agent.spool import Record, Spool
from opsflow.status import JobStatus, LogStream

REF = JobRef(job_id="job-1", lease_token="tok", epoch=3)


def _batch(first: int, count: int, ref: JobRef = REF) -> Record:
    lines = [LogLine(first + i, 1.5, LogStream.STDOUT, f"line {first + i}") for i in range(count)]
    return Record("logs", LogBatch(job=ref, lines=lines))


def test_records_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    other = JobRef(job_id="job-2", lease_token="t2", epoch=1)
    assert spool.append(_batch(1, 2))
    assert spool.append(Record("hand_back", HandBack(job=other)))
    report = JobReport(
        job=REF, status=JobStatus.COMPLETED, outputs={"n": 1}, artifacts={"p": b"\0"}
    )
    assert spool.append(Record("report", report))
    again = Spool(tmp_path / "spool")
    assert sorted(again.jobs()) == ["job-1", "job-2"]
    assert again.count("job-1") == 2
    records = again.read("job-1")
    assert [r.kind for r in records] == ["logs", "report"]
    assert records[1].message == report
    assert again.read("job-1", skip=1)[0].message == report
    again.remove("job-1")
    assert again.jobs() == ["job-2"] and not (tmp_path / "spool" / "job-1.jsonl").exists()


def test_a_record_cut_short_by_a_crash_is_dropped_and_later_ones_still_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(_batch(1, 1))
    with (tmp_path / "job-1.jsonl").open("ab") as out:
        out.write(b'{"kind": "logs", "mess')  # the agent died mid-write
    again = Spool(tmp_path)
    assert again.count("job-1") == 1
    again.append(_batch(2, 1))
    assert [r.message.lines[0].seq for r in again.read("job-1")] == [1, 2]  # type: ignore[union-attr]


def test_log_batches_stop_at_the_bound_but_reports_always_fit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=400)
    assert spool.append(_batch(1, 3))
    assert not spool.append(_batch(4, 10))
    assert spool.append(_batch(4, 1), force=True)
    report = JobReport(job=REF, status=JobStatus.FAILED, error="x" * 1000)
    assert spool.append(Record("report", report))
    assert [r.kind for r in spool.read("job-1")] == ["logs", "logs", "report"]
    assert spool.size > 400
