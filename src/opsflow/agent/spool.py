"""What an agent could not deliver while its server was unreachable, kept on disk.

While the server does not answer, an ``opsflow agent`` keeps its jobs running; what they have
to say (log batches, final reports, hand-backs) goes here instead of waiting in memory, so
neither a long outage nor a crash of the agent (or of its machine) loses it. Once the server
answers again the agent delivers each job's records in the order they were written.

Layout: one append-only file per job, ``<spool>/<job id>.jsonl``, one record per line::

    {"kind": "logs" | "report" | "hand_back", "attempt": <int | null>,
     "message": <LogBatch | JobReport | HandBack>}

``attempt`` is the job's attempt number (given on reports and hand-backs, for the agent's own
log when it gives a job up; absent in files older agents wrote).

Each record is written whole and ``fsync``'d before the agent goes on (the directory too when
the file is new). A line cut short by a crash is not a record: reading stops there. A job's
file is removed once all its records are delivered (or refused). Sending a record twice (the
agent died between delivery and removal) is harmless: the server keeps each log line once by
its ``seq`` and refuses a second report with 409.

The spool is bounded: log batches are kept only while the files hold less than ``max_bytes``
in all; past that a batch is refused (`append` returns False: the caller says so in the job's
log). Reports and hand-backs are always kept: they are small and they are what the server must
learn.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from opsflow.agent.protocol import HandBack, JobReport, LogBatch

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
"""What the spool may hold in log batches, in bytes (``opsflow agent --spool-max-bytes``)."""

Kind = Literal["logs", "report", "hand_back"]
Message = LogBatch | JobReport | HandBack
_MODELS: dict[str, type[Message]] = {"logs": LogBatch, "report": JobReport, "hand_back": HandBack}
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Record:
    """One message to deliver: ``kind`` names the protocol call (``/logs``, ``/report``,
    ``/hand-back``), ``message`` is its body."""

    kind: Kind
    message: Message
    attempt: int | None = None  # the job's attempt number, when the sender knew it

    @property
    def job_id(self) -> str:
        return self.message.job.job_id


class Spool:
    """The spool directory ``root`` (created on first use). Not thread-safe: the agent calls
    it from one task at a time (its methods do blocking I/O: run them in a worker thread)."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        # Job id -> (records, bytes) in the file, in the order the files were begun.
        self._files: dict[str, tuple[int, int]] = {}
        if root.is_dir():
            found = sorted(root.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
            for path in found:
                data = path.read_bytes()
                records, good = _parse(data, path)
                if good < len(data):
                    # A record cut short by a crash: later appends must not follow it.
                    os.truncate(path, good)
                self._files[path.name.removesuffix(SUFFIX)] = (len(records), good)

    @property
    def size(self) -> int:
        """Bytes held, all files."""
        return sum(size for _, size in self._files.values())

    def jobs(self) -> list[str]:
        """Jobs with records waiting: in the order their files were begun, or, for files an
        earlier process left, of their last record (the order across jobs carries no
        meaning; within a job it does)."""
        return list(self._files)

    def holds(self, job_id: str) -> bool:
        """Whether records of ``job_id`` wait (its later messages must queue behind them)."""
        return job_id in self._files

    def count(self, job_id: str) -> int:
        """How many records of ``job_id`` wait."""
        return self._files.get(job_id, (0, 0))[0]

    def append(self, record: Record, *, force: bool = False) -> bool:
        """Write ``record`` at the end of its job's file and fsync it. False (nothing written)
        for a log batch that would take the spool past ``max_bytes``, unless ``force`` (the
        one line that says the spool is full)."""
        line = (
            json.dumps(
                {
                    "kind": record.kind,
                    "attempt": record.attempt,
                    "message": record.message.model_dump(mode="json"),
                }
            )
            + "\n"
        ).encode("utf-8")
        if record.kind == "logs" and not force and self.size + len(line) > self.max_bytes:
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(record.job_id)
        new = record.job_id not in self._files
        with path.open("ab") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
        if new:
            _fsync_dir(self.root)
        count, size = self._files.get(record.job_id, (0, 0))
        self._files[record.job_id] = (count + 1, size + len(line))
        return True

    def read(self, job_id: str, skip: int = 0) -> list[Record]:
        """The records of ``job_id`` after the first ``skip``, in the order written."""
        path = self._path(job_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        return _parse(data, path)[0][skip:]

    def remove(self, job_id: str) -> None:
        """Forget ``job_id``'s records (delivered or refused)."""
        self._files.pop(job_id, None)
        self._path(job_id).unlink(missing_ok=True)

    def _path(self, job_id: str) -> Path:
        # Job ids are server-made (hex, dashes); refuse anything that could leave the directory.
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise ValueError(f"job id {job_id!r} cannot name a spool file")
        return self.root / f"{job_id}{SUFFIX}"


def _parse(data: bytes, path: Path) -> tuple[list[Record], int]:
    """The records in a spool file's bytes, and how many bytes they take: reading stops at a
    line cut short by a crash (or otherwise unreadable), with a warning."""
    records: list[Record] = []
    good = 0
    for number, raw in enumerate(data.splitlines(keepends=True)):
        try:
            if not raw.endswith(b"\n"):
                raise ValueError("the line has no end")
            item = json.loads(raw)
            kind: Kind = item["kind"]
            attempt = item.get("attempt")
            records.append(
                Record(
                    kind,
                    _MODELS[kind].model_validate(item["message"]),
                    attempt if isinstance(attempt, int) else None,
                )
            )
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            log.warning(
                "spool file %s: record %d is unreadable (%s); it and what follows are dropped",
                path,
                number + 1,
                exc,
            )
            break
        good += len(raw)
    return records, good


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
