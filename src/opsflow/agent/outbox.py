"""An ``opsflow agent``'s messages on their way to the server, past outages.

A job's log batches, final report and hand-back go to the server at once while it answers.
When it does not (`ServerUnreachable`: refused, reset, timed out, any 5xx answer)
the message goes to the `Spool` on disk instead and the job runs on; every later message of
that job queues behind it there, so the server receives a job's messages in the order they
were made. A delivery task probes the server with back-off (at most a heartbeat interval
apart, so a returning server hears from the agent before its leases run out) and, once it
answers, sends each job's records in order, heartbeating the lease of a job that has already
ended here so that its report lands while the lease is still that attempt's.

A refusal is final: a 409 (the lease moved on: the attempt was declared lost and retried
elsewhere, or the job was cancelled) drops the job's spooled records with a log line saying
why; the server never applies a late message to another attempt.

Trying is bounded where it could go on for ever: a job that has ended here, whose lease the
server keeps renewing (its heartbeats are answered) but whose messages it fails (a 5xx: a
fault recording the report, say) for ``give_up_after`` seconds (default
`DEFAULT_GIVE_UP_AFTER`, ``opsflow agent --give-up-after``) is given up: its spooled
messages are dropped and its lease is no longer renewed, so the server declares the attempt
lost once the lease runs out and retries the step (or fails it) as for any lost agent. The
agent says so in its log, naming the job, its attempt and the last error. Time while the
heartbeats fail too (the server down or cut off) does not count: then nothing keeps the lease
alive, and a server that comes back within it still gets the report. A job whose delivery
failed is tried after the others, so it never holds their messages up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opsflow.agent.client import AgentClient
from opsflow.agent.protocol import HandBack, JobReport, LogBatch, LogLine
from opsflow.agent.spool import Record, Spool
from opsflow.errors import OpsflowError, ServerUnreachable, StaleReport
from opsflow.status import LogLevel, LogStream
from opsflow.words import counted

log = logging.getLogger(__name__)

CLOSE_WAIT = 5.0
"""Seconds a stopping agent still tries to empty its spool before leaving it for its next
start."""

DEFAULT_GIVE_UP_AFTER = 300.0
"""Seconds the agent keeps trying to deliver an ended job's messages (its report) while the
server fails them, before it gives the job up (``opsflow agent --give-up-after``)."""


@dataclass
class _Ending:
    """A job that ended here and whose report the server has not taken yet."""

    attempt: int | None
    error: str  # the last failure's message
    # time.monotonic() since when its messages fail while its heartbeats are answered;
    # None while they are not (the server down: the lease is not being kept alive).
    since: float | None = None


class Outbox:
    """Delivers messages through ``client``, spooling them in ``spool`` while it is unreachable.

    ``probe_every()`` caps the back-off between tries (seconds); ``running(job_id)`` says
    whether the job still runs here (its own task heartbeats it then)."""

    def __init__(
        self,
        client: AgentClient,
        spool: Spool,
        *,
        probe_every: Callable[[], float],
        running: Callable[[str], bool],
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
    ) -> None:
        self.client = client
        self.spool = spool
        self.probe_every = probe_every
        self.running = running
        self.give_up_after = give_up_after
        self._lock = asyncio.Lock()  # appends against the removal of a delivered job's file
        self._spooled = asyncio.Event()
        self._full_noted: set[str] = set()
        self._outage_since: float | None = None
        self._ending: dict[str, _Ending] = {}
        # Whether the last heartbeat the outbox sent for an ended job was answered.
        self._renewed: dict[str, bool] = {}
        self._failures: Counter[str] = Counter()  # failed deliveries per job: most go last

    async def send(self, record: Record, call: Callable[[], Awaitable[None]]) -> None:
        """``call()`` delivers ``record`` now, unless the server is unreachable or the job's
        earlier records still wait: then ``record`` is spooled. Raises `StaleReport` when the
        server refuses it at once."""
        why = "its earlier messages wait in the spool"
        if not self.spool.holds(record.job_id):
            try:
                await call()
                return
            except ServerUnreachable as exc:
                why = exc.message
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "the server is unreachable (%s): jobs go on, what they report is kept "
                        "in %s until it is back",
                        exc.message,
                        self.spool.root,
                    )
        await self._keep(record)
        if record.kind != "logs":
            # The job's last message: from now on nothing but the outbox keeps its lease.
            self._ending.setdefault(record.job_id, _Ending(record.attempt, why))

    async def _keep(self, record: Record) -> None:
        async with self._lock:
            if await asyncio.to_thread(self.spool.append, record):
                self._spooled.set()
                return
            assert isinstance(record.message, LogBatch)
            batch = record.message
            if record.job_id in self._full_noted or not batch.lines:
                return
            self._full_noted.add(record.job_id)
            first = batch.lines[0].seq
            log.warning(
                "the spool %s is full (%d bytes, limit %d): log lines of job %s from seq %d on "
                "are dropped until the server is back",
                self.spool.root,
                self.spool.size,
                self.spool.max_bytes,
                record.job_id,
                first,
            )
            note = LogLine(
                first,
                time.time(),
                LogStream.SYSTEM,
                f"[opsflow] the agent's spool is full ({self.spool.max_bytes} bytes) while the "
                "server is unreachable: later log lines are dropped until it is back",
                LogLevel.WARN,
            )
            await asyncio.to_thread(
                self.spool.append, Record("logs", LogBatch(job=batch.job, lines=[note])), force=True
            )
            self._spooled.set()

    async def run(self) -> None:
        """Deliver whatever the spool holds, as long as the agent runs (cancel to stop)."""
        delay = 0.0
        while True:
            if not self.spool.jobs():
                self._spooled.clear()
                await self._spooled.wait()
                continue
            try:
                await self.flush()
                delay = 0.0
            except ServerUnreachable:
                delay = min(self.probe_every(), max(0.1, delay * 2))
                await asyncio.sleep(delay)

    async def flush_before_start(self, stopped: asyncio.Event) -> None:
        """Deliver what an earlier process of this agent left in the spool, waiting for the
        server as long as it takes (or until ``stopped``)."""
        if not self.spool.jobs():
            return
        log.warning(
            "the spool %s holds messages of %s from before this start: delivering them first",
            self.spool.root,
            counted(len(self.spool.jobs()), "job"),
        )
        delay = 0.0
        self._outage_since = time.monotonic()
        while self.spool.jobs() and not stopped.is_set():
            try:
                await self.flush()
            except ServerUnreachable as exc:
                if delay == 0.0:
                    log.warning("the server is unreachable (%s); trying again", exc.message)
                delay = min(self.probe_every(), max(0.1, delay * 2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopped.wait(), delay)

    async def close(self) -> None:
        """The agent is stopping: a last try (up to `CLOSE_WAIT` seconds) to empty the spool;
        what stays is delivered by the next start."""
        deadline = time.monotonic() + CLOSE_WAIT
        while self.spool.jobs() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.flush(), max(0.1, deadline - time.monotonic()))
            except (ServerUnreachable, TimeoutError):
                await asyncio.sleep(0.2)
        if self.spool.jobs():
            log.warning(
                "stopping with messages of %s still in the spool %s: the next start of this "
                "agent delivers them",
                counted(len(self.spool.jobs()), "job"),
                self.spool.root,
            )

    async def flush(self) -> None:
        """Deliver every spooled record, job by job (the longest-waiting first, those that
        failed more often after the others), each job's in order; first give up the jobs
        whose messages failed for ``give_up_after``. Raises `ServerUnreachable` when the
        server stops answering meanwhile."""
        await self._give_up_overdue()
        jobs = sorted(self.spool.jobs(), key=lambda job_id: self._failures[job_id])
        for job_id in jobs:
            try:
                await self._flush_job(job_id)
            except ServerUnreachable as exc:
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                self._failures[job_id] += 1
                ending = self._ending.get(job_id)
                if ending is None and not self.running(job_id):
                    # Left by an earlier process of this agent.
                    records = await asyncio.to_thread(self.spool.read, job_id)
                    attempt = next((r.attempt for r in records if r.attempt is not None), None)
                    ending = self._ending[job_id] = _Ending(attempt, exc.message)
                if ending is not None:
                    ending.error = exc.message
                    if not self._renewed.get(job_id):
                        ending.since = None  # the lease is not kept alive: no clock
                    elif ending.since is None:
                        ending.since = time.monotonic()
                await self._give_up_overdue()
                raise

    async def _give_up_overdue(self) -> None:
        """Give up each ended job whose messages the server has failed for ``give_up_after``
        seconds while answering its heartbeats: drop its spooled records, which also stops
        those heartbeats (the server then declares the attempt lost and retries it), and say
        so."""
        now = time.monotonic()
        for job_id, ending in list(self._ending.items()):
            if ending.since is None or now - ending.since < self.give_up_after:
                continue
            async with self._lock:
                records = await asyncio.to_thread(self.spool.read, job_id)
                await asyncio.to_thread(self.spool.remove, job_id)
                self._forget(job_id)
            kinds = {record.kind for record in records}
            what = (
                "report"
                if "report" in kinds
                else "hand-back"
                if "hand_back" in kinds
                else "log batches"
            )
            log.error(
                "gave up job %s (attempt %s): the server renewed its lease but has not taken "
                "its %s for %.0fs (last error: %s); dropped its %s and stopped renewing the "
                "lease: the server declares the attempt lost once the lease runs out and "
                "retries the step as its retries allow",
                job_id,
                ending.attempt if ending.attempt is not None else "unknown",
                what,
                now - ending.since,
                ending.error,
                counted(len(records), "spooled message"),
            )

    def _forget(self, job_id: str) -> None:
        """``job_id``'s records are gone from the spool (delivered, refused or given up)."""
        self._full_noted.discard(job_id)
        self._ending.pop(job_id, None)
        self._failures.pop(job_id, None)
        self._renewed.pop(job_id, None)

    def _answered(self) -> None:
        """The server took a spooled record: say so once per outage."""
        if self._outage_since is None:
            return
        log.info(
            "the server answers again after %.1fs: delivering the spooled messages of %s",
            time.monotonic() - self._outage_since,
            counted(len(self.spool.jobs()), "job"),
        )
        self._outage_since = None

    async def _flush_job(self, job_id: str) -> None:
        sent = 0
        beat = 0.0
        while True:
            records = await asyncio.to_thread(self.spool.read, job_id, sent)
            if not records:
                async with self._lock:
                    if self.spool.count(job_id) <= sent:
                        await asyncio.to_thread(self.spool.remove, job_id)
                        self._forget(job_id)
                        return
                continue  # the job spooled more meanwhile
            for record in records:
                try:
                    if not self.running(job_id) and time.monotonic() - beat > self.probe_every():
                        # The job ended here: nothing else keeps its lease alive meanwhile.
                        self._renewed[job_id] = False
                        await self.client.heartbeat(record.message.job)
                        self._renewed[job_id] = True
                        beat = time.monotonic()
                    await _call(self.client, record)
                    self._answered()
                except StaleReport as exc:
                    log.warning(
                        "spooled %s of job %s refused, the job's lease is no longer this "
                        "attempt's (%s): its spooled messages are dropped",
                        _what(record),
                        job_id,
                        exc.message,
                    )
                    async with self._lock:
                        await asyncio.to_thread(self.spool.remove, job_id)
                        self._forget(job_id)
                    return
                except ServerUnreachable:
                    raise
                except OpsflowError as exc:
                    # Any other refusal (e.g. 422) would repeat forever: drop this record only.
                    log.error("spooled %s of job %s refused: %s", _what(record), job_id, exc)
                sent += 1


async def _call(client: AgentClient, record: Record) -> None:
    message = record.message
    if isinstance(message, LogBatch):
        await client.send_logs(message)
    elif isinstance(message, JobReport):
        await client.report(message)
    else:
        assert isinstance(message, HandBack)
        await client.hand_back(message.job)


def _what(record: Record) -> str:
    return {"logs": "log batch", "report": "report", "hand_back": "hand-back"}[record.kind]
